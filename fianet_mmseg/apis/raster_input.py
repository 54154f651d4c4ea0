"""Raster input of the API: a window of a GeoTIFF as the model's image.

The reading itself is the project's one image reader,
:func:`fianet_mmseg.utils.image_io.read_image` (every entry point uses it);
:func:`read_geotiff` is that reader with rasterio required. The names the demos
need from the input side are re-exported here, so that they import them from
the API and not from the reader's internals.

Conventions:

* Bands are numbered from 1, as in GDAL / rasterio (``bands=(3, 2, 1)`` makes
  band 3 the red channel).
* Stretch to 8 bit (``stretch='auto'``): uint8 data is kept as it is; other
  integer and float data is stretched per band linearly between its
  ``percentiles`` (default 2 and 98, the "cumulative count cut" of QGIS and
  other RS tools), computed over the valid pixels of the window read; values
  outside are clipped. ``'percentile'`` stretches uint8 data too, ``'none'``
  only clips to [0, 255]. A band whose low and high percentiles are equal
  becomes 0.
* Nodata (the dataset's nodata value, an alpha band; per-band or dataset
  masks when GDAL reads the pixels, see :mod:`~fianet_mmseg.utils.image_io`;
  also NaN / inf in float data) never enters the statistics. A pixel that is
  nodata in any selected band is invalid: black in the model's image, and
  no data in every output (:mod:`~fianet_mmseg.apis.raster_output`,
  :mod:`~fianet_mmseg.apis.vector_output`).

rasterio is optional: ``pip install "fianet-mmseg[geo]"``; it is imported on
first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

from ..utils.image_io import (
    DEFAULT_PERCENTILES,
    GEO_INSTALL_HINT,
    STRETCH_MODES,
    GeoImage,
    is_tiff,
    rasterio_available,
    read_image,
    require_rasterio,
)

__all__ = ['DEFAULT_PERCENTILES', 'GEO_INSTALL_HINT', 'STRETCH_MODES', 'GeoImage', 'is_tiff',
           'rasterio_available', 'read_geotiff', 'require_rasterio']

PathType = Union[str, Path]


def read_geotiff(path: PathType, bands: Optional[Sequence[int]] = None,
                 window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
                 stretch: str = 'auto',
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """Read a window of a raster (GeoTIFF or any GDAL format) as the model's image.

    The same reading as every entry point's
    (:func:`~fianet_mmseg.utils.image_io.read_image`), with rasterio required.

    Args:
        path: The raster file.
        bands: Source bands (from 1) for R, G, B, or one band (grey, repeated).
            Default: the first three (the only one of a single-band raster).
        window: ``(col_off, row_off, width, height)`` in pixels, inside the
            raster.
        bbox: ``(left, bottom, right, top)`` in the raster's CRS; the window
            is every pixel the box touches, cut to the raster.
        stretch, percentiles: See
            :func:`~fianet_mmseg.utils.image_io.stretch_to_uint8` and the
            module's conventions (statistics over the window read).

    Returns:
        GeoImage: The window as 8-bit RGB with its transform and CRS.

    Raises:
        ImportError: rasterio is missing.
        FileNotFoundError: No such file.
        ValueError: Unreadable file, bad bands / window / bbox, a window
            without valid pixels; messages name the file.
    """
    require_rasterio()
    return read_image(path, bands=bands, window=window, bbox=bbox, stretch=stretch,
                      percentiles=percentiles)
