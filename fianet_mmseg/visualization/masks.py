"""A mask drawn over its image: semi-transparent fill and outline.

Images are ``(H, W, 3)`` uint8 in **RGB** order (as mmengine's visualisers
use), colours are RGB tuples, masks are ``(H, W)`` arrays whose non-zero pixels
are the referred object, of their image's size (a mask of another size is an
error naming both shapes, never resized).
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from ..utils.arrays import as_hw_array

Color = Tuple[int, int, int]

PRED_COLOR: Color = (255, 64, 64)  # RefSegDataset's palette entry of the object
GT_COLOR: Color = (64, 220, 64)


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


def check_image(image: np.ndarray) -> None:
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
    check_image(image)
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
