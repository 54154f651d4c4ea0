"""Make ``mmseg.models`` importable with the pure-Python ``mmcv-lite``.

mmseg 1.2.2 imports a handful of compiled mmcv ops when its model and dataset
packages load, although FIANet uses none of them. ``mmcv-lite`` ships the
Python sources of ``mmcv.ops`` but not the compiled ``mmcv._ext`` library, so
``import mmcv.ops`` fails. When (and only when) ``mmcv._ext`` is missing,
:func:`install_mmcv_ops_standins` registers a stand-in ``mmcv.ops`` module that
provides exactly the names mmseg imports at module load:

* ``point_sample``: mmcv's own pure-PyTorch implementation
  (``mmcv/ops/point_sample.py`` loaded as a submodule), so it computes the same.
* ``sigmoid_focal_loss``, ``CrissCrossAttention``, ``PSAMask``: compiled kernels
  with no exact pure-Python twin in mmcv. Their stand-ins import fine but raise
  :class:`MissingCompiledOpError` when used, naming the op and how to get it.

Any other ``mmcv.ops`` name raises ``ModuleNotFoundError`` (the exception mmseg's
optional-import guards expect) with the same advice. With full mmcv installed,
nothing is touched.
"""
from __future__ import annotations

import importlib.util
import os.path as osp
import sys
import types
import warnings
from typing import Any, NoReturn

_STANDIN_FLAG = '__fianet_standin__'
_ADVICE = ('it is a compiled mmcv op, and the installed mmcv has no compiled '
           'ops (mmcv-lite). FIANet does not need it; to use it, install full '
           'mmcv 2.1 built with MMCV_WITH_OPS=1 (see README, "Full mmcv").')


class MissingCompiledOpError(RuntimeError):
    """Raised when a stand-in for a compiled mmcv op is used."""


def has_compiled_mmcv_ops() -> bool:
    """Whether ``mmcv._ext`` (the compiled ops library) is importable."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def _raise_missing(name: str) -> NoReturn:
    raise MissingCompiledOpError(f'mmcv.ops.{name}: {_ADVICE}')


def sigmoid_focal_loss(*args: Any, **kwargs: Any) -> NoReturn:
    """Stand-in for the CUDA focal loss kernel; raises when called.

    mmseg's ``FocalLoss`` only calls it for CUDA tensors and uses its
    pure-PyTorch ``py_sigmoid_focal_loss`` otherwise.
    """
    _raise_missing('sigmoid_focal_loss')


class _MissingOpModule:
    """Base for stand-ins of compiled op modules: constructing one raises."""

    op_name = ''

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _raise_missing(self.op_name)


class CrissCrossAttention(_MissingOpModule):
    """Stand-in for mmcv's compiled criss-cross attention (CCNet)."""

    op_name = 'CrissCrossAttention'


class PSAMask(_MissingOpModule):
    """Stand-in for mmcv's compiled point-wise spatial attention mask."""

    op_name = 'PSAMask'


def _module_getattr(name: str) -> Any:
    if name.startswith('__'):
        raise AttributeError(name)
    raise ModuleNotFoundError(f'mmcv.ops.{name} is not available: {_ADVICE}')


def install_mmcv_ops_standins() -> bool:
    """Register the stand-in ``mmcv.ops`` if compiled ops are missing.

    Returns:
        bool: True if the stand-ins are (now) in place, False if full mmcv
        with compiled ops is installed and nothing was changed.
    """
    current = sys.modules.get('mmcv.ops')
    if current is not None and getattr(current, _STANDIN_FLAG, False):
        return True
    if has_compiled_mmcv_ops():
        return False

    import mmcv

    ops_dir = osp.join(osp.dirname(mmcv.__file__), 'ops')
    module = types.ModuleType('mmcv.ops', __doc__)
    # A package path lets ``mmcv.ops.point_sample`` load from mmcv's own file
    # without running ``mmcv/ops/__init__.py`` (which needs ``mmcv._ext``).
    module.__path__ = [ops_dir]
    setattr(module, _STANDIN_FLAG, True)
    module.__getattr__ = _module_getattr
    sys.modules['mmcv.ops'] = module
    mmcv.ops = module

    from mmcv.ops.point_sample import point_sample

    module.point_sample = point_sample
    module.sigmoid_focal_loss = sigmoid_focal_loss
    module.CrissCrossAttention = CrissCrossAttention
    module.PSAMask = PSAMask
    module.MissingCompiledOpError = MissingCompiledOpError
    # mmcv.cnn probes for this compiled op at import and warns when it is
    # missing; with mmcv-lite that is expected and FIANet does not use it.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    return True
