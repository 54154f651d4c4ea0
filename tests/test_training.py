"""Training, testing, resuming and launching with mmengine (tiny model, fixture data)."""
from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from conftest import (
    CONFIGS,
    REPO,
    demo_text_encoder,
    load_config,
    tiny_cli_options,
    tiny_model_overrides,
)
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from mmseg.registry import MODELS

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
def test_train_with_amp_on_cpu_then_test_with_outputs(rrsisd_root, tmp_path):
    """tools/train.py --amp on a CPU (bf16 autocast), then tools/test.py --out / --per-sample.

    Resuming (safe loading of mmengine's checkpoints included) is tested in test_resume.py.
    """
    train, test = REPO / 'tools' / 'train.py', REPO / 'tools' / 'test.py'
    full = tmp_path / 'train'
    options = tiny_cli_options(rrsisd_root, epochs=2)
    log = run([sys.executable, train, CONFIG, '--work-dir', full, '--amp',
               '--cfg-options', *options])
    # mmengine's AmpOptimWrapper refuses CPUs; --amp picked the bf16 autocast wrapper
    assert "type='AutocastOptimWrapper'" in log and "dtype='bfloat16'" in log
    assert train_losses(full)  # it trained (mmengine logged losses)
    # the best checkpoint (by val oIoU) exists; tools/test.py reports every metric by name
    assert glob.glob(str(full / 'best_oIoU_epoch_*.pth'))
    out = run([sys.executable, test, CONFIG, full / 'epoch_2.pth', '--work-dir',
               tmp_path / 'test', '--out', tmp_path / 'masks', '--per-sample',
               tmp_path / 'per_sample.jsonl', '--cfg-options', *options])
    for name in METRIC_NAMES:
        assert f'{name}: ' in out or f"'{name}'" in out, name
    assert 'semseg/mIoU' in out
    per_sample = [json.loads(line) for line in (tmp_path / 'per_sample.jsonl').open()]
    test_records = [json.loads(line) for line in (rrsisd_root / 'test.jsonl').open()]
    assert len(per_sample) == len(test_records)
    # --out: one 0/1 PNG per test expression, at its image's size, like mmseg's --out
    masks = sorted((tmp_path / 'masks').glob('*.png'))
    assert len(masks) == len(test_records)
    for sample in per_sample:
        stem = Path(sample['img_path']).stem
        mask = mmcv.imread(tmp_path / 'masks' / f"{sample['sample_idx']:06d}_{stem}.png",
                           flag='unchanged')
        record = next(r for r in test_records if r['sent_id'] == sample['sent_id'])
        assert mask.shape == (record['height'], record['width'])
        assert set(np.unique(mask)) <= {0, 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training(rrsisd_root, tmp_path):
    """2 CPU processes: synchronised batch norms (the configs' AutoSyncBN, which builds
    PortableSyncBN without CUDA: torch's SyncBatchNorm would stop this CPU run), lr scaling."""
    cfg = load_config('fianet_swin-b_rrsisd.py')
    assert cfg.model.decode_head.norm_cfg.type == cfg.model.neck.norm_cfg.type == 'AutoSyncBN'
    options = tiny_cli_options(rrsisd_root, epochs=1, batch_size=1)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    log = run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
               f'--master_port={free_port()}', REPO / 'tools' / 'train.py', CONFIG,
               '--launcher', 'pytorch', '--work-dir', tmp_path, '--auto-scale-lr',
               '--cfg-options', *options, 'env_cfg.dist_cfg.backend=gloo'], env=env)
    assert 'Distributed training: True' in log
    assert "'world_size': 2" in log or 'world_size: 2' in log or 'GPU number: 2' in log
    assert (tmp_path / 'epoch_1.pth').exists()
    # 5 training samples over 2 ranks at batch 1: 3 iterations per rank
    assert 'Epoch(train) [1][3/3]' in log
    # auto_scale_lr: 2 processes x 1 image against the reference's batch of 8
    assert 'current batch size is 2. Scaling the original LR by 0.25' in log
    # the synchronised norms trained (their numbers against one BN over the whole batch:
    # tests/test_sync_batchnorm.py)
    state = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)['state_dict']
    assert state['decode_head.conv_seg.weight'].isfinite().all()
    assert int(state['neck.bn.num_batches_tracked']) == 3


ABLATIONS = sorted(Path(CONFIGS, 'ablations').glob('*.py'))


@pytest.mark.slow
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
            step['tokenizer'] = demo_text_encoder()
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
