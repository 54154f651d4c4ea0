"""Inference API: ``init_model`` and ``inference_model``; the image reader; GeoTIFF in,
georeferenced out."""
from ..utils.image_io import decode_image, read_image
from .geo import (
    GeoImage,
    mask_polygons,
    mask_to_geojson,
    prediction_to_geojson,
    read_geotiff,
    write_geojson,
    write_mask_geotiff,
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

__all__ = ['GeoImage', 'InferencePipeline', 'decode_image', 'foreground_probability',
           'get_inference_pipeline', 'inference_model', 'init_model', 'mask_polygons',
           'mask_to_geojson', 'pair_inputs', 'prediction_to_geojson', 'read_geotiff', 'read_image',
           'wordpiece_masks', 'write_geojson', 'write_mask_geotiff']
