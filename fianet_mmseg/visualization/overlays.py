"""Overlays of referring segmentation: the demo's and the prediction | ground truth panels.

One drawing implementation for the demos (``demo/image_demo.py``,
``demo/web_demo.py``), the failure gallery and mmseg's
``SegVisualizationHook`` (through
:class:`~fianet_mmseg.visualization.RefSegVisualizer`); masks are drawn by
:mod:`.masks`, captions by :mod:`.caption`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..utils.iou import mask_iou
from .caption import draw_caption, draw_title
from .masks import GT_COLOR, PRED_COLOR, Color, as_image_mask, check_image, draw_mask


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
    check_image(image)
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
