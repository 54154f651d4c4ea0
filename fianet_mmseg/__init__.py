"""FIANet for MMSegmentation 1.x.

Importing the package installs the mmcv-lite stand-ins (only when mmcv's
compiled ops are missing), lets mmengine's checkpoints load under torch's safe
loading, and registers FIANet's components into mmseg's registries.
"""
from .compat import install_mmcv_ops_standins, register_checkpoint_safe_globals
from .version import __version__

install_mmcv_ops_standins()
register_checkpoint_safe_globals()

from . import apis, datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__all__ = ['__version__']
