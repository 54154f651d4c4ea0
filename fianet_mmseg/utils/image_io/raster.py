"""GDAL's reading through rasterio (the extra ``geo``): windows, bboxes, any raster."""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from .geo_image import GeoImage, Window
from .stretch import DEFAULT_PERCENTILES, check_bands, check_percentiles, to_model_image

GEO_INSTALL_HINT = 'pip install "fianet-mmseg[geo]"'


def require_rasterio() -> Any:
    """Import rasterio, or raise an ImportError that says how to install it."""
    try:
        import rasterio
    except ImportError as err:
        raise ImportError(f'GeoTIFF input and georeferenced outputs need rasterio: '
                          f'{GEO_INSTALL_HINT}') from err
    return rasterio


def rasterio_available() -> bool:
    """Whether rasterio can be imported."""
    try:
        require_rasterio()
    except ImportError:
        return False
    return True


def pixel_window(src: Any, window: Optional[Sequence[int]], bbox: Optional[Sequence[float]],
                  where: str) -> Window:
    """The integer window to read: given, from a bounding box, or the whole raster."""
    if window is not None and bbox is not None:
        raise ValueError(f'{where}: give a window or a bbox, not both')
    if window is not None:
        if len(window) != 4 or any(isinstance(v, bool) or int(v) != v for v in window):
            raise ValueError(f'{where}: window must be 4 integers (col_off, row_off, width, '
                             f'height), got {window!r}')
        col, row, width, height = (int(v) for v in window)
        if width <= 0 or height <= 0 or col < 0 or row < 0 or col + width > src.width \
                or row + height > src.height:
            raise ValueError(f'{where}: window (col_off={col}, row_off={row}, width={width}, '
                             f'height={height}) is not inside the raster of {src.width}x'
                             f'{src.height} pixels')
        return col, row, width, height
    if bbox is not None:
        from rasterio.windows import from_bounds

        if len(bbox) != 4:
            raise ValueError(f'{where}: bbox must be (left, bottom, right, top), got {bbox!r}')
        left, bottom, right, top = (float(v) for v in bbox)
        if not (left < right and bottom < top):
            raise ValueError(f'{where}: bbox must have left < right and bottom < top, got '
                             f'{bbox!r}')
        float_window = from_bounds(left, bottom, right, top, transform=src.transform)
        # every pixel the box touches, cut to the raster
        eps = 1e-6
        col0 = max(0, math.floor(float_window.col_off + eps))
        row0 = max(0, math.floor(float_window.row_off + eps))
        col1 = min(src.width, math.ceil(float_window.col_off + float_window.width - eps))
        row1 = min(src.height, math.ceil(float_window.row_off + float_window.height - eps))
        if col1 <= col0 or row1 <= row0:
            raise ValueError(f'{where}: bbox {tuple(bbox)} does not overlap the raster '
                             f'(bounds {tuple(src.bounds)} in {src.crs})')
        return col0, row0, col1 - col0, row1 - row0
    return 0, 0, src.width, src.height


def read_raster(src: Any, where: str, bands: Optional[Sequence[int]] = None,
                window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
                stretch: str = 'auto',
                percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """GDAL's reading of an open rasterio dataset: a window of it as the model's image.

    The pixels and the masks (nodata value, mask bands, alpha) are GDAL's.
    :func:`read_image` uses it for windows and for
    the rasters that Pillow and OpenCV cannot decode.

    Args:
        src: An open ``rasterio`` dataset.
        where: The source (file name) for messages and ``GeoImage.path``.
        bands, window, bbox, stretch, percentiles: As in :func:`read_geotiff`.
    """
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window as RioWindow

    check_percentiles(percentiles)
    count = src.count
    colours = count - int(count > 1 and src.colorinterp[-1] == ColorInterp.alpha)
    bands = check_bands(bands, count, colours, where)
    col, row, width, height = pixel_window(src, window, bbox, where)
    rio_window = RioWindow(col, row, width, height)
    data = src.read(list(bands), window=rio_window, masked=True)
    transform = src.window_transform(rio_window)
    invalid = np.ma.getmaskarray(data).any(axis=0)
    values = np.ma.getdata(data)
    if bands == (1,) and src.colorinterp[0] == ColorInterp.palette:  # colours, as Pillow
        colormap = src.colormap(1)
        lut = np.zeros((max(256, max(colormap) + 1), 3), np.uint8)
        for index, colour in colormap.items():
            lut[index] = colour[:3]
        values = np.ascontiguousarray(lut[values[0]].transpose(2, 0, 1))
        bands = (1, 1, 1)
    if np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating):
        invalid |= ~np.isfinite(values).all(axis=0)
    valid = ~invalid
    if not valid.any():
        raise ValueError(f'{where}: the window (col_off={col}, row_off={row}, width={width}, '
                         f'height={height}) has no valid pixel (all nodata)')
    image, limits = to_model_image(values, valid, stretch, percentiles, where)
    return GeoImage(image=image, valid=valid, transform=transform, crs=src.crs, path=where,
                    bands=bands, window=(col, row, width, height), stretch=limits)


class RasterOpenError(ValueError):
    """GDAL cannot open a file (the message names it)."""


@contextmanager
def open_raster(source: Union[str, bytes], where: str) -> Iterator[Any]:
    """A rasterio dataset of a file or of bytes; :class:`RasterOpenError` if GDAL cannot."""
    rasterio = require_rasterio()
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        memory = MemoryFile(source) if isinstance(source, bytes) else None
        try:
            src = memory.open() if memory is not None else rasterio.open(source)
        except RasterioIOError as err:
            if memory is not None:
                memory.close()
            raise RasterOpenError(f'{where}: cannot read the raster ({err})') from err
        try:
            with src:
                yield src
        finally:
            if memory is not None:
                memory.close()


def georeferencing(path: str, shape: Tuple[int, int]) -> Tuple[Any, Any]:
    """``(transform, crs)`` of a file as GDAL sees it; ``(None, None)`` when it cannot."""
    try:
        with open_raster(path, path) as src:
            if (src.height, src.width) != tuple(shape):
                return None, None
            return src.transform, src.crs
    except RasterOpenError:
        return None, None
