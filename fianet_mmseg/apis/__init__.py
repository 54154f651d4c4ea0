"""Inference API: ``init_model`` and ``inference_model``; GeoTIFF in, georeferenced out."""
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

__all__ = ['GeoImage', 'InferencePipeline', 'foreground_probability', 'get_inference_pipeline',
           'inference_model', 'init_model', 'mask_polygons', 'mask_to_geojson', 'pair_inputs',
           'prediction_to_geojson', 'read_geotiff', 'wordpiece_masks', 'write_geojson',
           'write_mask_geotiff']
