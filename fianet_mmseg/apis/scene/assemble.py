"""From the finished windows to the outputs, block by block.

1. Pass A, per 512-pixel block of the source grid: the blended probability
   (:class:`~.blend.Blender`) -> ``probability.tif`` (uint8, ``round(255 p)``,
   an internal mask where the source has no data); the mask is ``p >= 0.5``
   (stored value >= 128) on the pixels with data; its components are counted
   across blocks (:class:`~.components.ComponentTracer`: sizes, centroids,
   boxes).
2. The components the position rules select (``scene`` mode; see
   :mod:`.positions`), of those of at least ``min_area``.
3. Pass B, per block: ``mask.tif`` (1 = a selected component, 0 = background,
   255 = no data), from the stored probability; the selected components'
   outlines are traced and each object is written to the GeoPackage and the
   GeoJSON (:class:`~.vectors.VectorSink`) once the blocks below it are done:
   one feature per object, merged across windows and blocks.
4. Both rasters copied to Cloud-Optimised GeoTIFFs.

Intermediate files live in the work folder; every output is written to a
temporary name and renamed, so a run killed here leaves no partial output and
``--resume`` redoes this step from the stored windows.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Callable, Dict, Optional

import numpy as np

from ..raster_output import COG_BLOCK, MASK_NODATA, copy_to_cog, open_tiled_geotiff
from .blend import Blender, block_count, blocks
from .components import Component, ComponentTracer, OutlineCollector
from .plan import ScenePlan
from .positions import select_components
from .store import WindowStore
from .vectors import FEATURE_SCHEMA, VectorSink

#: Output files in the output folder.
OUTPUT_FILES = dict(mask='mask.tif', probability='probability.tif', gpkg='polygons.gpkg',
                    geojson='polygons.geojson', summary='summary.json')
#: Properties of every polygon, in this order.
FEATURE_FIELDS = tuple(name for name, _ in FEATURE_SCHEMA)


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


def _feature(plan: ScenePlan, component: Component, polygon: Any, number: int,
             simplify: float) -> Dict[str, Any]:
    """The GeoJSON feature of a component (``polygon`` in pixel coordinates) in the source's
    map coordinates."""
    from shapely import affinity
    from shapely.geometry import mapping

    t = plan.reader.transform
    geometry = affinity.affine_transform(polygon, [t.a, t.b, t.d, t.e, t.xoff, t.yoff])
    if simplify > 0:
        geometry = geometry.simplify(simplify, preserve_topology=True)
    pixel_area = None if plan.source_gsd is None else plan.source_gsd[0] * plan.source_gsd[1]
    parts = plan.parts
    properties = dict(
        id=number, expression=parts.expression, object_phrase=parts.object_phrase,
        position_phrases='; '.join(parts.position_phrases) or None, category=parts.category,
        mean_probability=component.mean_probability,
        area_m2=None if pixel_area is None else component.pixels * pixel_area,
        pixels=component.pixels, position_mode=plan.position,
        window_expression=plan.window_text, position_applied=applied_phrases(plan))
    return dict(type='Feature', geometry=mapping(geometry), properties=properties)


def assemble(plan: ScenePlan, store: WindowStore, work_dir: str, out_dir: str,
             dst_crs: Optional[str] = None, simplify: float = 0.0, min_area: float = 0.0,
             timestamp: str = '1970-01-01T00:00:00.000Z',
             progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Write the outputs (see the module); returns counts for the summary.

    Args:
        dst_crs: See :func:`~.vectors.output_crs`.
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
    eligible = components.pixels >= min_pixels
    if plan.position == 'scene':
        centroids = components.centroids() / np.array([width, height])
        selected = select_components(plan.parts.rule, centroids.tolist(), eligible.tolist())
    else:
        selected = np.flatnonzero(eligible).tolist()
    chosen = components.ids[selected]  # ascending, as the ids
    outlines = OutlineCollector(chosen, components.bbox[selected, 3])
    sink = VectorSink(out_dir, reader.crs, dst_crs, timestamp)
    written = 0
    mask_blocks = osp.join(work_dir, 'mask_blocks.tif')
    with sink, rasterio.open(probability_blocks) as src, \
            open_tiled_geotiff(mask_blocks, width, height, reader.crs, reader.transform,
                               nodata=MASK_NODATA, tags=tags) as dst:
        for col, row, w, h in blocks(width, height, COG_BLOCK):
            window = Window(col, row, w, h)
            stored = src.read(1, window=window)
            valid = src.read_masks(1, window=window) > 0
            _, labels, _ = tracer.label(valid & (stored >= 128))
            ids = tracer.global_labels(col, row, labels)
            inside = np.isin(ids, chosen)
            mask = inside.astype(np.uint8)
            mask[~valid] = MASK_NODATA
            dst.write(mask, 1, window=window)
            outlines.add_block(col, row, ids, inside)
            if col + w == width:  # a row of blocks done: write the objects it completed
                for key, polygon in outlines.completed(row + h):
                    written += 1
                    component = components[int(np.searchsorted(components.ids, key))]
                    sink.add(_feature(plan, component, polygon, written, simplify))
            done += 1
            if progress:
                progress(done, total)
    copy_to_cog(probability_blocks, osp.join(out_dir, OUTPUT_FILES['probability']), 'average')
    copy_to_cog(mask_blocks, osp.join(out_dir, OUTPUT_FILES['mask']), 'nearest')
    return dict(components_found=len(components),
                components_below_min_area=int(len(eligible) - eligible.sum()),
                components_selected=len(selected),
                crs={kind: None if crs is None else str(crs) for kind, crs in sink.crs.items()})
