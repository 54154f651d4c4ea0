"""The model's image of a raster window with its georeferencing (:class:`GeoImage`)."""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import cv2
import numpy as np

PathType = Union[str, Path]
Window = Tuple[int, int, int, int]  # col_off, row_off, width, height

TIFF_SUFFIXES = ('.tif', '.tiff')


def is_tiff(path: Any) -> bool:
    """Whether ``path`` is a file name ending in ``.tif`` / ``.tiff``."""
    return isinstance(path, (str, Path)) and osp.splitext(str(path))[1].lower() in TIFF_SUFFIXES


@dataclass
class GeoImage:
    """A window of a raster as the model's 8-bit RGB image, with its georeferencing.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 **RGB** (stretched bands).
        valid (np.ndarray): ``(H, W)`` bool, False where a selected band has
            no data.
        transform (affine.Affine | None): Pixel (column, row) -> CRS
            coordinates of the window's pixel corners (identity for rasters
            without georeferencing; None for images read without rasterio).
        crs (rasterio.crs.CRS | None): The source's CRS.
        path (str | None): The source file.
        bands (tuple[int]): Source bands (from 1) of the R, G, B channels.
        window (tuple[int]): ``(col_off, row_off, width, height)`` read.
        stretch (list[tuple[float, float]] | None): Per channel, the source
            values mapped to 0 and 255 (None: no stretch).
    """

    image: np.ndarray
    valid: np.ndarray
    transform: Any
    crs: Any = None
    path: Optional[str] = None
    bands: Tuple[int, ...] = (1, 2, 3)
    window: Window = (0, 0, 0, 0)
    stretch: Optional[List[Tuple[float, float]]] = field(default=None)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f'GeoImage: image must be (H, W, 3) uint8, got {self.image.shape} '
                             f'{self.image.dtype}')
        if self.valid.shape != self.image.shape[:2]:
            raise ValueError(f'GeoImage: valid has shape {self.valid.shape}, image '
                             f'{self.image.shape[:2]}')

    @property
    def bgr(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 BGR (what the inference pipeline takes), a new array."""
        return cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR)  # a fast copy of the swap

    @property
    def shape(self) -> Tuple[int, int]:
        """``(H, W)``."""
        return self.image.shape[:2]

    @property
    def georeferenced(self) -> bool:
        """True when the source has a CRS or a non-identity transform."""
        return self.crs is not None or (self.transform is not None
                                        and not self.transform.is_identity)
