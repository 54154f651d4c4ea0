"""The one reader of every entry point: :func:`read_image` (a file), :func:`decode_image`."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence, Union

from .decoders import decode_channels, to_geo_image
from .geo_image import GeoImage, PathType
from .headers import describe_tiff, tiff_tags
from .raster import (
    GEO_INSTALL_HINT,
    RasterOpenError,
    georeferencing,
    open_raster,
    rasterio_available,
    read_raster,
)
from .stretch import DEFAULT_PERCENTILES


def _undecodable(content: bytes, where: str) -> Exception:
    """The error for a file neither Pillow nor OpenCV decodes (rasterio missing)."""
    tags = tiff_tags(content)
    if tags:
        return ImportError(f'{where}: {describe_tiff(tags)}, which Pillow and OpenCV cannot '
                           f'read faithfully; reading it needs rasterio: {GEO_INSTALL_HINT}')
    return ValueError(f'cannot read image {where}: Pillow and OpenCV cannot decode it (a PNG, '
                      'JPEG, TIFF, BMP or WebP image expected)')


def _read_with_gdal(source: Union[str, bytes], content: bytes, where: str,
                    bands: Optional[Sequence[int]], stretch: str,
                    percentiles: Sequence[float]) -> GeoImage:
    """A file Pillow and OpenCV cannot decode: GDAL's reading, else an error naming the file."""
    if not rasterio_available():
        raise _undecodable(content, where)
    try:
        with open_raster(source, where) as src:
            return read_raster(src, where, bands, None, None, stretch, percentiles)
    except RasterOpenError as err:
        raise ValueError(f'cannot read image {where}: Pillow, OpenCV and GDAL cannot decode '
                         f'it ({err})') from err


# ---------------------------------------------------------------------- API
def decode_image(content: bytes, where: str, bands: Optional[Sequence[int]] = None,
                 stretch: str = 'auto',
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """The model's image of a file's bytes (see :mod:`fianet_mmseg.utils.image_io`).

    What the data sets' loader uses (the bytes come from ``mmengine.fileio``).
    Without georeferencing unless GDAL had to read the pixels.

    Args:
        content: The file's bytes.
        where: The file, for messages and ``GeoImage.path``.
        bands, stretch, percentiles: As in :func:`read_image`.

    Raises:
        ImportError: A raster only GDAL reads, without rasterio.
        ValueError: Not an image, bad bands, no valid pixel; messages name
            ``where``.
        OSError: Pillow's decoding errors of a broken file (truncated...).
    """
    decoded = decode_channels(content, where)
    if decoded is not None:
        return to_geo_image(decoded, where, bands, stretch, percentiles)
    return _read_with_gdal(content, content, where, bands, stretch, percentiles)


def read_image(path: PathType, bands: Optional[Sequence[int]] = None,
               window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
               stretch: str = 'auto',
               percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """The model's image of an image file: the one reader of every entry point.

    Args:
        path: PNG, JPEG, TIFF / GeoTIFF, BMP, WebP... of any bit depth.
        bands: Source bands (from 1) for R, G, B, or one (grey). Default: the
            first three colour bands, or the only one.
        window: ``(col_off, row_off, width, height)`` to read (GDAL; needs
            rasterio).
        bbox: ``(left, bottom, right, top)`` in the raster's CRS (GDAL; needs
            rasterio).
        stretch, percentiles: See :func:`stretch_to_uint8`.

    Returns:
        GeoImage: ``image`` (H, W, 3) uint8 RGB, ``valid``, the georeferencing
        (``transform`` None without rasterio), ``bands``, ``stretch``.

    Raises:
        FileNotFoundError: No such file.
        ImportError: A window / bbox, or a raster only GDAL reads, without
            rasterio (the message names the file and the extra).
        ValueError: Not an image, bad bands / window / bbox, no valid pixel;
            messages name the file.
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file {path} does not exist')
    if window is not None or bbox is not None:
        if not rasterio_available():
            raise ImportError(f'{path}: reading a window or bbox needs rasterio: '
                              f'{GEO_INSTALL_HINT}')
        with open_raster(path, path) as src:
            return read_raster(src, path, bands, window, bbox, stretch, percentiles)
    with open(path, 'rb') as file:
        content = file.read()
    decoded = decode_channels(content, path)
    if decoded is None:
        return _read_with_gdal(path, content, path, bands, stretch, percentiles)
    transform = crs = None
    if rasterio_available():
        transform, crs = georeferencing(path, decoded.data.shape[:2])
    return to_geo_image(decoded, path, bands, stretch, percentiles, transform, crs)
