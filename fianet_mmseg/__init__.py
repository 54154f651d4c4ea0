"""FIANet for MMSegmentation 1.x.

``import fianet_mmseg`` is light: it installs the mmcv-lite stand-ins (only
when mmcv's compiled ops are missing; they must be in place before
``mmseg.models`` loads) and nothing else. The subpackages load on first use
(``fianet_mmseg.models``, ``fianet_mmseg.apis``...), and importing one of the
registering subpackages registers its classes into mmseg's registries:

* ``fianet_mmseg.models``: FIANet, its backbone, neck, head, loss, text encoder
  and data preprocessor (loads transformers' BERT only when a text encoder is
  built; mmengine's optimizer registry imports transformers on its own when it
  is installed);
* ``fianet_mmseg.datasets``: RefSegDataset and the transforms (spaCy loads when
  the text transform first runs);
* ``fianet_mmseg.evaluation``, ``fianet_mmseg.visualization``,
  ``fianet_mmseg.engine``: RefSegMetric, RefSegVisualizer, hooks and optimizer
  wrappers.

Configs import them through ``custom_imports`` (``configs/_base_/default_runtime.py``);
scripts call :func:`register_all_modules`.
"""
from importlib import import_module
from typing import Any

from .compat import install_mmcv_ops_standins
from .version import __version__

install_mmcv_ops_standins()

#: The subpackages whose import registers classes into mmseg's registries.
REGISTERING_MODULES = ('fianet_mmseg.models', 'fianet_mmseg.datasets',
                       'fianet_mmseg.evaluation', 'fianet_mmseg.visualization',
                       'fianet_mmseg.engine')
_SUBPACKAGES = ('apis', 'benchmarking', 'checkpoint', 'compat', 'constants', 'datasets', 'engine',
                'evaluation', 'models', 'text', 'utils', 'visualization')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register every FIANet class into mmseg's registries (mmseg's own too).

    Args:
        init_default_scope (bool): Also make ``mmseg`` the default registry
            scope, as ``mmseg.utils.register_all_modules`` does.
    """
    from mmseg.utils import register_all_modules as register_mmseg

    register_mmseg(init_default_scope=init_default_scope)
    for name in REGISTERING_MODULES:
        import_module(name)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return import_module(f'.{name}', __name__)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['REGISTERING_MODULES', '__version__', 'register_all_modules']
