"""Inference API: ``init_model`` and ``inference_model``."""
from .inference import (
    InferencePipeline,
    get_inference_pipeline,
    inference_model,
    init_model,
    pair_inputs,
)

__all__ = ['InferencePipeline', 'get_inference_pipeline', 'inference_model', 'init_model',
           'pair_inputs']
