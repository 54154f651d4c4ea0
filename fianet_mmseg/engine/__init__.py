"""Training-engine parts: mixed-precision optimizer wrapper (registered in mmseg's
``OPTIM_WRAPPERS``); benchmarking and step profiling helpers live in
:mod:`fianet_mmseg.engine.benchmarking` and :mod:`fianet_mmseg.engine.step_profiler`
(imported on demand)."""
from .optim_wrappers import AutocastOptimWrapper

__all__ = ['AutocastOptimWrapper']
