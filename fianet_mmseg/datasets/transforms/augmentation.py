"""The reference's random black boxes augmentation."""
from __future__ import annotations

import zlib

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomBlackBoxes(BaseTransform):
    """Paint random black squares over the images of a fixed share of references.

    The reference (RRSIS-D training only) picks a fixed random 20% of the
    training references once and, every time one of them is loaded, blacks out
    20-60 random 32x32 boxes. Here the fixed subset is drawn from a hash of
    ``ref_id`` and ``seed``, so it is the same in every epoch and in every
    data-loader worker; the boxes are new on each load. Boxes are drawn on
    the image as it is when the transform runs (after ``Resize`` in the
    configs, so 32 px of the 480x480 network input); the mask is unchanged.

    Args:
        ratio (float): Share of references that get boxes. Default: 0.2.
        min_boxes (int): Fewest boxes. Default: 20.
        max_boxes (int): Most boxes (inclusive). Default: 60.
        box_size (int): Side of a box in pixels. Default: 32.
        seed (int): Seed of the fixed subset. Default: 2401.
    """

    def __init__(self, ratio: float = 0.2, min_boxes: int = 20, max_boxes: int = 60,
                 box_size: int = 32, seed: int = 2401) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f'RandomBlackBoxes: ratio must be in [0, 1], got {ratio}')
        if not 0 <= min_boxes <= max_boxes:
            raise ValueError(f'RandomBlackBoxes: need 0 <= min_boxes <= max_boxes, '
                             f'got {min_boxes}, {max_boxes}')
        self.ratio = ratio
        self.min_boxes = min_boxes
        self.max_boxes = max_boxes
        self.box_size = box_size
        self.seed = seed

    def is_selected(self, ref_id) -> bool:
        """Whether the reference belongs to the fixed subset that gets boxes."""
        key = f'{self.seed}:{ref_id}'.encode()
        return zlib.crc32(key) / 2**32 < self.ratio

    def transform(self, results: dict) -> dict:
        """Black out boxes in ``results['img']`` for selected references."""
        if 'ref_id' not in results:
            raise KeyError('RandomBlackBoxes needs "ref_id" in the sample')
        if not self.is_selected(results['ref_id']):
            return results
        img = results['img'].copy()
        height, width = img.shape[:2]
        rng = np.random.default_rng()
        for _ in range(rng.integers(self.min_boxes, self.max_boxes + 1)):
            top = rng.integers(0, max(height - self.box_size, 0) + 1)
            left = rng.integers(0, max(width - self.box_size, 0) + 1)
            img[top:top + self.box_size, left:left + self.box_size] = 0
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(ratio={self.ratio}, boxes={self.min_boxes}-'
                f'{self.max_boxes}, box_size={self.box_size}, seed={self.seed})')
