"""A scene and its mask at display size, read through the overviews (never the whole scene)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..raster_input import DEFAULT_PERCENTILES
from .reader import SceneReader

#: Default longest side of a preview.
PREVIEW_SIDE = 512


def display_shape(height: int, width: int, side: int = PREVIEW_SIDE) -> Tuple[int, int]:
    """``(h, w)`` of an image shown at most ``side`` pixels a side: a small image enlarged
    by the largest whole factor that fits, a large one shrunk to fit."""
    longest = max(height, width)
    if longest <= side:
        factor = side // longest
        return height * factor, width * factor
    return max(1, round(height * side / longest)), max(1, round(width * side / longest))


def scene_preview(scene: str, mask_path: str, side: int = PREVIEW_SIDE,
                  bands: Optional[Sequence[int]] = None,
                  percentiles: Sequence[float] = DEFAULT_PERCENTILES
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """``((h, w, 3) uint8 RGB, (h, w) bool mask)`` of a scene and its ``mask.tif`` at
    :func:`display_shape` (the scene with its stretch, averaged; the mask by nearest)."""
    import rasterio
    from rasterio.enums import Resampling

    with SceneReader(scene, bands=bands, percentiles=percentiles) as reader:
        shape = display_shape(reader.height, reader.width, side)
        rgb, _ = reader.read_window((0, 0, reader.width, reader.height), shape)
    with rasterio.open(mask_path) as src:
        mask = src.read(1, out_shape=shape, resampling=Resampling.nearest) == 1
    return rgb, mask
