"""Config handling shared by ``tools/train.py`` and ``tools/test.py``."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

from .dist import init_cpu_distributed


def load_run_config(config: str, cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None, launcher: str = 'none') -> Config:
    """Load a config, apply ``--cfg-options`` and settle the work dir.

    The work dir is, by priority: ``work_dir``, the config's ``work_dir``,
    ``./work_dirs/<config name>``. With the ``pytorch`` launcher and no GPU,
    the gloo process group is started here (see :func:`init_cpu_distributed`).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    init_cpu_distributed(launcher)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """mmengine's default runner, or the registered one named by ``runner_type``."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from mmseg.registry import RUNNERS

    return RUNNERS.build(cfg)
