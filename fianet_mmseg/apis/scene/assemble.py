"""From the finished windows to the outputs, block by block.

1. Pass A, per 512-pixel block of the source grid: the blended probability
   (:class:`~.blend.Blender`) -> ``probability.tif`` (uint8, ``round(255 p)``,
   an internal mask where the source has no data); the mask is ``p >= 0.5``
   (stored value >= 128) on the pixels with data; its components are found
   across blocks (:class:`~.components.ComponentTracer`).
2. The components the position rules select (``scene`` mode; see
   :mod:`.positions`), of those of at least ``min_area``.
3. Pass B, per block: ``mask.tif`` (1 = a selected component, 0 = background,
   255 = no data), from the stored probability.
4. Both rasters copied to Cloud-Optimised GeoTIFFs; the selected components'
   polygons written as GeoPackage and GeoJSON (one feature per object, merged
   across windows and blocks).

Intermediate files live in the work folder; every output is written to a
temporary name and renamed, so a run killed here leaves no partial output and
``--resume`` redoes this step from the stored windows.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..raster_output import COG_BLOCK, MASK_NODATA, copy_to_cog, open_tiled_geotiff
from ..vector_output import (
    feature_collection,
    reproject_geometry,
    write_geojson,
    write_geopackage,
)
from .blend import Blender, block_count, blocks
from .components import Component, ComponentTracer
from .plan import ScenePlan
from .positions import select_components
from .store import WindowStore

#: Output files in the output folder.
OUTPUT_FILES = dict(mask='mask.tif', probability='probability.tif', gpkg='polygons.gpkg',
                    geojson='polygons.geojson', summary='summary.json')
#: Properties of every polygon, in this order.
FEATURE_FIELDS = ('id', 'expression', 'object_phrase', 'position_phrases', 'category',
                  'mean_probability', 'area_m2', 'pixels', 'position_mode', 'window_expression',
                  'position_applied')


def raster_tags(plan: ScenePlan) -> Dict[str, Any]:
    """Dataset tags of the output rasters: what was asked and applied."""
    return dict(expression=plan.parts.expression, window_expression=plan.window_text,
                position_mode=plan.position, position_applied=applied_phrases(plan),
                object_phrase=plan.parts.object_phrase, category=plan.parts.category,
                gsd_m=plan.target_gsd)


def applied_phrases(plan: ScenePlan) -> Optional[str]:
    """The position phrases applied to the scene's components (None: none)."""
    if plan.position != 'scene' or not plan.parts.rule.active:
        return None
    return '; '.join(plan.parts.rule.phrases)


def output_crs(src_crs: Any, dst_crs: Optional[str]) -> Dict[str, Any]:
    """CRS of the GeoPackage and the GeoJSON: ``dst_crs`` None -> the source's and EPSG:4326
    (RFC 7946); ``'source'`` -> the source's for both; another CRS -> it for both."""
    if src_crs is None:
        return dict(gpkg=None, geojson=None)
    if dst_crs is None:
        return dict(gpkg=src_crs, geojson='EPSG:4326')
    if str(dst_crs).lower() == 'source':
        return dict(gpkg=src_crs, geojson=src_crs)
    return dict(gpkg=dst_crs, geojson=dst_crs)


def _features(plan: ScenePlan, components: List[Component], selected: List[int],
              simplify: float) -> List[Dict[str, Any]]:
    """GeoJSON features of the selected components, in the source's map coordinates."""
    from shapely import affinity
    from shapely.geometry import mapping

    transform = plan.reader.transform
    coefficients = [transform.a, transform.b, transform.d, transform.e, transform.xoff,
                    transform.yoff]
    pixel_area = None if plan.source_gsd is None else plan.source_gsd[0] * plan.source_gsd[1]
    parts = plan.parts
    features = []
    for number, index in enumerate(selected, start=1):
        component = components[index]
        geometry = affinity.affine_transform(component.pieces[0], coefficients)
        if simplify > 0:
            geometry = geometry.simplify(simplify, preserve_topology=True)
        properties = dict(
            id=number, expression=parts.expression, object_phrase=parts.object_phrase,
            position_phrases='; '.join(parts.position_phrases) or None,
            category=parts.category, mean_probability=component.mean_probability,
            area_m2=None if pixel_area is None else component.pixels * pixel_area,
            pixels=component.pixels, position_mode=plan.position,
            window_expression=plan.window_text, position_applied=applied_phrases(plan))
        features.append(dict(type='Feature', geometry=mapping(geometry),
                             properties=properties))
    return features


def assemble(plan: ScenePlan, store: WindowStore, work_dir: str, out_dir: str,
             dst_crs: Optional[str] = None, simplify: float = 0.0, min_area: float = 0.0,
             timestamp: str = '1970-01-01T00:00:00.000Z',
             progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Write the outputs (see the module); returns counts for the summary.

    Args:
        dst_crs: See :func:`output_crs`.
        simplify: Douglas-Peucker tolerance of the polygons, in the source's
            map units (pixels without CRS); 0 keeps the pixel outlines.
        min_area: Smallest component kept, m^2 (pixels when the GSD is unknown).
        timestamp: The GeoPackage's ``last_change``.
        progress: Called with ``(blocks done, blocks in all)`` (two passes).
    """
    import rasterio
    from rasterio.windows import Window

    reader = plan.reader
    width, height = reader.width, reader.height
    tags = raster_tags(plan)
    total = 2 * block_count(width, height, COG_BLOCK)
    done = 0
    blender = Blender(plan.grid, store)
    tracer = ComponentTracer(width)
    probability_blocks = osp.join(work_dir, 'probability_blocks.tif')
    with open_tiled_geotiff(probability_blocks, width, height, reader.crs, reader.transform,
                            tags=tags) as dst:
        for col, row, w, h in blocks(width, height, COG_BLOCK):
            probability = blender.source_block(col, row, w, h)
            valid = reader.read_valid(col, row, w, h) & np.isfinite(probability)
            stored = np.zeros((h, w), np.uint8)
            stored[valid] = np.rint(probability[valid] * 255.0).astype(np.uint8)
            window = Window(col, row, w, h)
            dst.write(stored, 1, window=window)
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)
            tracer.add_block(col, row, valid & (stored >= 128),
                             np.where(valid, probability, 0.0))
            done += 1
            if progress:
                progress(done, total)
    components = tracer.merge()
    pixel_area = None if plan.source_gsd is None else plan.source_gsd[0] * plan.source_gsd[1]
    min_pixels = min_area / pixel_area if pixel_area else min_area
    eligible = [component.pixels >= min_pixels for component in components]
    if plan.position == 'scene':
        centroids = [(c.centroid[0] / width, c.centroid[1] / height) for c in components]
        selected = select_components(plan.parts.rule, centroids, eligible)
    else:
        selected = [index for index, ok in enumerate(eligible) if ok]
    chosen = np.array(sorted(components[index].id for index in selected), np.int64)
    mask_blocks = osp.join(work_dir, 'mask_blocks.tif')
    with rasterio.open(probability_blocks) as src, \
            open_tiled_geotiff(mask_blocks, width, height, reader.crs, reader.transform,
                               nodata=MASK_NODATA, tags=tags) as dst:
        for col, row, w, h in blocks(width, height, COG_BLOCK):
            window = Window(col, row, w, h)
            stored = src.read(1, window=window)
            valid = src.read_masks(1, window=window) > 0
            _, labels, _ = tracer.label(valid & (stored >= 128))
            ids = tracer.global_labels(col, row, labels)
            mask = np.isin(ids, chosen).astype(np.uint8)
            mask[~valid] = MASK_NODATA
            dst.write(mask, 1, window=window)
            done += 1
            if progress:
                progress(done, total)
    copy_to_cog(probability_blocks, osp.join(out_dir, OUTPUT_FILES['probability']), 'average')
    copy_to_cog(mask_blocks, osp.join(out_dir, OUTPUT_FILES['mask']), 'nearest')
    features = _features(plan, components, selected, simplify)
    crs = output_crs(reader.crs, dst_crs)
    for kind in ('gpkg', 'geojson'):
        if crs[kind] is None:
            out_features = features
        else:
            out_features = [dict(feature, geometry=reproject_geometry(
                feature['geometry'], reader.crs, crs[kind])) for feature in features]
        path = osp.join(out_dir, OUTPUT_FILES[kind])
        if kind == 'gpkg':
            write_geopackage(path, out_features, crs=crs[kind], fields=FEATURE_FIELDS,
                             timestamp=timestamp)
        else:
            write_geojson(path, feature_collection(out_features, crs=crs[kind]))
    return dict(components_found=len(components),
                components_below_min_area=int(len(eligible) - sum(eligible)),
                components_selected=len(selected),
                crs=dict(gpkg=None if crs['gpkg'] is None else str(crs['gpkg']),
                         geojson=None if crs['geojson'] is None else str(crs['geojson'])))
