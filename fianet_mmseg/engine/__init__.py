"""Training-time parts registered in mmseg's registries: the CPU mixed-precision
optimizer wrapper (``OPTIM_WRAPPERS``), the checkpoint hook (``HOOKS``) and the
prefetching training loop (``LOOPS``)."""
from ..checkpoint import register_checkpoint_safe_globals
from .hooks import AtomicCheckpointHook
from .loops import PrefetchingEpochBasedTrainLoop
from .optim_wrappers import AutocastOptimWrapper

# Runner.resume / load_checkpoint read mmengine's own checkpoints under
# torch's safe loading (see fianet_mmseg.checkpoint.safe_globals).
register_checkpoint_safe_globals()

__all__ = ['AtomicCheckpointHook', 'AutocastOptimWrapper', 'PrefetchingEpochBasedTrainLoop']
