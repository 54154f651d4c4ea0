"""Where the windows of a scene go: the ground sampling distance and the window grid.

Conventions:

* GSD (ground sampling distance): metres per pixel, ``(x, y)``. A projected
  CRS gives it from the transform and the CRS's linear unit; a geographic CRS
  (degrees) from a spherical Earth (mean radius 6371008.8 m) at the latitude
  of the raster's centre (within 0.5% of the ellipsoid's value below 60
  degrees); a raster without CRS has none (pixel coordinates).
* The **model grid** is the scene resampled to the target GSD: ``scale = (sx,
  sy)`` source pixels per model pixel along x and y (``(1, 1)``: the source grid
  itself), ``ceil(width / sx)`` x ``ceil(height / sy)`` model pixels, model
  pixel ``(x, y)`` covering source columns ``[x * sx, (x + 1) * sx)`` and rows
  ``[y * sy, (y + 1) * sy)``.
* Windows are the model's input size on the model grid, placed like mmseg's
  sliding-window inference: every ``stride`` pixels from 0, the last one moved
  back to end at the grid's edge; a grid smaller than a window gets one window
  that runs past the edge (read as no data there).
* Windows are numbered in raster order (rows of windows, top to bottom, each
  left to right), and batches are consecutive runs of ``batch_size`` windows:
  the same scene and options give the same batches, whatever the number of
  processes and wherever a run was resumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

#: Mean Earth radius (IUGG), metres: degrees of a geographic CRS -> metres.
EARTH_RADIUS_M = 6371008.8


def raster_gsd(crs, transform, width: int, height: int) -> Optional[Tuple[float, float]]:
    """Metres per pixel ``(x, y)`` of a raster, or None without a CRS."""
    if crs is None:
        return None
    size_x = math.hypot(transform.a, transform.d)
    size_y = math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        lat = transform * (width / 2.0, height / 2.0)
        metres_per_degree = math.radians(1.0) * EARTH_RADIUS_M
        return (size_x * metres_per_degree * math.cos(math.radians(lat[1])),
                size_y * metres_per_degree)
    _, factor = crs.linear_units_factor
    return size_x * factor, size_y * factor


def axis_starts(length: int, window: int, stride: int) -> List[int]:
    """Window starts along one axis of ``length`` pixels (mmseg's sliding-window rule)."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return [min(index * stride, length - window) for index in range(count)]


def window_weights(height: int, width: int) -> np.ndarray:
    """``(height, width)`` float32 blending weight of a window: a 2-D Hann (sine-squared) bump.

    Largest in the middle, about ``(pi / 2n)^2`` at the border pixels (never 0),
    so a pixel near a window's border counts little where another window sees
    it from its middle, and fully where it is the only one.
    """
    def hann(n: int) -> np.ndarray:
        return np.sin(np.pi * (np.arange(n, dtype=np.float64) + 0.5) / n) ** 2

    return np.outer(hann(height), hann(width)).astype(np.float32)


@dataclass(frozen=True)
class WindowGrid:
    """The windows of a scene on its model grid.

    Attributes:
        width, height: The source raster, pixels.
        scale: ``(sx, sy)`` source pixels per model pixel (target GSD / source GSD).
        window: ``(width, height)`` of a window, model pixels (the model's input).
        stride: ``(x, y)`` step between windows, model pixels.
    """

    width: int
    height: int
    scale: Tuple[float, float]
    window: Tuple[int, int]
    stride: Tuple[int, int]

    def __post_init__(self) -> None:
        if not (self.scale[0] > 0 and self.scale[1] > 0):
            raise ValueError(f'scale must be positive, got {self.scale}')
        for name, (x, y) in (('window', self.window), ('stride', self.stride)):
            if x < 1 or y < 1:
                raise ValueError(f'{name} must be positive, got {(x, y)}')
        if self.stride[0] > self.window[0] or self.stride[1] > self.window[1]:
            raise ValueError(f'the stride {self.stride} is larger than the window '
                             f'{self.window}: parts of the scene would be in no window')

    @property
    def model_size(self) -> Tuple[int, int]:
        """``(width, height)`` of the model grid."""
        return (math.ceil(self.width / self.scale[0] - 1e-9),
                math.ceil(self.height / self.scale[1] - 1e-9))

    def starts(self) -> List[Tuple[int, int]]:
        """``(x, y)`` model-grid origin of every window, in window-number order."""
        model_w, model_h = self.model_size
        xs = axis_starts(model_w, self.window[0], self.stride[0])
        ys = axis_starts(model_h, self.window[1], self.stride[1])
        return [(x, y) for y in ys for x in xs]

    def source_window(self, x: int, y: int) -> Tuple[float, float, float, float]:
        """``(col_off, row_off, width, height)`` in source pixels of the window at ``(x, y)``."""
        sx, sy = self.scale
        return x * sx, y * sy, self.window[0] * sx, self.window[1] * sy

    def batches(self, batch_size: int) -> List[List[int]]:
        """Window numbers of each batch: consecutive runs of ``batch_size``."""
        count = len(self.starts())
        return [list(range(start, min(start + batch_size, count)))
                for start in range(0, count, batch_size)]

    @property
    def native(self) -> bool:
        """Whether the model grid is the source grid."""
        return self.scale == (1.0, 1.0)

    def model_coordinates(self, axis: int, start: int, count: int) -> np.ndarray:
        """Model-grid coordinate (``axis`` 0: x, 1: y) of the centres of source pixels
        ``start .. start + count - 1``: ``(i + 0.5) / s - 0.5``, the model pixel whose centre
        a source pixel's centre falls on (fractions between two)."""
        index = np.arange(start, start + count, dtype=np.float64)
        return (index + 0.5) / self.scale[axis] - 0.5
