"""Inference API: ``init_model`` and ``inference_model``; the image reader; rasters in
(:mod:`.raster_input`), georeferenced masks and polygons out (:mod:`.raster_output`,
:mod:`.vector_output`). Imported on use: whole scenes (:mod:`.scene`), the web demo's page
(:mod:`.web`), the ONNX export (:mod:`.onnx_export`)."""
from ..utils.image_io import decode_image, read_image
from ..utils.precision import (
    PRECISIONS,
    add_precision_argument,
    apply_precision,
    check_inference_options,
    set_inference_options,
)
from .inference import (
    InferencePipeline,
    foreground_probability,
    get_inference_pipeline,
    inference_model,
    init_model,
    pair_inputs,
    wordpiece_masks,
)
from .raster_input import GeoImage, read_geotiff
from .raster_output import write_mask_geotiff
from .vector_output import (
    mask_polygons,
    mask_to_geojson,
    prediction_to_geojson,
    write_geojson,
    write_geopackage,
)

__all__ = ['GeoImage', 'InferencePipeline', 'PRECISIONS', 'add_precision_argument',
           'apply_precision', 'check_inference_options', 'decode_image', 'foreground_probability',
           'get_inference_pipeline', 'inference_model', 'init_model', 'mask_polygons',
           'mask_to_geojson', 'pair_inputs', 'prediction_to_geojson', 'read_geotiff', 'read_image',
           'set_inference_options', 'wordpiece_masks', 'write_geojson', 'write_geopackage',
           'write_mask_geotiff']
