"""Compatibility shims for the supported dependency stack (see README)."""
from .checkpoint import register_checkpoint_safe_globals
from .mmcv_ops import MissingCompiledOpError, has_compiled_mmcv_ops, install_mmcv_ops_standins

__all__ = [
    'MissingCompiledOpError', 'has_compiled_mmcv_ops',
    'install_mmcv_ops_standins', 'register_checkpoint_safe_globals'
]
