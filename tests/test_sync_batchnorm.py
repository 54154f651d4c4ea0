"""PortableSyncBatchNorm: two CPU processes (gloo) normalise like one BN over the whole batch."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmcv.cnn import build_norm_layer
from torch import nn

from fianet_mmseg.models.layers import PortableSyncBatchNorm

CHANNELS = 3


def _batch():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, CHANNELS, 5, 6, generator=gen) * 3 + 1
    weights = torch.randn(4, CHANNELS, 5, 6, generator=gen)  # makes the loss non-trivial
    return x, weights


def _init_layer(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    return layer


def _rank_step(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    x, weights = _batch()
    part = slice(2 * rank, 2 * rank + 2)
    layer = _init_layer(PortableSyncBatchNorm(CHANNELS, momentum=0.1)).train()
    inputs = x[part].clone().requires_grad_()
    out = layer(inputs)
    (out * weights[part]).sum().backward()
    torch.save(dict(out=out.detach(), grad=inputs.grad, weight_grad=layer.weight.grad,
                    bias_grad=layer.bias.grad, running_mean=layer.running_mean,
                    running_var=layer.running_var,
                    tracked=layer.num_batches_tracked), f'{out_file}.{rank}')
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_cpu_processes_match_batch_norm_on_the_whole_batch(tmp_path):
    out_file = str(tmp_path / 'rank')
    mp.spawn(_rank_step, args=(2, str(tmp_path / 'init'), out_file), nprocs=2, join=True)
    ranks = [torch.load(f'{out_file}.{r}') for r in range(2)]

    x, weights = _batch()
    plain = _init_layer(nn.BatchNorm2d(CHANNELS, momentum=0.1)).train()
    inputs = x.clone().requires_grad_()
    out = plain(inputs)
    (out * weights).sum().backward()

    # float32 sums of 60 values of magnitude ~5: agreement to 1e-5 relative
    tol = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r['out'] for r in ranks]), out.detach(), **tol)
    torch.testing.assert_close(torch.cat([r['grad'] for r in ranks]), inputs.grad, **tol)
    # DDP would average the parameter gradients; their sum is the whole batch's gradient
    torch.testing.assert_close(ranks[0]['weight_grad'] + ranks[1]['weight_grad'],
                               plain.weight.grad, **tol)
    torch.testing.assert_close(ranks[0]['bias_grad'] + ranks[1]['bias_grad'],
                               plain.bias.grad, **tol)
    for rank in ranks:  # the same (global) running statistics on both processes
        torch.testing.assert_close(rank['running_mean'], plain.running_mean, **tol)
        torch.testing.assert_close(rank['running_var'], plain.running_var, **tol)
        assert int(rank['tracked']) == 1


def test_one_process_is_plain_batch_norm():
    x, _ = _batch()
    sync = _init_layer(PortableSyncBatchNorm(CHANNELS)).train()
    plain = _init_layer(nn.BatchNorm2d(CHANNELS)).train()
    assert not dist.is_initialized()
    assert torch.equal(sync(x), plain(x))
    # DistributedDataParallel refuses torch's SyncBatchNorm on CPU, not this layer
    assert not isinstance(sync, nn.SyncBatchNorm)
    assert torch.equal(sync.running_var, plain.running_var)
    assert list(sync.state_dict()) == list(plain.state_dict())


def test_registered_for_norm_cfg_and_in_the_configs():
    from conftest import load_config

    name, layer = build_norm_layer(dict(type='PortableSyncBN', requires_grad=True), 8)
    assert name == 'bn' and isinstance(layer, PortableSyncBatchNorm)
    cfg = load_config('fianet_swin-b_rrsisd.py')
    assert cfg.model.decode_head.norm_cfg.type == 'PortableSyncBN'
    assert cfg.model.neck.norm_cfg.type == 'PortableSyncBN'


@pytest.fixture(autouse=True)
def _no_leftover_group():
    yield
    assert not dist.is_initialized()
    os.environ.pop('MASTER_ADDR', None)
