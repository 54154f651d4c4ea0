"""Blending the windows' probabilities into the scene's, one block at a time.

On the model grid, the probability of a pixel is the weighted mean of the
windows that saw it with data, weighted by :func:`~.grid.window_weights` (a
smooth bump, so no window's border makes a seam). A block of the source grid
takes the weighted sums and the weights of the model-grid pixels around it,
interpolates both bilinearly at its pixel centres and divides (normalised
interpolation: no-data model pixels weigh nothing). At the source's own scale
the model grid is the source grid and nothing is interpolated.

Windows are added in window-number order, so a block gets the same bits
whatever order, process or run computed the windows in. Memory: a block and
the few windows over it, never an array of the scene's size.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

from .grid import WindowGrid, window_weights
from .store import WindowStore


class Blender:
    """The blended probability of any block of the source grid.

    Args:
        grid: The scene's windows.
        store: The finished windows' probabilities.
    """

    def __init__(self, grid: WindowGrid, store: WindowStore) -> None:
        self.grid = grid
        self.store = store
        starts = np.array(grid.starts(), dtype=np.int64).reshape(-1, 2)
        self.x0, self.y0 = starts[:, 0], starts[:, 1]
        self.win_w, self.win_h = grid.window
        self.weights = window_weights(self.win_h, self.win_w)

    def windows_over(self, x0: int, y0: int, x1: int, y1: int) -> List[int]:
        """Window numbers that overlap the model-grid rectangle ``[x0, x1) x [y0, y1)``."""
        hit = ((self.x0 < x1) & (self.x0 + self.win_w > x0) & (self.y0 < y1)
               & (self.y0 + self.win_h > y0))
        return [int(index) for index in np.flatnonzero(hit)]

    def model_region(self, x0: int, y0: int, x1: int, y1: int
                     ) -> Tuple[np.ndarray, np.ndarray]:
        """``(weighted sum, weight)``, each ``(y1 - y0, x1 - x0)`` float32, of a model region."""
        total = np.zeros((y1 - y0, x1 - x0), np.float32)
        weight = np.zeros_like(total)
        for index in self.windows_over(x0, y0, x1, y1):
            probability = self.store.load(index)
            if probability is None:  # a window without data
                continue
            wx, wy = int(self.x0[index]), int(self.y0[index])
            ax0, ay0 = max(x0, wx), max(y0, wy)
            ax1, ay1 = min(x1, wx + self.win_w), min(y1, wy + self.win_h)
            part = probability[ay0 - wy:ay1 - wy, ax0 - wx:ax1 - wx]
            part_weight = self.weights[ay0 - wy:ay1 - wy, ax0 - wx:ax1 - wx]
            seen = np.isfinite(part)
            region = (slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0))
            total[region] += np.where(seen, part * part_weight, 0.0)
            weight[region] += np.where(seen, part_weight, 0.0)
        return total, weight

    @staticmethod
    def _axis(coords: np.ndarray, size: int) -> Tuple[int, int, np.ndarray, np.ndarray,
                                                      np.ndarray]:
        """Region ``[start, stop)`` and bilinear taps ``(i0, i1, fraction)`` along one axis."""
        coords = np.clip(coords, 0.0, size - 1.0)
        low = np.floor(coords).astype(np.int64)
        start = int(low.min())
        stop = min(size, int(low.max()) + 2)
        i0 = low - start
        i1 = np.minimum(i0 + 1, stop - start - 1)
        return start, stop, i0, i1, (coords - low).astype(np.float32)

    def source_block(self, col: int, row: int, width: int, height: int) -> np.ndarray:
        """``(height, width)`` float32 blended probability of a source block (NaN: no window)."""
        if self.grid.native:
            total, weight = self.model_region(col, row, col + width, row + height)
        else:
            model_w, model_h = self.grid.model_size
            x_start, x_stop, x0, x1, fx = self._axis(
                self.grid.model_coordinates(0, col, width), model_w)
            y_start, y_stop, y0, y1, fy = self._axis(
                self.grid.model_coordinates(1, row, height), model_h)
            region_total, region_weight = self.model_region(x_start, y_start, x_stop, y_stop)

            def interpolate(values: np.ndarray) -> np.ndarray:
                across = values[:, x0] * (1 - fx) + values[:, x1] * fx
                return across[y0] * (1 - fy)[:, None] + across[y1] * fy[:, None]

            total, weight = interpolate(region_total), interpolate(region_weight)
        probability = np.full(total.shape, np.nan, np.float32)
        np.divide(total, weight, out=probability, where=weight > 0)
        return np.clip(probability, 0.0, 1.0, out=probability)


def blocks(width: int, height: int, side: int) -> List[Tuple[int, int, int, int]]:
    """``(col, row, width, height)`` of the ``side``-pixel blocks of a raster, in raster order."""
    return [(col, row, min(side, width - col), min(side, height - row))
            for row in range(0, height, side) for col in range(0, width, side)]


def block_count(width: int, height: int, side: int) -> int:
    return math.ceil(width / side) * math.ceil(height / side)
