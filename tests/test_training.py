"""Training, testing, resuming and launching with mmengine (tiny model, fixture data)."""
from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, REPO, load_config, tiny_cli_options, tiny_model_overrides
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from mmseg.registry import MODELS

from fianet_mmseg.utils import DEMO_TEXT_ENCODER

CONFIG = str(CONFIGS / 'fianet_swin-b_rrsisd.py')
METRIC_NAMES = ('P@0.5', 'P@0.6', 'P@0.7', 'P@0.8', 'P@0.9', 'oIoU', 'mIoU')


def run(cmd, cwd=REPO, timeout=600, env=None):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)
    assert done.returncode == 0, f'{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}'
    return done.stdout + done.stderr


def train_losses(work_dir: Path) -> dict:
    """Iteration -> loss from mmengine's scalar logs of every run in ``work_dir``."""
    losses = {}
    for path in sorted(glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))):
        for line in Path(path).read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                losses[record['iter']] = record['loss']
    return losses


@pytest.mark.slow
def test_train_checkpoint_test_and_resume(rrsisd_root, tmp_path):
    """A short run writes checkpoints that tools/test.py and --resume load (torch >= 2.6)."""
    train, test = REPO / 'tools' / 'train.py', REPO / 'tools' / 'test.py'
    full, parts = tmp_path / 'uninterrupted', tmp_path / 'interrupted'
    options = tiny_cli_options(rrsisd_root, epochs=3)
    run([sys.executable, train, CONFIG, '--work-dir', full, '--cfg-options', *options])
    # the same 3-epoch schedule, stopped after epoch 2, then resumed
    run([sys.executable, train, CONFIG, '--work-dir', parts, '--cfg-options', *options,
         'train_cfg.max_epochs=2'])
    assert (parts / 'epoch_2.pth').exists() and not (parts / 'epoch_3.pth').exists()
    log = run([sys.executable, train, CONFIG, '--work-dir', parts, '--resume',
               '--cfg-options', *options])
    assert 'resumed epoch: 2' in log
    reference, resumed = train_losses(full), train_losses(parts)
    last_epoch = [it for it in reference if it > max(reference) * 2 // 3]
    assert last_epoch and all(it in resumed for it in last_epoch)
    for it in last_epoch:
        assert resumed[it] == pytest.approx(reference[it], rel=1e-5, abs=1e-6), it
    # the best checkpoint (by val oIoU) exists; tools/test.py reports every metric by name
    assert glob.glob(str(full / 'best_oIoU_epoch_*.pth'))
    out = run([sys.executable, test, CONFIG, full / 'epoch_3.pth', '--work-dir',
               tmp_path / 'test', '--out', tmp_path / 'per_sample.jsonl',
               '--cfg-options', *options])
    for name in METRIC_NAMES:
        assert f'{name}: ' in out or f"'{name}'" in out, name
    assert 'semseg/mIoU' in out
    per_sample = [json.loads(line) for line in (tmp_path / 'per_sample.jsonl').open()]
    assert len(per_sample) == len((rrsisd_root / 'test.jsonl').read_text().splitlines())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training(rrsisd_root, tmp_path):
    options = tiny_cli_options(rrsisd_root, epochs=1, batch_size=1)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    log = run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
               f'--master_port={free_port()}', REPO / 'tools' / 'train.py', CONFIG,
               '--launcher', 'pytorch', '--work-dir', tmp_path,
               '--cfg-options', *options, 'env_cfg.dist_cfg.backend=gloo'], env=env)
    assert 'Distributed training: True' in log
    assert "'world_size': 2" in log or 'world_size: 2' in log or 'GPU number: 2' in log
    assert (tmp_path / 'epoch_1.pth').exists()
    # 5 training samples over 2 ranks at batch 1: 3 iterations per rank
    assert 'Epoch(train) [1][3/3]' in log


@pytest.mark.slow
def test_mim_train_and_test_after_pip_install(rrsisd_root, tmp_path):
    """`pip install .` into a clean venv, then `mim train/test fianet_mmseg <basename>`."""
    wheels = tmp_path / 'wheels'
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
         '-w', wheels, REPO])
    venv = tmp_path / 'venv'
    run([getattr(sys, '_base_executable', 'python3'), '-m', 'venv', venv])
    venv_python = venv / 'bin' / 'python'
    site = run([venv_python, '-c', 'import site; print(site.getsitepackages()[0])']).strip()
    # dependencies come from the project's environment, the package from the wheel
    deps = run([sys.executable, '-c', 'import site; print(site.getsitepackages()[0])']).strip()
    Path(site, 'project_deps.pth').write_text(deps + '\n')
    run([venv_python, '-m', 'pip', 'install', '--no-deps', '-q',
         *glob.glob(str(wheels / 'fianet_mmseg-*.whl'))])
    installed = run([venv_python, '-c', 'import fianet_mmseg; print(fianet_mmseg.__file__)'],
                    cwd=tmp_path).strip()
    assert installed.startswith(site)
    mim = [venv_python, '-c', 'import sys; from mim.cli import cli; sys.exit(cli())']
    options = tiny_cli_options(rrsisd_root, epochs=1)
    work_dir = tmp_path / 'work'
    out = run(mim + ['train', 'fianet_mmseg', 'fianet_swin-b_rrsisd.py', '--work-dir',
                     work_dir, '--cfg-options', *options], cwd=tmp_path)
    assert os.path.join(site, 'fianet_mmseg', '.mim', 'tools', 'train.py') in out or \
        (work_dir / 'epoch_1.pth').exists()
    assert (work_dir / 'epoch_1.pth').exists()
    out = run(mim + ['test', 'fianet_mmseg', 'fianet_swin-b_rrsisd.py', '--checkpoint',
                     work_dir / 'epoch_1.pth', '--work-dir', tmp_path / 'test',
                     '--cfg-options', *options], cwd=tmp_path)
    for name in METRIC_NAMES:
        assert name in out, name


ABLATIONS = sorted(Path(CONFIGS, 'ablations').glob('*.py'))


@pytest.mark.parametrize('config', ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_ablation_config_runs_one_iteration(config, rrsisd_root):
    overrides = tiny_model_overrides()
    cfg = load_config(f'ablations/{config.name}')
    if cfg.model.get('neck') is None:
        overrides = {k: v for k, v in overrides.items() if not k.startswith('model.neck')}
    else:
        overrides['model.neck.num_blocks'] = cfg.model.neck.num_blocks
    cfg.merge_from_dict(overrides)
    loader_cfg = cfg.train_dataloader
    loader_cfg.update(batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False)
    loader_cfg.dataset.data_root = str(rrsisd_root)
    for step in loader_cfg.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step['tokenizer'] = DEMO_TEXT_ENCODER
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = next(iter(Runner.build_dataloader(loader_cfg)))
    before = {k: v.clone() for k, v in model.decode_head.state_dict().items()}
    losses = model.train_step(batch, optim)
    assert torch.isfinite(losses['loss'])
    after = model.decode_head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if 'no-decoupling' in config.stem:
        text = model.data_preprocessor(batch, True)['text']
        assert torch.equal(text['object_mask'], text['attention_mask'])
        assert torch.equal(text['position_mask'], text['attention_mask'])


def test_config_basenames_are_unique():
    names = [p.name for p in CONFIGS.rglob('*.py') if '_base_' not in p.parts]
    assert len(names) == len(set(names))


def test_amp_config_uses_amp_optim_wrapper():
    cfg = load_config('fianet_swin-b_rrsisd_amp.py')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.lr == 3e-5
