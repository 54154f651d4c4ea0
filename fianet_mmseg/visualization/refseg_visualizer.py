"""mmseg's visualiser for referring segmentation (``SegVisualizationHook``, ``--show-dir``).

Image files are read with :func:`fianet_mmseg.utils.image_io.read_image`, as
the model reads them (any bit depth, EXIF orientation ignored); the drawing is
:func:`~fianet_mmseg.visualization.render_comparison`.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Tuple

import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from .masks import GT_COLOR, PRED_COLOR, Color
from .overlays import render_comparison


def sample_phrases(data_sample: SegDataSample) -> Tuple[Optional[str], Optional[str], List[str]]:
    """``(expression, object_phrase, spatial_phrases)`` from a sample's metainfo."""
    meta = data_sample.metainfo
    return (meta.get('expression'), meta.get('object_phrase'),
            list(meta.get('spatial_phrases') or []))


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
