"""Config handling shared by ``tools/train.py`` and ``tools/test.py``."""
from __future__ import annotations

import difflib
import inspect
import os.path as osp
from typing import Any, Mapping, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from .dist import init_cpu_distributed

#: Top-level keys the tools read besides the config's own and Runner's arguments.
TOOL_KEYS = ('runner_type',)
#: A new key at least this similar (difflib ratio) to an existing sibling is a typo.
TYPO_RATIO = 0.85


def _suggest(key: str, choices: Sequence[str], prefix: str = '') -> str:
    """' (did you mean a, b?)' with the close matches of ``key``, else ''."""
    matches = difflib.get_close_matches(key, [str(c) for c in choices], n=3, cutoff=0.6)
    return f' (did you mean {", ".join(prefix + m for m in matches)}?)' if matches else ''


def check_cfg_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """Refuse ``--cfg-options`` keys that name nothing in ``cfg`` (mmengine adds them silently).

    For each dotted key, walked through the config (list items by index):

    * the top-level key exists in the config, or is an argument of mmengine's
      ``Runner`` (``work_dir``, ``custom_hooks``...) or in :data:`TOOL_KEYS`;
    * a list index is an integer within the list;
    * the first key that does not exist yet is new under an existing parent.
      It must not be a near-copy of an existing sibling (difflib ratio >=
      :data:`TYPO_RATIO`: ``backbon`` for ``backbone``). A new leaf is then
      accepted (a class rejects an unknown keyword itself); a new section
      (``a.new.b``) only when its parent has a ``type`` (it is a keyword of
      that class, e.g. ``model.text_encoder.bert_config.hidden_size``) or the
      options give the new section's own ``type`` (a new component).

    Raises:
        KeyError: Naming the option, the missing key and close matches.
    """
    runner_args = [name for name in inspect.signature(Runner.__init__).parameters
                   if name != 'self']
    for option in options:
        parts = str(option).split('.')
        node: Any = cfg
        for depth, part in enumerate(parts):
            path = '.'.join(parts[:depth])
            here = '.'.join(parts[:depth + 1])
            if isinstance(node, (list, tuple)):
                if not part.isdigit() or int(part) >= len(node):
                    raise KeyError(f'--cfg-options {option}: {path} is a list of {len(node)} '
                                   f'item(s); {part!r} is not an index 0-{len(node) - 1}')
                node = node[int(part)]
                continue
            if not isinstance(node, (dict, Config)):
                break  # a value replaced by a section: mmengine's merge refuses it by name
            if part in node:
                node = node[part]
                continue
            siblings = list(node.keys())
            if depth == 0:
                if part in runner_args or part in TOOL_KEYS:
                    break
                raise KeyError(f'--cfg-options {option}: the config has no top-level key '
                               f'{part!r}, and mmengine\'s Runner takes no such argument'
                               + _suggest(part, list(dict.fromkeys(siblings + runner_args))))
            typos = difflib.get_close_matches(part, siblings, n=3, cutoff=TYPO_RATIO)
            if typos:
                raise KeyError(f'--cfg-options {option}: {path} has no key {part!r}; did you '
                               f'mean {", ".join(f"{path}.{t}" for t in typos)}?')
            is_leaf = depth == len(parts) - 1
            if not is_leaf and 'type' not in node and f'{here}.type' not in options:
                raise KeyError(f'--cfg-options {option}: {path} has no key {part!r} (its keys: '
                               f'{", ".join(map(str, siblings))}); give {here}.type to add a '
                               'new component there')
            break




def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config file and apply ``--cfg-options``, whose keys must name existing
    config entries (see :func:`check_cfg_options`)."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_run_config(config: str, cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None, launcher: str = 'none') -> Config:
    """Load a config, apply ``--cfg-options`` (:func:`load_config`) and settle the work dir.

    The work dir is, by priority: ``work_dir``, the config's ``work_dir``,
    ``./work_dirs/<config name>``. With the ``pytorch`` launcher and no GPU,
    the gloo process group is started here (see :func:`init_cpu_distributed`).
    """
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    init_cpu_distributed(launcher)
    return cfg


def use_mixed_precision(cfg: Config, device: str, dtype: Optional[str] = None) -> str:
    """Switch ``cfg.optim_wrapper`` to mixed precision; returns the dtype name.

    CPU: :class:`~fianet_mmseg.engine.AutocastOptimWrapper` (bfloat16 autocast;
    mmengine's ``AmpOptimWrapper`` refuses CPUs).
    GPU: mmengine's ``AmpOptimWrapper`` with dynamic loss scaling, float16
    unless ``dtype='bfloat16'``.
    """
    wrapper = cfg.optim_wrapper
    if device == 'cpu':
        if dtype not in (None, 'bfloat16'):
            raise ValueError(f'CPU mixed precision is bfloat16 only, got {dtype!r}')
        wrapper.type = 'AutocastOptimWrapper'
        wrapper.dtype = 'bfloat16'
        wrapper.pop('loss_scale', None)
        return 'bfloat16'
    dtype = dtype or 'float16'
    wrapper.type = 'AmpOptimWrapper'
    wrapper.dtype = dtype
    wrapper.setdefault('loss_scale', 'dynamic')
    return dtype



def default_device() -> str:
    """``'cuda'`` when a GPU is visible, else ``'cpu'`` (where mmengine's runner runs)."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def build_runner(cfg: Config) -> Runner:
    """mmengine's default runner, or the registered one named by ``runner_type``."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from mmseg.registry import RUNNERS

    return RUNNERS.build(cfg)
