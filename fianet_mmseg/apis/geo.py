"""GeoTIFF in, georeferenced masks and polygons out.

Remote-sensing scenes are often 16-bit or float, with more than three bands, a
CRS and a geotransform, and far larger than the model's input (the test
pipeline resizes every input to 480x480). :func:`read_geotiff` turns a window
of such a scene into the 8-bit RGB image the model takes, keeping the
georeferencing of the window (with the project's one image reader,
:func:`fianet_mmseg.utils.image_io.read_image`, which every entry point uses);
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
  masks when GDAL reads the pixels, see :mod:`~fianet_mmseg.utils.image_io`;
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
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils.arrays import as_hw_array
from ..utils.image_io import (  # noqa: F401  (the raster input half, re-exported)
    DEFAULT_PERCENTILES,
    GEO_INSTALL_HINT,
    STRETCH_MODES,
    TIFF_SUFFIXES,
    GeoImage,
    check_bands,
    is_tiff,
    rasterio_available,
    read_image,
    read_raster,
    require_rasterio,
    stretch_to_uint8,
    to_model_image,
)

PathType = Union[str, Path]
BBox = Tuple[float, float, float, float]  # left, bottom, right, top

#: Mask value of pixels without data in the source (the mask GeoTIFF's nodata).
MASK_NODATA = 255


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
