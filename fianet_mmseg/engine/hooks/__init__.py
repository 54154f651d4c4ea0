"""Runner hooks: :class:`AtomicCheckpointHook` (checkpoints that survive a kill)."""
from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, atomic_write

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write']
