"""Compatibility shims for the supported dependency stack (see README)."""
from .mmcv_ops import MissingCompiledOpError, has_compiled_mmcv_ops, install_mmcv_ops_standins

__all__ = ['MissingCompiledOpError', 'has_compiled_mmcv_ops', 'install_mmcv_ops_standins']
