"""Vector output: the polygons of a predicted mask as GeoJSON and GeoPackage.

* Regions are 4-connected (as ``rasterio.features.shapes`` traces them), one
  polygon (with holes) per region, traced along pixel edges; pixels without
  data in the source are in no polygon.
* GeoJSON (:func:`write_geojson`) keeps the coordinates it is given; RFC 7946
  wants longitude / latitude (EPSG:4326), which ``dst_crs='EPSG:4326'`` gives.
  Another CRS is named by a (pre-RFC 7946) ``crs`` member that GDAL and QGIS
  read.
* GeoPackage (:func:`write_geopackage`, via pyogrio): one ``polygons`` layer in
  the CRS given. Its timestamp (``gpkg_contents.last_change``) is a date the
  caller chooses, so the same polygons give the same bytes.

rasterio (and shapely, for simplified polygons and scenes) are optional:
``pip install "fianet-mmseg[geo]"``, which also installs pyogrio.
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
from .raster_input import GEO_INSTALL_HINT, GeoImage, require_rasterio
from .raster_output import check_destination

PathType = Union[str, Path]
#: Layer name of the GeoPackages written here.
GPKG_LAYER = 'polygons'


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


def crs_member(crs: Any) -> Optional[Dict[str, Any]]:
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
    member = crs_member(out_crs)
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
    """Write a FeatureCollection as UTF-8 JSON (never over the source image ``geo.path``).

    Written to ``path + '.tmp'`` first, then renamed.
    """
    path = check_destination(path, geo)
    partial = path + '.tmp'
    with open(partial, 'w', encoding='utf-8') as file:
        json.dump(collection, file, ensure_ascii=False)
        file.write('\n')
    os.replace(partial, path)
    return path


def reproject_geometry(geometry: Dict[str, Any], src_crs: Any, dst_crs: Any) -> Dict[str, Any]:
    """A GeoJSON geometry from ``src_crs`` to ``dst_crs`` (unchanged when they are equal)."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    src, dst = CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs)
    if src == dst:
        return geometry
    return transform_geom(src, dst, geometry)


def feature_collection(features: Sequence[Dict[str, Any]], crs: Any = None) -> Dict[str, Any]:
    """A FeatureCollection; a ``crs`` member names a CRS other than EPSG:4326."""
    require_rasterio()
    from rasterio.crs import CRS

    collection: Dict[str, Any] = dict(type='FeatureCollection', features=list(features))
    member = crs_member(None if crs is None else CRS.from_user_input(crs))
    if member is not None:
        collection['crs'] = member
    return collection


def _field_values(features: Sequence[Dict[str, Any]], name: str) -> Tuple[np.ndarray, str]:
    """One attribute column for OGR: float64 (None -> NaN), int64, or strings (object)."""
    values = [feature['properties'].get(name) for feature in features]
    present = [value for value in values if value is not None]
    if present and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in present) and len(present) == len(values):
        return np.array(values, dtype=np.int64), 'int'
    if present and all(isinstance(v, (int, float, np.integer, np.floating))
                       and not isinstance(v, bool) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values]), 'float'
    return np.array([None if v is None else str(v) for v in values], dtype=object), 'str'


def write_geopackage(path: PathType, features: Sequence[Dict[str, Any]], crs: Any = None,
                     fields: Optional[Sequence[str]] = None,
                     timestamp: str = '1970-01-01T00:00:00.000Z') -> str:
    """Write GeoJSON-like polygon features to a GeoPackage layer ``polygons``.

    Args:
        path: The ``.gpkg`` file (written to ``<name>.partial.gpkg``, then renamed).
        features: GeoJSON features (``geometry``: Polygon or MultiPolygon,
            ``properties``); may be empty.
        crs: The coordinates' CRS (None: none declared, e.g. pixel
            coordinates).
        fields: Property names to store, in this order (default: those of
            the first feature). Integers stay integers, numbers with None
            become floats with NULL, anything else text.
        timestamp: The layer's ``last_change`` (GDAL's ``OGR_CURRENT_DATE``),
            ISO 8601 in UTC: a fixed value makes the file reproducible.

    Raises:
        ImportError: pyogrio or shapely is missing (names the extra).
    """
    try:
        import pyogrio
        import shapely
        from pyogrio.raw import write as ogr_write
    except ImportError as err:
        raise ImportError(f'GeoPackage output needs pyogrio and shapely: '
                          f'{GEO_INSTALL_HINT}') from err
    path = check_destination(path)
    if fields is None:
        fields = list(features[0]['properties']) if features else []
    geometries = [shapely.geometry.shape(f['geometry']) for f in features]
    geometries = [g if g.geom_type == 'MultiPolygon' else shapely.MultiPolygon([g])
                  for g in geometries]
    wkb = np.array([shapely.to_wkb(g) for g in geometries], dtype=object)
    columns = [_field_values(features, name)[0] for name in fields]
    crs_text = None
    if crs is not None:
        from rasterio.crs import CRS

        crs = CRS.from_user_input(crs)
        crs_text = f'EPSG:{crs.to_epsg()}' if crs.to_epsg() else crs.to_wkt()
    root, extension = osp.splitext(path)
    partial = root + '.partial' + (extension or '.gpkg')  # GDAL wants the .gpkg extension
    if osp.exists(partial):
        os.remove(partial)
    previous = pyogrio.get_gdal_config_option('OGR_CURRENT_DATE')
    pyogrio.set_gdal_config_options({'OGR_CURRENT_DATE': timestamp})
    try:
        with warnings.catch_warnings():
            # no CRS (pixel coordinates) is the caller's choice, said where it is made
            warnings.filterwarnings('ignore', message="'crs' was not provided")
            # GeoPackage 1.2: readable by GDAL >= 2.2 (Debian's ogrinfo warns on 1.4)
            ogr_write(partial, wkb, columns, list(fields), layer=GPKG_LAYER, driver='GPKG',
                      geometry_type='MultiPolygon', crs=crs_text,
                      dataset_options={'VERSION': '1.2'}, layer_options={'SPATIAL_INDEX': 'YES'})
    finally:
        pyogrio.set_gdal_config_options({'OGR_CURRENT_DATE': previous})
    os.replace(partial, path)
    return path
