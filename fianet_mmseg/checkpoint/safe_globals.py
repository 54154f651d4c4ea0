"""Let ``torch.load(weights_only=True)`` read the checkpoints mmengine writes.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.x
calls ``torch.load`` without the argument. A checkpoint saved by mmengine's
``CheckpointHook`` holds, besides tensors, the runner's message hub
(``HistoryBuffer`` objects wrapping numpy arrays) and numpy scalars, which the
safe unpickler refuses. Instead of turning safe loading off, two narrow
changes make the project's own checkpoints loadable:

* ``HistoryBuffer``, numpy arrays, dtypes and scalars are registered as safe
  globals;
* ``HistoryBuffer`` objects are pickled without mmengine's four built-in
  statistics functions (``min``/``max``/``mean``/``current``, which pickle as
  ``getattr`` calls and which ``HistoryBuffer.__setstate__`` restores anyway).
  Custom statistics registered by users are still saved.

Every other file keeps torch's default protection.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

_BUILTIN_STATISTICS = ('min', 'max', 'mean', 'current')


def _numpy_globals() -> list:
    """numpy callables and types that pickled arrays and scalars refer to."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_types = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
        np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_types]


def _without_builtin_statistics(getstate: Callable) -> Callable:
    """``HistoryBuffer.__getstate__`` whose state leaves out the built-in statistics.

    mmengine's ``__getstate__`` returns the buffer's state with the ``statistics_methods`` it
    registered; the copy returned here keeps only the custom ones (none: no entry).
    """
    @functools.wraps(getstate)
    def getstate_compact(self) -> dict:
        state = dict(getstate(self))
        methods = state.pop('statistics_methods', None) or {}
        custom = {name: method for name, method in methods.items()
                  if name not in _BUILTIN_STATISTICS}
        if custom:
            state['statistics_methods'] = custom
        return state

    getstate_compact.without_builtin_statistics = True
    return getstate_compact


def register_checkpoint_safe_globals() -> None:
    """Allow mmengine's own checkpoint contents under safe loading."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if not getattr(HistoryBuffer.__getstate__, 'without_builtin_statistics', False):
        HistoryBuffer.__getstate__ = _without_builtin_statistics(HistoryBuffer.__getstate__)
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 loads unsafely by default anyway
        add([HistoryBuffer, *_numpy_globals()])
