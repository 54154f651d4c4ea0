"""GeoTIFF in, georeferenced masks and polygons out.

Remote-sensing scenes are often 16-bit or float, with more than three bands, a
CRS and a geotransform, and far larger than the model's input (the test
pipeline resizes every input to 480x480). :func:`read_geotiff` turns a window
of such a scene into the 8-bit RGB image the model takes, keeping the
georeferencing of the window (with the project's one image reader,
:func:`fianet_mmseg.apis.image_io.read_image`, which every entry point uses);
:func:`write_mask_geotiff` and
:func:`mask_to_geojson` / :func:`prediction_to_geojson` put a predicted mask
back on the map.

Example::

    from fianet_mmseg.apis import (inference_model, init_model, read_geotiff,
                                   prediction_to_geojson, write_geojson,
                                   write_mask_geotiff)

    model = init_model(CONFIG, CHECKPOINT)
    scene = read_geotiff('scene.tif', bands=(3, 2, 1), window=(2048, 1024, 512, 512))
    result = inference_model(model, scene, 'the storage tank on the lower left')
    write_mask_geotiff('mask.tif', result.pred_sem_seg.data[0], scene)
    write_geojson('tanks.geojson', prediction_to_geojson(result, scene, dst_crs='EPSG:4326'))

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
  masks when GDAL reads the pixels, see :mod:`~fianet_mmseg.apis.image_io`;
  also NaN / inf in float data) never enters the statistics. A pixel that is
  nodata in any selected band is invalid: black in the model's image, value
  :data:`MASK_NODATA` in the mask GeoTIFF, and in no polygon.
* Mask GeoTIFF: one uint8 band, 1 = referred object, 0 = background,
  :data:`MASK_NODATA` (declared as the band's nodata) = no data in the source.

rasterio (and shapely, for simplified polygons) are optional:
``pip install "fianet-mmseg[geo]"``. This module imports them on first use.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils.arrays import as_hw_array

PathType = Union[str, Path]
Window = Tuple[int, int, int, int]  # col_off, row_off, width, height
BBox = Tuple[float, float, float, float]  # left, bottom, right, top

GEO_INSTALL_HINT = 'pip install "fianet-mmseg[geo]"'
TIFF_SUFFIXES = ('.tif', '.tiff')
STRETCH_MODES = ('auto', 'percentile', 'none')
DEFAULT_PERCENTILES = (2.0, 98.0)
#: Mask value of pixels without data in the source (the mask GeoTIFF's nodata).
MASK_NODATA = 255


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
        """``(H, W, 3)`` uint8 BGR (what the inference pipeline takes)."""
        return np.ascontiguousarray(self.image[..., ::-1])

    @property
    def shape(self) -> Tuple[int, int]:
        """``(H, W)``."""
        return self.image.shape[:2]

    @property
    def georeferenced(self) -> bool:
        """True when the source has a CRS or a non-identity transform."""
        return self.crs is not None or (self.transform is not None
                                        and not self.transform.is_identity)


# ------------------------------------------------------------------------- input
def _check_percentiles(percentiles: Sequence[float]) -> Tuple[float, float]:
    if len(percentiles) != 2:
        raise ValueError(f'percentiles must be (low, high), got {percentiles!r}')
    low, high = (float(p) for p in percentiles)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f'percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}')
    return low, high


def stretch_to_uint8(data: np.ndarray, valid: np.ndarray, mode: str = 'auto',
                     percentiles: Sequence[float] = DEFAULT_PERCENTILES
                     ) -> Tuple[np.ndarray, Optional[List[Tuple[float, float]]]]:
    """Map bands to 8 bit (see the module's conventions).

    Args:
        data: ``(C, H, W)`` array of any numeric dtype.
        valid: ``(H, W)`` bool; only these pixels enter the statistics.
        mode: ``'auto'``, ``'percentile'`` or ``'none'``.
        percentiles: ``(low, high)`` in [0, 100].

    Returns:
        tuple: ``((C, H, W) uint8 with invalid pixels 0, [(low, high)] per band
        or None when not stretched)``.

    Raises:
        ValueError: Unknown mode, bad percentiles, no valid pixel.
    """
    if mode not in STRETCH_MODES:
        raise ValueError(f'stretch must be one of {STRETCH_MODES}, got {mode!r}')
    low_p, high_p = _check_percentiles(percentiles)
    if not valid.any():
        raise ValueError('no valid pixel to stretch (everything is nodata)')
    if mode == 'auto':
        mode = 'none' if data.dtype == np.uint8 else 'percentile'
    out = np.zeros(data.shape, dtype=np.uint8)
    if mode == 'none':
        out[:, valid] = np.clip(np.rint(data[:, valid].astype(np.float64)), 0, 255)
        return out, None
    limits = []
    for index, band in enumerate(data):
        values = band[valid].astype(np.float64)
        low, high = (float(v) for v in np.percentile(values, [low_p, high_p]))
        limits.append((low, high))
        if high > low:
            scaled = (values - low) * (255.0 / (high - low))
            out[index, valid] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out, limits


def _pixel_window(src: Any, window: Optional[Sequence[int]], bbox: Optional[Sequence[float]],
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


def check_bands(bands: Optional[Sequence[int]], count: int, colours: int,
                where: str) -> Tuple[int, ...]:
    """The source bands (from 1) of R, G, B, or of the grey channel.

    Args:
        bands: Chosen bands, or None for the default: the first three colour
            bands, or the only one.
        count: Bands in the source (an alpha channel included).
        colours: Bands that are not alpha (the first ``colours`` ones).
        where: The source, for error messages.

    Raises:
        ValueError: Not 3 or 1 bands, a band that does not exist, or no
            default (2 colour bands).
    """
    if bands is None:
        if colours >= 3:
            return (1, 2, 3)
        if colours == 1:
            return (1,)
        raise ValueError(f'{where}: {colours} bands; choose the bands for R, G, B '
                         '(bands=..., --bands)')
    bands = tuple(bands)
    if len(bands) not in (1, 3):
        raise ValueError(f'{where}: give 3 bands (R, G, B) or 1 (grey), got {bands}')
    for band in bands:
        if isinstance(band, bool) or int(band) != band or not 1 <= band <= count:
            raise ValueError(f'{where}: band {band} does not exist (the raster has '
                             f'bands 1 to {count})')
    return tuple(int(b) for b in bands)


def to_model_image(values: np.ndarray, valid: np.ndarray, stretch: str,
                   percentiles: Sequence[float], where: str
                   ) -> Tuple[np.ndarray, Optional[List[Tuple[float, float]]]]:
    """Selected bands -> ``((H, W, 3) uint8 RGB, stretch limits)``: stretched, grey repeated.

    Args:
        values: ``(C, H, W)`` (C = 1 or 3) of any numeric dtype.
        valid: ``(H, W)`` bool.
        stretch, percentiles: See :func:`stretch_to_uint8`.
        where: The source, for error messages.
    """
    if stretch not in STRETCH_MODES:
        raise ValueError(f'stretch must be one of {STRETCH_MODES}, got {stretch!r}')
    _check_percentiles(percentiles)
    if not valid.any():
        raise ValueError(f'{where}: no valid pixel (all nodata)')
    if values.dtype == np.uint8 and stretch in ('auto', 'none') and valid.all():
        image, limits = values, None  # what the stretch gives, without the float copy
    else:
        try:
            image, limits = stretch_to_uint8(values, valid, stretch, percentiles)
        except ValueError as err:
            raise ValueError(f'{where}: {err}') from err
    if image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
        limits = limits * 3 if limits else None
    return np.ascontiguousarray(image.transpose(1, 2, 0)), limits


def read_raster(src: Any, where: str, bands: Optional[Sequence[int]] = None,
                window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
                stretch: str = 'auto',
                percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """GDAL's reading of an open rasterio dataset: a window of it as the model's image.

    The pixels and the masks (nodata value, mask bands, alpha) are GDAL's.
    :func:`~fianet_mmseg.apis.image_io.read_image` uses it for windows and for
    the rasters that Pillow and OpenCV cannot decode.

    Args:
        src: An open ``rasterio`` dataset.
        where: The source (file name) for messages and ``GeoImage.path``.
        bands, window, bbox, stretch, percentiles: As in :func:`read_geotiff`.
    """
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window as RioWindow

    _check_percentiles(percentiles)
    count = src.count
    colours = count - int(count > 1 and src.colorinterp[-1] == ColorInterp.alpha)
    bands = check_bands(bands, count, colours, where)
    col, row, width, height = _pixel_window(src, window, bbox, where)
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


def read_geotiff(path: PathType, bands: Optional[Sequence[int]] = None,
                 window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
                 stretch: str = 'auto',
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """Read a window of a raster (GeoTIFF or any GDAL format) as the model's image.

    The same reading as every entry point's
    (:func:`~fianet_mmseg.apis.image_io.read_image`), with rasterio required.

    Args:
        path: The raster file.
        bands: Source bands (from 1) for R, G, B, or one band (grey, repeated).
            Default: the first three (the only one of a single-band raster).
        window: ``(col_off, row_off, width, height)`` in pixels, inside the
            raster.
        bbox: ``(left, bottom, right, top)`` in the raster's CRS; the window
            is every pixel the box touches, cut to the raster.
        stretch, percentiles: See :func:`stretch_to_uint8` and the module's
            conventions (statistics over the window read).

    Returns:
        GeoImage: The window as 8-bit RGB with its transform and CRS.

    Raises:
        ImportError: rasterio is missing.
        FileNotFoundError: No such file.
        ValueError: Unreadable file, bad bands / window / bbox, a window
            without valid pixels; messages name the file.
    """
    require_rasterio()
    from .image_io import read_image

    return read_image(path, bands=bands, window=window, bbox=bbox, stretch=stretch,
                      percentiles=percentiles)


# ------------------------------------------------------------------------ output
def _check_destination(path: PathType, geo: Optional[GeoImage]) -> str:
    path = str(path)
    if geo is not None and geo.path and osp.abspath(path) == osp.abspath(geo.path):
        raise ValueError(f'refusing to overwrite the input image {path}')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return path


def mask_with_nodata(mask: Any, geo: Optional[GeoImage] = None) -> np.ndarray:
    """``(H, W)`` uint8: 1 object, 0 background, :data:`MASK_NODATA` where ``geo`` has no data."""
    mask = as_hw_array(mask)
    out = (mask > 0).astype(np.uint8)
    if geo is not None:
        if geo.shape != out.shape:
            raise ValueError(f'the mask is {out.shape[1]}x{out.shape[0]} pixels, the image '
                             f'{geo.shape[1]}x{geo.shape[0]}')
        out[~geo.valid] = MASK_NODATA
    return out


def write_mask_geotiff(path: PathType, mask: Any, geo: Optional[GeoImage] = None,
                       tags: Optional[Dict[str, Any]] = None) -> str:
    """Write a mask as a single-band uint8 GeoTIFF with the source's CRS and transform.

    Args:
        path: Output ``.tif`` (never the source image).
        mask: ``(H, W)`` or ``(1, H, W)`` array / tensor, non-zero = object.
        geo: The :class:`GeoImage` the mask is of (its window's transform and
            CRS, nodata pixels set to :data:`MASK_NODATA`); None: a plain TIFF.
        tags: Dataset tags to store (e.g. the expression); values become strings.

    Returns:
        str: ``path``.
    """
    rasterio = require_rasterio()
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    path = _check_destination(path, geo)
    values = mask_with_nodata(mask, geo)
    profile = dict(driver='GTiff', width=values.shape[1], height=values.shape[0], count=1,
                   dtype='uint8', nodata=MASK_NODATA, compress='deflate')
    if geo is not None and geo.georeferenced:
        profile.update(crs=geo.crs, transform=geo.transform)
    else:
        profile.update(transform=Affine.identity())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        with rasterio.open(path, 'w', **profile) as dst:
            dst.write(values, 1)
            if tags:
                dst.update_tags(**{key: '' if value is None else str(value)
                                   for key, value in tags.items()})
    return path


def mask_polygons(mask: Any, transform: Any = None, valid: Optional[np.ndarray] = None,
                  probability: Optional[Any] = None, simplify: float = 0.0
                  ) -> List[Tuple[Dict[str, Any], int, Optional[float]]]:
    """Polygons of the connected regions of a mask.

    Regions are 4-connected (as ``rasterio.features.shapes`` traces them), one
    polygon (with holes) per region.

    Args:
        mask: ``(H, W)`` array / tensor, non-zero = object.
        transform: Affine pixel -> map transform (None: pixel coordinates,
            x = column, y = row, pixel corners at integers).
        valid: ``(H, W)`` bool; invalid pixels are never in a polygon.
        probability: ``(H, W)`` foreground probability, averaged per region.
        simplify: Douglas-Peucker tolerance in **pixels** (0: exact pixel
            outlines); needs shapely.

    Returns:
        list: ``(GeoJSON geometry in map coordinates, pixel count, mean
        probability or None)`` per region, largest first.
    """
    import cv2

    require_rasterio()
    from affine import Affine
    from rasterio.features import shapes

    binary = as_hw_array(mask) > 0
    if valid is not None:
        binary &= np.asarray(valid, dtype=bool)
    prob = None if probability is None else as_hw_array(probability).astype(np.float64)
    if prob is not None and prob.shape != binary.shape:
        raise ValueError(f'probability has shape {prob.shape}, the mask {binary.shape}')
    transform = Affine.identity() if transform is None else transform
    if not binary.any():
        return []
    count, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=4,
                                            ltype=cv2.CV_32S)
    pixels = np.bincount(labels.ravel(), minlength=count)
    sums = None if prob is None else np.bincount(labels.ravel(), weights=prob.ravel(),
                                                 minlength=count)
    if simplify and simplify > 0:
        try:
            from shapely import affinity
            from shapely.geometry import mapping, shape
        except ImportError as err:
            raise ImportError(f'simplified polygons need shapely: {GEO_INSTALL_HINT}') from err
        pixel_space = Affine.identity()
    else:
        pixel_space = transform
    polygons = []
    for geometry, label in shapes(labels, mask=labels > 0, connectivity=4,
                                  transform=pixel_space):
        label = int(label)
        if simplify and simplify > 0:
            geom = shape(geometry).simplify(float(simplify), preserve_topology=True)
            geom = affinity.affine_transform(geom, transform.to_shapely())
            geometry = mapping(geom)
        mean = None if sums is None else float(sums[label] / pixels[label])
        polygons.append((geometry, int(pixels[label]), mean))
    polygons.sort(key=lambda item: -item[1])
    return polygons


def _crs_member(crs: Any) -> Optional[Dict[str, Any]]:
    """The (pre-RFC 7946) ``crs`` member GDAL / QGIS read; None for EPSG:4326 or no CRS."""
    if crs is None:
        return None
    epsg = crs.to_epsg()
    if epsg == 4326:
        return None
    name = f'urn:ogc:def:crs:EPSG::{epsg}' if epsg else crs.to_wkt()
    return dict(type='name', properties=dict(name=name))


def mask_to_geojson(mask: Any, transform: Any = None, crs: Any = None,
                    dst_crs: Any = None, valid: Optional[np.ndarray] = None,
                    probability: Optional[Any] = None, simplify: float = 0.0,
                    properties: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A GeoJSON FeatureCollection of a mask's regions (see :func:`mask_polygons`).

    Args:
        mask, transform, valid, probability, simplify: As in
            :func:`mask_polygons`.
        crs: The CRS of ``transform``'s map coordinates (a rasterio CRS or
            anything ``CRS.from_user_input`` takes).
        dst_crs: Reproject the polygons to this CRS (e.g. ``'EPSG:4326'``,
            coordinates then in longitude, latitude) with
            ``rasterio.warp.transform_geom``; needs ``crs``.
        properties: Shared properties of every feature.

    Returns:
        dict: FeatureCollection; each feature's properties are ``properties``
        plus ``region`` (from 1, largest first), ``pixels`` and
        ``mean_probability`` (None without ``probability``). A ``crs``
        member names a CRS other than EPSG:4326.
    """
    require_rasterio()
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    src_crs = None if crs is None else CRS.from_user_input(crs)
    out_crs = src_crs
    if dst_crs is not None:
        if src_crs is None:
            raise ValueError(f'cannot reproject the polygons to {dst_crs}: the image has no CRS')
        out_crs = CRS.from_user_input(dst_crs)
    features = []
    for region, (geometry, pixels, mean) in enumerate(
            mask_polygons(mask, transform, valid, probability, simplify), start=1):
        if out_crs is not None and out_crs != src_crs:
            geometry = transform_geom(src_crs, out_crs, geometry)
        feature_properties = dict(properties or {})
        feature_properties.update(region=region, pixels=pixels, mean_probability=mean)
        features.append(dict(type='Feature', geometry=geometry, properties=feature_properties))
    collection: Dict[str, Any] = dict(type='FeatureCollection', features=features)
    member = _crs_member(out_crs)
    if member is not None:
        collection['crs'] = member
    return collection


def prediction_properties(result: Any) -> Dict[str, Any]:
    """Feature properties from an inference result's metainfo.

    ``expression``, ``object_phrase``, ``position_phrases`` (the spatial
    phrases joined by ``'; '``; None when there are none) and ``category`` (the
    decoupler's category of the object phrase).
    """
    meta = result.metainfo
    spatial = [phrase for phrase in meta.get('spatial_phrases') or [] if phrase]
    return dict(expression=meta.get('expression'), object_phrase=meta.get('object_phrase'),
                position_phrases='; '.join(spatial) if spatial else None,
                category=meta.get('decoupled_category'))


def prediction_to_geojson(result: Any, geo: Optional[GeoImage] = None, dst_crs: Any = None,
                          simplify: float = 0.0) -> Dict[str, Any]:
    """The polygons of an inference result, with its phrases and probabilities.

    Args:
        result: A ``SegDataSample`` from ``inference_model`` (``pred_sem_seg``
            and ``seg_logits`` at the image's size).
        geo: The :class:`GeoImage` it was predicted on (transform, CRS,
            nodata); None: pixel coordinates.
        dst_crs, simplify: See :func:`mask_to_geojson`.

    Returns:
        dict: FeatureCollection; properties per feature: those of
        :func:`prediction_properties` plus ``region``, ``pixels``,
        ``mean_probability`` (mean foreground probability over the region).
    """
    from .inference import foreground_probability

    return mask_to_geojson(
        result.pred_sem_seg.data, transform=None if geo is None else geo.transform,
        crs=None if geo is None else geo.crs, dst_crs=dst_crs,
        valid=None if geo is None else geo.valid,
        probability=foreground_probability(result), simplify=simplify,
        properties=prediction_properties(result))


def write_geojson(path: PathType, collection: Dict[str, Any],
                  geo: Optional[GeoImage] = None) -> str:
    """Write a FeatureCollection as UTF-8 JSON (never over the source image ``geo.path``)."""
    path = _check_destination(path, geo)
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(collection, file, ensure_ascii=False)
        file.write('\n')
    return path
