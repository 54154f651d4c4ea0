"""`mim train/test fianet_mmseg` in the environment the Makefile builds, as the README says."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS

CONFIG = CONFIGS / 'fianet_tiny_synthetic.py'


def _run(args, cwd, timeout=900) -> str:
    """Run ``python ARGS`` on the installed package (the tests' PYTHONPATH removed)."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    assert done.returncode == 0, f'{args}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}'
    return done.stdout + done.stderr


def _installed_tools(cwd) -> Path:
    """The installed package's ``.mim/tools`` folder (a regular install has one)."""
    code = ('import importlib.metadata as m; '
            "print(m.distribution('fianet-mmseg').locate_file('fianet_mmseg/.mim/tools'))")
    return Path(_run(['-c', code], cwd).strip())


def _tiny_synthetic_options(data_root) -> list:
    options = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
               'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'test_dataloader'):  # the demo has no validation
        options += [f'{loader}.dataset.data_root={data_root}', f'{loader}.batch_size=2',
                    f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return options


@pytest.mark.slow
def test_mim_train_and_test_run_in_this_environment(rrsisd_root, tmp_path):
    tools = _installed_tools(tmp_path)
    assert (tools / 'train.py').is_file(), (
        f'no {tools}/train.py: mim needs a regular install of the package (`pip install .`, '
        'as `make test` / `make demo` do); an editable install has no package folder for mim')
    options = _tiny_synthetic_options(rrsisd_root)
    work_dir = tmp_path / 'work'
    out = _run(['-m', 'mim', 'train', 'fianet_mmseg', CONFIG, '--work-dir', work_dir,
                '--cfg-options', *options], cwd=tmp_path)
    assert str(tools / 'train.py') in out  # mim ran the installed script
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    out = _run(['-m', 'mim', 'test', 'fianet_mmseg', CONFIG.name, '--checkpoint', checkpoint,
                '--work-dir', tmp_path / 'test', '--cfg-options', *options], cwd=tmp_path)
    assert str(tools / 'test.py') in out
    for name in ('P@0.5', 'P@0.9', 'oIoU', 'mIoU'):
        assert name in out, name
