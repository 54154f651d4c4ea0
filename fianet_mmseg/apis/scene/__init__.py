"""Whole scenes: referring segmentation over a raster of any size, streamed, seamless, at the
model's scale (see :mod:`.inferencer`; the CLI is ``demo/rs_image_inference.py``)."""
from .assemble import OUTPUT_FILES
from .inferencer import SceneInferencer, SceneWarning
from .plan import ScenePlan, make_plan
from .positions import POSITION_MODES, parse_positions, split_expression

__all__ = ['OUTPUT_FILES', 'POSITION_MODES', 'SceneInferencer', 'ScenePlan', 'SceneWarning',
           'make_plan', 'parse_positions', 'split_expression']
