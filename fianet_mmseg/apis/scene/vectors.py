"""The scene's polygons, streamed to GeoPackage and GeoJSON as objects are completed.

Features are written while the mask is (pass B of :mod:`.assemble`): an object
is written as soon as the blocks below its bounding box are done, so the
outlines in memory are those of the objects still open, never all of a
scene's. The GeoPackage is written in chunks (pyogrio, appended; its
``last_change`` is a fixed timestamp), the GeoJSON feature by feature; both go
to temporary names and are renamed when complete.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..raster_input import GEO_INSTALL_HINT
from ..vector_output import GPKG_LAYER, crs_member, reproject_geometry

#: The properties of every polygon, in this order, and their column types.
FEATURE_SCHEMA: Tuple[Tuple[str, str], ...] = (
    ('id', 'int'), ('expression', 'str'), ('object_phrase', 'str'),
    ('position_phrases', 'str'), ('category', 'str'), ('mean_probability', 'float'),
    ('area_m2', 'float'), ('pixels', 'int'), ('position_mode', 'str'),
    ('window_expression', 'str'), ('position_applied', 'str'))


def output_crs(src_crs: Any, dst_crs: Optional[str]) -> Dict[str, Any]:
    """CRS of the GeoPackage and the GeoJSON: ``dst_crs`` None -> the source's and EPSG:4326
    (RFC 7946); ``'source'`` -> the source's for both; another CRS -> it for both. A source
    without CRS: none (pixel or transform coordinates)."""
    if src_crs is None:
        return dict(gpkg=None, geojson=None)
    if dst_crs is None:
        return dict(gpkg=src_crs, geojson='EPSG:4326')
    if str(dst_crs).lower() == 'source':
        return dict(gpkg=src_crs, geojson=src_crs)
    return dict(gpkg=dst_crs, geojson=dst_crs)


def _column(values: List[Any], kind: str) -> np.ndarray:
    if kind == 'int':
        return np.array(values, dtype=np.int64)
    if kind == 'float':
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array([None if v is None else str(v) for v in values], dtype=object)


class VectorSink:
    """Write features (GeoJSON dicts in the source's CRS) to ``polygons.gpkg`` and
    ``polygons.geojson`` in ``out_dir`` (see the module).

    Args:
        out_dir: The output folder.
        src_crs: The features' CRS (None: none).
        dst_crs: See :func:`output_crs`.
        timestamp: The GeoPackage's ``last_change``.
        chunk: Features per GeoPackage write.
    """

    def __init__(self, out_dir: str, src_crs: Any, dst_crs: Optional[str], timestamp: str,
                 chunk: int = 512) -> None:
        try:
            import pyogrio  # noqa: F401
            import shapely  # noqa: F401
        except ImportError as err:
            raise ImportError(f'GeoPackage output needs pyogrio and shapely: '
                              f'{GEO_INSTALL_HINT}') from err
        from rasterio.crs import CRS

        self.src_crs = src_crs
        self.crs = output_crs(src_crs, dst_crs)
        self.timestamp = timestamp
        self.chunk = chunk
        self.paths = dict(gpkg=osp.join(out_dir, 'polygons.gpkg'),
                          geojson=osp.join(out_dir, 'polygons.geojson'))
        self.partial = dict(gpkg=osp.join(out_dir, 'polygons.partial.gpkg'),
                            geojson=osp.join(out_dir, 'polygons.geojson.tmp'))
        for path in self.partial.values():
            if osp.exists(path):
                os.remove(path)
        self.pending: List[Dict[str, Any]] = []
        self.gpkg_started = False
        self.count = 0
        self.geojson = open(self.partial['geojson'], 'w', encoding='utf-8')  # noqa: SIM115 (closed by close())
        member = None if self.crs['geojson'] is None else crs_member(
            CRS.from_user_input(self.crs['geojson']))
        self.geojson.write('{"type": "FeatureCollection", '
                           + (f'"crs": {json.dumps(member)}, ' if member else '')
                           + '"features": [')

    def _in(self, kind: str, feature: Dict[str, Any]) -> Dict[str, Any]:
        if self.crs[kind] is None:
            return feature
        return dict(feature, geometry=reproject_geometry(feature['geometry'], self.src_crs,
                                                         self.crs[kind]))

    def add(self, feature: Dict[str, Any]) -> None:
        self.geojson.write((', ' if self.count else '')
                           + json.dumps(self._in('geojson', feature), ensure_ascii=False))
        self.pending.append(self._in('gpkg', feature))
        self.count += 1
        if len(self.pending) >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        import pyogrio
        import shapely
        from pyogrio.raw import write as ogr_write
        from rasterio.crs import CRS

        geometries = [shapely.geometry.shape(f['geometry']) for f in self.pending]
        wkb = np.array([shapely.to_wkb(g if g.geom_type == 'MultiPolygon'
                                       else shapely.MultiPolygon([g])) for g in geometries],
                       dtype=object)
        columns = [_column([f['properties'][name] for f in self.pending], kind)
                   for name, kind in FEATURE_SCHEMA]
        crs = self.crs['gpkg']
        if crs is not None:
            crs = CRS.from_user_input(crs)
            crs = f'EPSG:{crs.to_epsg()}' if crs.to_epsg() else crs.to_wkt()
        options = {} if self.gpkg_started else dict(
            dataset_options={'VERSION': '1.2'}, layer_options={'SPATIAL_INDEX': 'YES'})
        previous = pyogrio.get_gdal_config_option('OGR_CURRENT_DATE')
        pyogrio.set_gdal_config_options({'OGR_CURRENT_DATE': self.timestamp})
        try:
            with warnings.catch_warnings():
                # no CRS (pixel coordinates) is the caller's choice, said in the summary
                warnings.filterwarnings('ignore', message="'crs' was not provided")
                # GeoPackage 1.2: readable by GDAL >= 2.2 (Debian's ogrinfo warns on 1.4)
                ogr_write(self.partial['gpkg'], wkb, columns, [n for n, _ in FEATURE_SCHEMA],
                          layer=GPKG_LAYER, driver='GPKG', geometry_type='MultiPolygon',
                          crs=crs, append=self.gpkg_started, **options)
        finally:
            pyogrio.set_gdal_config_options({'OGR_CURRENT_DATE': previous})
        self.gpkg_started = True
        self.pending = []

    def close(self) -> None:
        """Write what is pending and rename both files into place."""
        if self.pending or not self.gpkg_started:
            self._flush()
        self.geojson.write(']}\n')
        self.geojson.close()
        for kind in ('gpkg', 'geojson'):
            os.replace(self.partial[kind], self.paths[kind])

    def __enter__(self) -> VectorSink:
        return self

    def __exit__(self, kind, *rest) -> None:
        """Complete the files, or (on an error) leave only the temporary ones."""
        if kind is None:
            self.close()
        else:
            self.geojson.close()
