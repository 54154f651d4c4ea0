"""Batch augmentations on the device: the reference's black boxes, painted after the resize."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..constants import BLACK_BOXES


def box_coverage(boxes: Tensor, original_size: Tuple[int, int],
                 size: Tuple[int, int]) -> Tensor:
    """The share of each resized pixel that the boxes cover in the original image.

    Args:
        boxes (Tensor): (N, 4) ``(top, left, bottom, right)`` in original pixels.
        original_size (tuple[int, int]): ``(H0, W0)`` of the original image.
        size (tuple[int, int]): ``(H, W)`` of the resized image.

    Returns:
        Tensor: (H, W) float32 in [0, 1]: the 0/1 box mask of the original image
        resized with torch's antialiased bilinear filter (the filter of
        Pillow's bilinear resize); exactly 0 where no box is within the
        filter's reach, the box mask itself when ``size`` is the original size.
    """
    height, width = original_size
    top, left, bottom, right = boxes.long().unbind(-1)
    top, bottom = top.clamp(0, height), bottom.clamp(0, height)
    left, right = left.clamp(0, width), right.clamp(0, width)
    # each box as +1/-1 at its four corners; two cumulative sums count the boxes over a pixel
    corners = torch.zeros((height + 1, width + 1), dtype=torch.int32, device=boxes.device)
    ones = torch.ones_like(top, dtype=torch.int32)
    for rows, cols, sign in ((top, left, 1), (top, right, -1), (bottom, left, -1),
                             (bottom, right, 1)):
        corners.index_put_((rows, cols), sign * ones, accumulate=True)
    covered = corners.cumsum(0).cumsum(1)[:height, :width] > 0
    coverage = F.interpolate(covered[None, None].float(), size=tuple(size), mode='bilinear',
                             align_corners=False, antialias=True)
    return coverage[0, 0]


@MODELS.register_module()
class BatchBlackBoxes(nn.Module):
    """Paint the black boxes that ``RandomBlackBoxes(paint=False)`` drew, on the device.

    A batch augmentation of :class:`RefSegDataPreProcessor` (``batch_augments``,
    training only, after the normalisation). The loader workers draw the
    boxes exactly as the per-sample transform does (the same references, the
    same boxes for the same seed) and pass them as the ``black_boxes`` data
    field; here each normalised image (3, H, W) is blended towards black
    (``(0 - mean) / std``) by the boxes' coverage of each resized pixel
    (:func:`box_coverage`). Pixels out of the boxes' reach stay bit-identical;
    pixels inside them become black; at the box edges the result approximates
    the reference's resize of the boxed image (docs/differences.md gives the
    measured difference). Samples without boxes are left alone.

    Args:
        mean (Sequence[float]): The data preprocessor's per-channel mean.
        std (Sequence[float]): The data preprocessor's per-channel std.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.register_buffer('black', (0 - mean_t) / std_t, persistent=False)

    def forward(self, inputs: Tensor, data_samples: list) -> Tuple[Tensor, list]:
        """Paint the boxes into ``inputs`` ((B, 3, H, W), normalised) in place."""
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            for index, sample in enumerate(data_samples):
                boxes = sample.get(BLACK_BOXES)
                if boxes is None or boxes.shape[0] == 0:
                    continue
                if 'ori_shape' not in sample:
                    raise KeyError('BatchBlackBoxes needs the ori_shape metainfo of the sample')
                height, width = sample.img_shape[:2] if 'img_shape' in sample \
                    else inputs.shape[-2:]
                coverage = box_coverage(boxes, sample.ori_shape[:2], (height, width))
                image = inputs[index, :, :height, :width]
                # exact at both ends: coverage 0 keeps the pixel, coverage 1 gives black
                image.lerp_(self.black.to(image.dtype).expand_as(image), coverage.to(image.dtype))
        return inputs, data_samples


class BatchAugments(nn.Module):
    """Batch augmentations applied one after the other, each ``(inputs, data_samples)`` ->
    ``(inputs, data_samples)`` (a module, so that buffers move with the preprocessor)."""

    def __init__(self, augments: Sequence[nn.Module]) -> None:
        super().__init__()
        self.augments = nn.ModuleList(augments)

    def forward(self, inputs: Tensor, data_samples: list) -> Tuple[Tensor, list]:
        for augment in self.augments:
            inputs, data_samples = augment(inputs, data_samples)
        return inputs, data_samples
