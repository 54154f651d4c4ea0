"""Overlays of referring segmentation: masks, outlines and a marked caption.

One drawing implementation for the demo (``demo/image_demo.py``), the failure
gallery (``tools/analysis_tools/failure_gallery.py``) and mmseg's
``SegVisualizationHook`` (through :class:`RefSegVisualizer`).

Conventions: images are ``(H, W, 3)`` uint8 in **RGB** order (as mmengine's
visualisers use), colours are RGB tuples, masks are ``(H, W)`` arrays whose
non-zero pixels are the referred object, of their image's size (a mask of
another size is an error naming both shapes, never resized). Image files are
read with :func:`fianet_mmseg.utils.image_io.read_image`, as the model reads
them (any bit depth, EXIF orientation ignored). In the caption the decoupled object
phrase is drawn in orange and underlined, the spatial phrases in cyan and
underlined (a word in both: orange text, cyan underline), other words in white.
The caption uses OpenCV's Hershey font, so characters outside ASCII are drawn
as ``?``.
"""
from __future__ import annotations

import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..utils.arrays import as_hw_array

Color = Tuple[int, int, int]
Span = Tuple[int, int]

PRED_COLOR: Color = (255, 64, 64)  # RefSegDataset's palette entry of the object
GT_COLOR: Color = (64, 220, 64)
OBJECT_COLOR: Color = (255, 160, 0)
SPATIAL_COLOR: Color = (0, 200, 255)
TEXT_COLOR: Color = (255, 255, 255)
BAND_COLOR: Color = (0, 0, 0)

# Character roles in the caption (bit flags).
PLAIN, OBJECT, SPATIAL = 0, 1, 2
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LEGEND = ((('object', OBJECT), ('  ', PLAIN), ('spatial', SPATIAL)),)


# ----------------------------------------------------------------------- phrases
def _occurrences(text: str, phrase: str) -> List[Span]:
    """All ``[start, end)`` spans where ``phrase`` occurs in ``text`` (case kept)."""
    return [(m.start(), m.start() + len(phrase)) for m in re.finditer(re.escape(phrase), text)]


def locate_phrases(expression: str, object_phrase: Optional[str] = None,
                   spatial_phrases: Sequence[str] = ()) -> Tuple[Optional[Span], List[Span]]:
    """Character spans of the decoupled phrases inside ``expression``.

    The phrases are substrings of the expression (``DecoupleAndTokenize``
    stores their text). Spatial phrases are matched in order, each after the
    previous one; the object phrase is its first occurrence outside every
    spatial span (else its first occurrence). Phrases not found are skipped.

    Returns:
        tuple: ``(object_span or None, [spatial_span, ...])``.
    """
    spatial: List[Span] = []
    cursor = 0
    for phrase in spatial_phrases or ():
        if not phrase:
            continue
        start = expression.find(phrase, cursor)
        if start < 0:
            start = expression.find(phrase)
        if start < 0:
            continue
        spatial.append((start, start + len(phrase)))
        cursor = start + len(phrase)
    object_span = None
    if object_phrase:
        found = _occurrences(expression, object_phrase)
        outside = [span for span in found
                   if not any(s <= span[0] and span[1] <= e for s, e in spatial)]
        candidates = outside or found
        object_span = candidates[0] if candidates else None
    return object_span, spatial


def _char_roles(expression: str, object_span: Optional[Span],
                spatial_spans: Sequence[Span]) -> np.ndarray:
    """Role flags (``OBJECT`` | ``SPATIAL``) of every character, (len,) uint8."""
    roles = np.zeros(len(expression), dtype=np.uint8)
    if object_span is not None:
        roles[object_span[0]:object_span[1]] |= OBJECT
    for start, end in spatial_spans:
        roles[start:end] |= SPATIAL
    return roles


def _runs(text: str, roles: Sequence[int]) -> List[Tuple[str, int]]:
    """Split ``text`` into maximal runs of equal role."""
    runs: List[Tuple[str, int]] = []
    for char, role in zip(text, roles):
        if runs and runs[-1][1] == role:
            runs[-1] = (runs[-1][0] + char, role)
        else:
            runs.append((char, int(role)))
    return runs


# ------------------------------------------------------------------------ masks
def as_image_mask(mask, shape: Tuple[int, int]) -> np.ndarray:
    """A boolean ``shape`` mask from an ``(H, W)`` / ``(1, H, W)`` array or tensor.

    Raises:
        ValueError: The mask is not of the image's size ``shape`` (naming both).
    """
    mask = as_hw_array(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f'the mask is {mask.shape[0]}x{mask.shape[1]} (HxW), its image '
                         f'{shape[0]}x{shape[1]}: a mask must have its image\'s size')
    return mask.astype(bool)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ValueError(f'expected an (H, W, 3) uint8 image, got shape {shape}, {dtype}')


def draw_mask(image: np.ndarray, mask, color: Color = PRED_COLOR, alpha: float = 0.5,
              outline: Optional[int] = None) -> np.ndarray:
    """Blend ``color`` into the mask's pixels and draw the mask's outline.

    Args:
        image: ``(H, W, 3)`` uint8 image (not modified).
        mask: ``(H, W)`` or ``(1, H, W)`` array / tensor of the image's size;
            non-zero = object.
        color: Fill and outline colour, in the image's channel order.
        alpha: Opacity of the fill, in [0, 1].
        outline: Outline thickness in pixels; None: ``max(1, min(H, W) // 200)``;
            0: no outline.

    Returns:
        np.ndarray: A new ``(H, W, 3)`` uint8 image.
    """
    _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    mask = as_image_mask(mask, image.shape[:2])
    out = image.copy()
    if not mask.any():
        return out
    fill = image[mask].astype(np.float32) * (1.0 - alpha) + np.float32(color) * alpha
    out[mask] = np.clip(np.rint(fill), 0, 255).astype(np.uint8)
    if outline is None:
        outline = max(1, min(image.shape[:2]) // 200)
    if outline > 0:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), outline)
    return out


def mask_iou(pred, gt) -> float:
    """Foreground IoU of two same-size masks (0 when both are empty)."""
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    union = np.count_nonzero(pred | gt)
    return float(np.count_nonzero(pred & gt)) / union if union else 0.0


# ---------------------------------------------------------------------- caption
def font_scale_for(width: int) -> float:
    """Hershey font scale for a canvas ``width`` pixels wide (0.3 to 0.8)."""
    return float(np.clip(width / 900.0, 0.3, 0.8))


def _wrap(expression: str, roles: np.ndarray, width: int, scale: float,
          margin: int) -> List[List[Tuple[str, int]]]:
    """Greedy word wrap; each line is a list of ``(text, role)`` runs."""
    lines: List[List[Tuple[str, int]]] = []
    line: List[Tuple[str, int]] = []
    line_width = 0
    space_width = cv2.getTextSize(' ', _FONT, scale, 1)[0][0]
    usable = max(1, width - 2 * margin)
    for match in re.finditer(r'\S+', expression):
        word = match.group()
        word_width = cv2.getTextSize(word, _FONT, scale, 1)[0][0]
        if line and line_width + space_width + word_width > usable:
            lines.append(line)
            line, line_width = [], 0
        if line:
            # the gap takes the role of the white space before the word, so a phrase's
            # underline runs across it
            gap_role = int(roles[match.start() - 1]) if match.start() > 0 else PLAIN
            line.append((' ', gap_role))
            line_width += space_width
        line.extend(_runs(word, roles[match.start():match.end()]))
        line_width += word_width
    if line:
        lines.append(line)
    return lines


def _line_metrics(scale: float) -> Tuple[int, int, int]:
    """(text height, baseline, line height) of the caption font."""
    (_, text_height), baseline = cv2.getTextSize('Ag', _FONT, scale, 1)
    return text_height, baseline, text_height + baseline + max(2, text_height // 3)


def _draw_lines(canvas: np.ndarray, lines: Sequence[Sequence[Tuple[str, int]]], top: int,
                scale: float, margin: int) -> None:
    """Draw caption lines (in place) from ``top``, colouring and underlining phrases."""
    text_height, baseline, line_height = _line_metrics(scale)
    for index, line in enumerate(lines):
        y = top + index * line_height + text_height
        x = margin
        for text, role in line:
            run_width = cv2.getTextSize(text, _FONT, scale, 1)[0][0]
            color = OBJECT_COLOR if role & OBJECT else SPATIAL_COLOR if role & SPATIAL \
                else TEXT_COLOR
            if text.strip():
                cv2.putText(canvas, text, (x, y), _FONT, scale, color, 1, cv2.LINE_AA)
            if role:
                underline = SPATIAL_COLOR if role & SPATIAL else OBJECT_COLOR
                y_line = min(canvas.shape[0] - 1, y + max(1, baseline // 2))
                cv2.line(canvas, (x, y_line), (x + run_width - 1, y_line), underline, 1,
                         cv2.LINE_8)
            x += run_width


def draw_caption(image: np.ndarray, expression: str, object_phrase: Optional[str] = None,
                 spatial_phrases: Sequence[str] = (), inside: bool = True,
                 legend: Optional[bool] = None, band_alpha: float = 0.6,
                 max_band_fraction: float = 0.5) -> np.ndarray:
    """Write ``expression`` on a band, marking the object and spatial phrases.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image (not modified).
        expression: The referring expression (wrapped at word boundaries).
        object_phrase, spatial_phrases: Decoupled phrases (substrings of the
            expression), located with :func:`locate_phrases`.
        inside: True: a semi-transparent band over the bottom of the image
            (the result keeps the image's size; lines beyond
            ``max_band_fraction`` of the height are cut, ending in ``...``).
            False: an opaque band appended below the image (nothing cut).
        legend: Add a line naming the two colours; default: only when not
            ``inside``.
        band_alpha: Opacity of the band when ``inside``.
        max_band_fraction: Largest share of the height the inside band covers.

    Returns:
        np.ndarray: ``(H, W, 3)`` when ``inside``, else ``(H + band, W, 3)``.
    """
    _check_image(image)
    height, width = image.shape[:2]
    scale = font_scale_for(width)
    margin = max(2, width // 100)
    object_span, spatial_spans = locate_phrases(expression, object_phrase, spatial_phrases)
    roles = _char_roles(expression, object_span, spatial_spans)
    lines = _wrap(expression, roles, width, scale, margin)
    if legend is None:
        legend = not inside
    if legend:
        lines += [list(line) for line in _LEGEND]
    _, _, line_height = _line_metrics(scale)
    pad = max(2, line_height // 4)
    if inside:
        max_lines = max(1, (int(height * max_band_fraction) - 2 * pad) // line_height)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = list(lines[-1]) + [(' ...', PLAIN)]
    band_height = len(lines) * line_height + 2 * pad
    if inside:
        band_height = min(band_height, height)
        canvas = image.copy()
        top = height - band_height
        band = canvas[top:].astype(np.float32) * (1.0 - band_alpha) + \
            np.float32(BAND_COLOR) * band_alpha
        canvas[top:] = np.clip(np.rint(band), 0, 255).astype(np.uint8)
    else:
        band = np.empty((band_height, width, 3), dtype=np.uint8)
        band[:] = BAND_COLOR
        canvas = np.concatenate([image, band], axis=0)
        top = height
    _draw_lines(canvas, lines, top + pad, scale, margin)
    return canvas


def draw_title(image: np.ndarray, title: str, color: Color = TEXT_COLOR) -> np.ndarray:
    """A small label with a dark box in the top-left corner (new image)."""
    _check_image(image)
    out = image.copy()
    scale = font_scale_for(image.shape[1])
    (text_width, text_height), baseline = cv2.getTextSize(title, _FONT, scale, 1)
    cv2.rectangle(out, (0, 0), (text_width + 4, text_height + baseline + 4), BAND_COLOR, -1)
    cv2.putText(out, title, (2, text_height + 2), _FONT, scale, color, 1, cv2.LINE_AA)
    return out


# ------------------------------------------------------------------ compositions
def render_prediction(image: np.ndarray, mask, expression: Optional[str] = None,
                      object_phrase: Optional[str] = None, spatial_phrases: Sequence[str] = (),
                      color: Color = PRED_COLOR, alpha: float = 0.5,
                      scale: int = 1) -> np.ndarray:
    """The demo's overlay: mask, outline and the caption inside the image.

    ``scale`` > 1 enlarges image and mask by that integer factor (nearest
    neighbour, every pixel a ``scale`` x ``scale`` block) before drawing, so that
    the caption of a small image stays readable.

    Returns:
        np.ndarray: ``(scale * H, scale * W, 3)`` uint8.
    """
    if scale < 1:
        raise ValueError(f'render_prediction: scale must be an integer >= 1, got {scale}')
    if scale > 1:
        mask = as_image_mask(mask, image.shape[:2])
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        mask = np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)
    out = draw_mask(image, mask, color, alpha)
    if expression:
        out = draw_caption(out, expression, object_phrase, spatial_phrases, inside=True)
    return out


def render_comparison(image: np.ndarray, pred_mask=None, gt_mask=None,
                      expression: Optional[str] = None, object_phrase: Optional[str] = None,
                      spatial_phrases: Sequence[str] = (), pred_color: Color = PRED_COLOR,
                      gt_color: Color = GT_COLOR, alpha: float = 0.5) -> np.ndarray:
    """Prediction (left) and ground truth (right) panels with a caption below.

    Each panel is the image with its mask drawn by :func:`draw_mask` and a
    title (``prediction``; ``ground truth`` - ``GT`` under 200 pixels wide -
    with the IoU of the two masks when both are given). A missing mask drops
    its panel; with neither, the image itself is the panel.

    Returns:
        np.ndarray: ``(H + caption, W * panels, 3)`` uint8 RGB.
    """
    _check_image(image)
    panels = []
    shape = image.shape[:2]
    if pred_mask is not None:
        panels.append(draw_title(draw_mask(image, pred_mask, pred_color, alpha), 'prediction'))
    if gt_mask is not None:
        title = 'ground truth' if image.shape[1] >= 200 else 'GT'
        if pred_mask is not None:
            iou = mask_iou(as_image_mask(pred_mask, shape), as_image_mask(gt_mask, shape))
            title += f' (IoU {iou:.2f})'
        panels.append(draw_title(draw_mask(image, gt_mask, gt_color, alpha), title))
    canvas = np.concatenate(panels, axis=1) if panels else image.copy()
    if expression:
        canvas = draw_caption(canvas, expression, object_phrase, spatial_phrases, inside=False)
    return canvas


def sample_phrases(data_sample: SegDataSample) -> Tuple[Optional[str], Optional[str], List[str]]:
    """``(expression, object_phrase, spatial_phrases)`` from a sample's metainfo."""
    meta = data_sample.metainfo
    return (meta.get('expression'), meta.get('object_phrase'),
            list(meta.get('spatial_phrases') or []))


# -------------------------------------------------------------------- visualiser
@VISUALIZERS.register_module()
class RefSegVisualizer(SegLocalVisualizer):
    """mmseg visualiser for referring segmentation.

    ``add_datasample`` draws the prediction (left) and the ground truth
    (right) of the referred object (label ``object_label``) over the image
    (read again from the sample's ``img_path`` with the project's reader when
    that file exists: mmseg's hook decodes it with OpenCV, which applies EXIF
    rotation and keeps only the high byte of 16-bit data),
    each filled semi-transparently and outlined, and writes the expression
    below them with the decoupled phrases marked (see
    :func:`render_comparison`). mmseg's ``SegVisualizationHook`` (validation,
    ``tools/test.py --show-dir``) saves these images through the vis backends.

    Args:
        name (str): Instance name.
        image (np.ndarray, optional): Initial RGB image.
        vis_backends (list[dict], optional): Visual backend configs.
        save_dir (str, optional): Folder of the backends' files.
        classes, palette (list, optional): Dataset meta; default: those of
            :class:`~fianet_mmseg.datasets.RefSegDataset`.
        dataset_name (str, optional): An mmseg dataset name for the meta.
        alpha (float): Opacity of the mask fill. Default: 0.5.
        gt_color (tuple): RGB colour of the ground truth.
        object_label (int): Label of the referred object. Default: 1.
    """

    def __init__(self, name: str = 'visualizer', image: Optional[np.ndarray] = None,
                 vis_backends: Optional[list] = None, save_dir: Optional[str] = None,
                 classes: Optional[list] = None, palette: Optional[list] = None,
                 dataset_name: Optional[str] = None, alpha: float = 0.5,
                 gt_color: Color = GT_COLOR, object_label: int = 1, **kwargs) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir,
                         dataset_name=dataset_name, alpha=alpha, **kwargs)
        if dataset_name is None or classes or palette:
            from ..datasets import RefSegDataset

            default = RefSegDataset.METAINFO
            self.dataset_meta = dict(classes=list(classes or default['classes']),
                                     palette=[list(c) for c in palette or default['palette']])
        self.gt_color = tuple(int(c) for c in gt_color)
        self.object_label = object_label

    @property
    def pred_color(self) -> Color:
        """The palette colour of ``object_label`` (RefSegDataset: red)."""
        palette = (self.dataset_meta or {}).get('palette') or []
        if len(palette) > self.object_label:
            return tuple(int(c) for c in palette[self.object_label])
        return PRED_COLOR

    def _object_mask(self, data_sample: SegDataSample, key: str) -> Optional[np.ndarray]:
        if key not in data_sample:
            return None
        data = data_sample.get(key).data
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        return np.asarray(data) == self.object_label

    @staticmethod
    def source_image(image: np.ndarray, data_sample: Optional[SegDataSample]) -> np.ndarray:
        """The sample's image file as the model read it, else ``image``."""
        path = None if data_sample is None else data_sample.metainfo.get('img_path')
        if path and osp.isfile(str(path)):
            from ..utils.image_io import read_image

            return read_image(path).image
        return image

    @master_only
    def add_datasample(self, name: str, image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw prediction | ground truth with the caption; show, save or log it.

        Args:
            name (str): Image identifier for the backends.
            image (np.ndarray): ``(H, W, 3)`` RGB image at the original size;
                replaced by ``read_image(data_sample.img_path).image`` when
                that file exists.
            data_sample (SegDataSample, optional): With ``pred_sem_seg`` and/or
                ``gt_sem_seg`` of the image's size (another size is an error)
                and the expression / phrases as metainfo.
            draw_gt, draw_pred (bool): Which panels to draw.
            show (bool): Show in a window instead of saving to the backends.
            wait_time (float): Seconds to show.
            out_file (str, optional): Write the drawing here (instead of the
                backends).
            step (int): Global step for the backends.
            with_labels (bool): Unused (kept for mmseg's signature).
        """
        pred = gt = None
        expression, object_phrase, spatial = None, None, []
        image = self.source_image(image, data_sample)
        if data_sample is not None:
            if draw_pred:
                pred = self._object_mask(data_sample, 'pred_sem_seg')
            if draw_gt:
                gt = self._object_mask(data_sample, 'gt_sem_seg')
            expression, object_phrase, spatial = sample_phrases(data_sample)
        drawn = render_comparison(image, pred, gt, expression, object_phrase, spatial,
                                  pred_color=self.pred_color, gt_color=self.gt_color,
                                  alpha=self.alpha)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
