"""The reference's random black boxes augmentation."""
from __future__ import annotations

import zlib
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ...constants import BLACK_BOXES


@TRANSFORMS.register_module()
class RandomBlackBoxes(BaseTransform):
    """Paint random black squares over the images of a fixed share of references.

    The reference (RRSIS-D training only, docs/reference.md 6c) picks a fixed random
    20% of the training references once per run and, every time one of them is
    loaded, blacks out 20-60 boxes of 32x32 pixels of the ORIGINAL image
    (before the resize to 480, so about 19 px of the network input for an
    800x800 image); the mask is unchanged. Place this transform right after
    ``LoadImageFromFile``, as the configs do.

    Every random choice comes from the run's seeded generator, so that
    ``randomness.seed`` reproduces a run: the fixed subset is a hash of
    ``ref_id`` with ``seed`` (when ``seed`` is None it is drawn from numpy's
    global generator when the transform is built, which mmengine's runner
    has seeded with the run's seed), and the boxes come from numpy's global
    generator, which mmengine seeds in the main process and, per worker, in
    the data loader's workers.

    Differences from the reference, both without effect on RRSIS-D's square
    images of the same size: the subset holds about ``ratio`` of the
    references (each one is in it with that probability, instead of exactly
    ``int(ratio * N)`` of them drawn by ``random.sample``), and a box's row is
    drawn from the image height (the reference draws both corners from the
    width).

    With ``paint=False`` the transform draws the same boxes (the same subset,
    the same random draws in the same order) but only records them, as
    ``results['black_boxes']`` ((N, 4) int64 ``(top, left, bottom, right)``
    in original pixels, N = 0 for references outside the subset), for
    :class:`~fianet_mmseg.models.BatchBlackBoxes` to paint on the device
    after the resize. That is not the reference's computation at the boxes'
    edges (a resized boxed image is not a boxed resized image): see
    docs/differences.md.

    Args:
        ratio (float): Share of references that get boxes. Default: 0.2.
        min_boxes (int): Fewest boxes. Default: 20.
        max_boxes (int): Most boxes (inclusive). Default: 60.
        box_size (int): Side of a box in pixels of the image the transform
            sees. Default: 32.
        seed (int | None): Seed of the fixed subset; None: drawn from the run's
            seeded generator. Default: None.
        paint (bool): Paint the boxes (the reference); False: only record them
            for the device. Default: True.
    """

    def __init__(self, ratio: float = 0.2, min_boxes: int = 20, max_boxes: int = 60,
                 box_size: int = 32, seed: Optional[int] = None, paint: bool = True) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f'RandomBlackBoxes: ratio must be in [0, 1], got {ratio}')
        if not 0 <= min_boxes <= max_boxes:
            raise ValueError(f'RandomBlackBoxes: need 0 <= min_boxes <= max_boxes, '
                             f'got {min_boxes}, {max_boxes}')
        if box_size < 1:
            raise ValueError(f'RandomBlackBoxes: box_size must be >= 1, got {box_size}')
        self.ratio = ratio
        self.min_boxes = min_boxes
        self.max_boxes = max_boxes
        self.box_size = box_size
        self.seed = int(np.random.randint(2**31)) if seed is None else int(seed)
        self.paint = paint

    def is_selected(self, ref_id) -> bool:
        """Whether the reference belongs to the fixed subset that gets boxes."""
        key = f'{self.seed}:{ref_id}'.encode()
        return zlib.crc32(key) / 2**32 < self.ratio

    def draw_boxes(self, height: int, width: int) -> np.ndarray:
        """Draw one load's boxes from numpy's global generator: (N, 4) int64
        ``(top, left, bottom, right)``, 20-60 of them (``min_boxes``-``max_boxes``)."""
        size = self.box_size
        boxes = np.empty((np.random.randint(self.min_boxes, self.max_boxes + 1), 4), np.int64)
        for box in boxes:
            top = np.random.randint(0, max(height - size, 0) + 1)
            left = np.random.randint(0, max(width - size, 0) + 1)
            box[:] = top, left, top + size, left + size
        return boxes

    def transform(self, results: dict) -> dict:
        """Black out (or, ``paint=False``, record) boxes of ``results['img']`` for selected
        references."""
        if 'ref_id' not in results:
            raise KeyError('RandomBlackBoxes needs "ref_id" in the sample')
        height, width = results['img'].shape[:2]
        if not self.paint and tuple(results.get('ori_shape', ())) != (height, width):
            raise ValueError(
                f'RandomBlackBoxes(paint=False) records boxes in pixels of the original image: '
                f'place it right after the image loading (image {height}x{width}, ori_shape '
                f'{results.get("ori_shape")})')
        if not self.is_selected(results['ref_id']):
            if not self.paint:
                results[BLACK_BOXES] = np.zeros((0, 4), np.int64)
            return results
        boxes = self.draw_boxes(height, width)
        if not self.paint:
            results[BLACK_BOXES] = boxes
            return results
        img = results['img'].copy()
        for top, left, bottom, right in boxes:
            img[top:bottom, left:right] = 0
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(ratio={self.ratio}, boxes={self.min_boxes}-'
                f'{self.max_boxes}, box_size={self.box_size}, seed={self.seed}, '
                f'paint={self.paint})')
