"""Windows of a scene, read through rasterio at any scale, never the whole scene.

Conventions (the same reading as :func:`~fianet_mmseg.utils.image_io.read_image`
where a scene allows it):

* Bands from 1 (``bands``: three for R, G, B or one for grey, default the first
  three / the only one); pixels that are nodata in a selected band (nodata
  value, mask band, alpha 0, NaN / inf) are invalid.
* One stretch for the whole scene, so that a pixel gets the same 8-bit value in
  every window (a per-window stretch would make seams and answers that change
  with the extent): uint8 data is used as it is; other data is stretched per
  band between the ``percentiles`` (default 2 and 98) of the valid pixels of a
  decimated read of the scene (at most 1024 pixels on its longer side; GDAL
  takes it from the overviews when the file has them), with the linear map of
  :func:`~fianet_mmseg.utils.image_io.stretch_to_uint8`.
* A window is read with GDAL's resampling into the model's input size:
  nearest at the source's own scale (the pixels as stored), ``average`` when
  shrinking, ``bilinear`` when enlarging. GDAL reads a shrunk window from the
  overview that fits (a Cloud-Optimised GeoTIFF's), and a window running past
  the raster's edge as no data there.
"""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ...utils.image_io import check_bands, stretch_to_uint8
from ..raster_input import DEFAULT_PERCENTILES, STRETCH_MODES, require_rasterio
from .grid import raster_gsd

#: Longer side of the decimated read the stretch statistics come from.
STATISTICS_SIDE = 1024


class SceneReader:
    """A raster opened for windowed reads (a context manager; :meth:`close` it).

    Args:
        path: The raster (GeoTIFF, COG or any GDAL format).
        bands: Source bands (from 1) for R, G, B, or one (grey).
        stretch: ``'auto'``, ``'percentile'`` or ``'none'`` (see the module).
        percentiles: ``(low, high)`` of the stretch.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a raster GDAL reads, bad bands, no valid pixel;
            messages name the file.
    """

    def __init__(self, path: str, bands: Optional[Sequence[int]] = None, stretch: str = 'auto',
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> None:
        rasterio = require_rasterio()
        from rasterio.enums import ColorInterp
        from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

        self.path = str(path)
        if not osp.isfile(self.path):
            raise FileNotFoundError(f'scene {self.path} does not exist')
        if stretch not in STRETCH_MODES:
            raise ValueError(f'stretch must be one of {STRETCH_MODES}, got {stretch!r}')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            try:
                self.src = rasterio.open(self.path)
            except RasterioIOError as err:
                raise ValueError(f'{self.path}: cannot read the scene as a raster ({err})') \
                    from err
        src = self.src
        count = src.count
        colours = count - int(count > 1 and src.colorinterp[-1] == ColorInterp.alpha)
        self.bands = check_bands(bands, count, colours, self.path)
        self.width, self.height = src.width, src.height
        self.crs = src.crs
        self.transform = src.transform
        self.gsd = raster_gsd(src.crs, src.transform, src.width, src.height)
        self.dtype = np.dtype(src.dtypes[self.bands[0] - 1])
        self.stretch = stretch
        self.percentiles = tuple(float(p) for p in percentiles)
        self.limits = self._stretch_limits()

    # ------------------------------------------------------------------ reading
    def _read(self, window: Tuple[float, float, float, float], out_shape: Tuple[int, int],
              resampling: Any) -> Tuple[np.ndarray, np.ndarray]:
        """``((C, h, w) values, (h, w) valid)`` of a (fractional) window, resampled."""
        from rasterio.windows import Window

        col, row, width, height = window
        inside = col >= 0 and row >= 0 and col + width <= self.width + 1e-9 \
            and row + height <= self.height + 1e-9
        data = self.src.read(list(self.bands), window=Window(col, row, width, height),
                             out_shape=(len(self.bands), *out_shape), resampling=resampling,
                             masked=True, boundless=not inside)
        invalid = np.ma.getmaskarray(data).any(axis=0)
        values = np.ma.getdata(data)
        if values.dtype.kind in 'fc':
            invalid |= ~np.isfinite(values).all(axis=0)
        return values, ~invalid

    def _stretch_limits(self) -> Optional[List[Tuple[float, float]]]:
        """Per band ``(low, high)`` mapped to 0 and 255; None: values used as they are."""
        from rasterio.enums import Resampling

        if self.stretch == 'none' or (self.stretch == 'auto' and self.dtype == np.uint8):
            return None
        step = max(1.0, max(self.width, self.height) / STATISTICS_SIDE)
        shape = (max(1, round(self.height / step)), max(1, round(self.width / step)))
        values, valid = self._read((0, 0, self.width, self.height), shape, Resampling.nearest)
        if not valid.any():
            raise ValueError(f'{self.path}: no valid pixel in the scene (all nodata)')
        _, limits = stretch_to_uint8(values, valid, 'percentile', self.percentiles)
        return limits

    def to_uint8(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``(C, h, w)`` source values -> ``(h, w, 3)`` uint8 RGB with the scene's stretch."""
        if self.limits is None:
            if values.dtype == np.uint8:
                out = values.copy()
            else:
                out = np.clip(np.rint(values.astype(np.float64)), 0, 255).astype(np.uint8)
        else:
            out = np.zeros(values.shape, np.uint8)
            for index, (low, high) in enumerate(self.limits):
                if high > low:
                    scaled = (values[index].astype(np.float64) - low) * (255.0 / (high - low))
                    out[index] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        out[:, ~valid] = 0
        if out.shape[0] == 1:
            out = np.repeat(out, 3, axis=0)
        return np.ascontiguousarray(out.transpose(1, 2, 0))

    def read_window(self, window: Tuple[float, float, float, float],
                    out_shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """A window as the model's image: ``((h, w, 3) uint8 RGB, (h, w) bool valid)``.

        Args:
            window: ``(col_off, row_off, width, height)`` in source pixels
                (fractions allowed; past the edges is no data).
            out_shape: ``(h, w)`` of the result.
        """
        from rasterio.enums import Resampling

        col, row, width, height = window
        same_scale = (abs(width - out_shape[1]) < 1e-9 and abs(height - out_shape[0]) < 1e-9
                      and float(col).is_integer() and float(row).is_integer())
        if same_scale:
            resampling = Resampling.nearest
        elif width > out_shape[1]:
            resampling = Resampling.average
        else:
            resampling = Resampling.bilinear
        values, valid = self._read(window, out_shape, resampling)
        return self.to_uint8(values, valid), valid

    def read_valid(self, col: int, row: int, width: int, height: int) -> np.ndarray:
        """``(height, width)`` bool: the source pixels of a block that have data."""
        from rasterio.enums import Resampling

        return self._read((col, row, width, height), (height, width), Resampling.nearest)[1]

    def close(self) -> None:
        self.src.close()

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
