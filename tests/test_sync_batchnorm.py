"""Synchronised batch norms: two CPU processes (gloo) normalise like one BN over the whole batch
(in float64), in every dtype; the configs build torch's SyncBatchNorm where CUDA is available."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmcv.cnn import build_norm_layer
from torch import nn

from fianet_mmseg.models.layers import AutoSyncBatchNorm, PortableSyncBatchNorm

CHANNELS = 3
WORLD = 2
#: Rounding allowance: a tolerance is ``FACTOR * eps(dtype) * magnitude``, the magnitude being
#: the size of the terms that make up the compared value (see ``_scales``). A few roundings per
#: element plus pairwise summation of up to 2**17 terms (log2: 17) stay well within 32 eps.
FACTOR = 16


def _case_inputs(case: str):
    """The whole batch of a case (every rank takes its half) and the loss weights."""
    gen = torch.Generator().manual_seed(0)
    size = dict(float32=(4, CHANNELS, 5, 6), bfloat16_autocast=(4, CHANNELS, 6, 6),
                # 2 x 128 x 160 = 40,960 values per channel and process, 81,920 in all: more
                # than float16 counts (its largest finite value is 65,504)
                float16=(4, CHANNELS, 128, 160), large_mean=(4, CHANNELS, 8, 8))[case]
    x = torch.randn(size, generator=gen) * 3 + 1
    if case == 'large_mean':  # channel 1: mean 1e3, variance 1e-2
        x[:, 1] = 1e3 + 0.1 * torch.randn(size[0], *size[2:], generator=gen)
    weights = torch.randn(size, generator=gen)  # makes the loss non-trivial
    if case == 'float16':
        x = x.half()
    return x, weights


def _init_layer(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    return layer


def _run_case(case: str, rank: int) -> dict:
    """One training step of a PortableSyncBatchNorm on this rank's half of the batch."""
    x, weights = _case_inputs(case)
    part = slice(2 * rank, 2 * rank + 2)
    layer = _init_layer(PortableSyncBatchNorm(CHANNELS, momentum=0.1)).train()
    if case == 'bfloat16_autocast':
        # as in the model: a convolution under autocast feeds the norm; record what reaches it
        torch.manual_seed(1)
        conv = nn.Conv2d(CHANNELS, CHANNELS, 1)
        seen = {}

        def keep_input(module, args):
            args[0].retain_grad()
            seen['input'] = args[0]

        layer.register_forward_pre_hook(keep_input)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = layer(conv(x[part]))
        inputs = seen['input']
    else:
        inputs = x[part].clone().requires_grad_()
        out = layer(inputs)
    (out.float() * weights[part]).sum().backward()
    return dict(input=inputs.detach(), out=out.detach(), grad=inputs.grad,
                weight_grad=layer.weight.grad, bias_grad=layer.bias.grad,
                running_mean=layer.running_mean, running_var=layer.running_var,
                tracked=layer.num_batches_tracked)


def _cumulative_average(rank: int) -> dict:
    """momentum=None: the running statistics average two steps (float32)."""
    x, _ = _case_inputs('float32')
    layer = PortableSyncBatchNorm(CHANNELS, momentum=None).train()
    for step in range(2):
        layer(x[2 * rank:2 * rank + 2] * (step + 1))
    return dict(running_mean=layer.running_mean, running_var=layer.running_var)


CASES = ('float32', 'bfloat16_autocast', 'float16', 'large_mean')


def _rank_steps(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    results = {case: _run_case(case, rank) for case in CASES}
    results['cumulative'] = _cumulative_average(rank)
    torch.save(results, f'{out_file}.{rank}')
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def two_process_results(tmp_path_factory):
    """Every case's results on the two ranks (one spawn for all cases)."""
    tmp = tmp_path_factory.mktemp('sync_bn')
    out_file = str(tmp / 'rank')
    mp.spawn(_rank_steps, args=(WORLD, str(tmp / 'init'), out_file), nprocs=WORLD, join=True)
    return [torch.load(f'{out_file}.{r}') for r in range(WORLD)]


def _whole_batch_float64(inputs: torch.Tensor, weights: torch.Tensor) -> dict:
    """One plain batch norm over the whole batch, in float64, and the error scales."""
    bn = _init_layer(nn.BatchNorm2d(CHANNELS, momentum=0.1)).double().train()
    x = inputs.double().requires_grad_()
    out = bn(x)
    grad_out = weights.double()
    (out * grad_out).sum().backward()
    return dict(out=out.detach(), grad=x.grad, weight_grad=bn.weight.grad,
                bias_grad=bn.bias.grad, running_mean=bn.running_mean,
                running_var=bn.running_var, x=x.detach(), grad_out=grad_out, bn=bn)


def _scales(ref: dict) -> dict:
    """The magnitude of the terms behind each compared value, per channel (1, C, 1, 1) / (C,).

    output: |w| |x - mean| / std + |b|; input gradient: |w| / std (|g| + mean|g| + |x_hat|
    mean|g x_hat|); parameter gradients: sum |g x_hat| and sum |g|; running statistics: the
    momentum times mean |x| (the summed values) and the running variance itself.
    """
    x, g, bn = ref['x'], ref['grad_out'], ref['bn']
    dims = (0, 2, 3)
    mean = x.mean(dims, keepdim=True)
    std = (x.var(dims, unbiased=False, keepdim=True) + bn.eps).sqrt()
    x_hat = (x - mean) / std
    w, b = bn.weight.detach().view(1, -1, 1, 1).abs(), bn.bias.detach().view(1, -1, 1, 1).abs()
    grad = w / std * (g.abs() + g.abs().mean(dims, keepdim=True)
                      + x_hat.abs() * (g * x_hat).abs().mean(dims, keepdim=True))
    return dict(out=w * x_hat.abs() + b, grad=grad, weight_grad=(g * x_hat).abs().sum(dims),
                bias_grad=g.abs().sum(dims), running_mean=bn.momentum * x.abs().mean(dims),
                running_var=ref['running_var'].abs())


def _assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, scale: torch.Tensor,
                  dtype: torch.dtype) -> None:
    error = (actual.double() - expected).abs()
    allowed = FACTOR * torch.finfo(dtype).eps * scale.expand_as(expected)
    worst = (error / allowed).max().item()
    assert worst <= 1, (f'{name}: error up to {error.max().item():.3g}, '
                        f'{worst:.3g} x the allowance {FACTOR} eps({dtype}) x magnitude')


@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.parametrize('case,dtype', [
    ('float32', torch.float32),
    # what reaches the norm under bfloat16 autocast is the convolution's bfloat16 output
    ('bfloat16_autocast', torch.bfloat16),
    ('float16', torch.float16),
    # mean 1e3 against a standard deviation of 0.1: E[x^2] - E[x]^2 would cancel 8 digits
    ('large_mean', torch.float32),
])
def test_two_processes_match_one_float64_batch_norm_on_the_whole_batch(
        two_process_results, case, dtype):
    ranks = [r[case] for r in two_process_results]
    for rank in ranks:
        assert rank['input'].dtype == rank['out'].dtype == rank['grad'].dtype == dtype
        assert int(rank['tracked']) == 1
    _, weights = _case_inputs(case)
    ref = _whole_batch_float64(torch.cat([r['input'] for r in ranks]), weights)
    scales = _scales(ref)
    # the input's dtype bounds the output and input gradient (rounded to it) and, through the
    # loss gradient rounded to it, the parameter gradients; the statistics are float32
    _assert_close('out', torch.cat([r['out'] for r in ranks]), ref['out'], scales['out'], dtype)
    _assert_close('grad', torch.cat([r['grad'] for r in ranks]), ref['grad'], scales['grad'],
                  dtype)
    # DDP would average the parameter gradients; their sum is the whole batch's gradient
    for key in ('weight_grad', 'bias_grad'):
        _assert_close(key, ranks[0][key] + ranks[1][key], ref[key], scales[key], dtype)
    for rank in ranks:  # the same (global) running statistics on both processes
        for key in ('running_mean', 'running_var'):
            _assert_close(key, rank[key], ref[key], scales[key], torch.float32)


@pytest.mark.slow
@pytest.mark.numerics
def test_cumulative_running_statistics_without_momentum(two_process_results):
    x, _ = _case_inputs('float32')
    bn = nn.BatchNorm2d(CHANNELS, momentum=None).double().train()
    for step in range(2):
        bn(x.double() * (step + 1))
    # the scales: the summed values' magnitude (mean |x| of both steps) and the variance itself
    scales = dict(running_mean=(x.abs().double() * 1.5).mean((0, 2, 3)),
                  running_var=bn.running_var.abs())
    for rank in two_process_results:
        result = rank['cumulative']
        for key, scale in scales.items():
            _assert_close(key, result[key], getattr(bn, key), scale, torch.float32)


def test_one_process_is_plain_batch_norm():
    x, _ = _case_inputs('float32')
    sync = _init_layer(PortableSyncBatchNorm(CHANNELS)).train()
    plain = _init_layer(nn.BatchNorm2d(CHANNELS)).train()
    assert not dist.is_initialized()
    assert torch.equal(sync(x), plain(x))
    # DistributedDataParallel refuses torch's SyncBatchNorm on CPU, not this layer
    assert not isinstance(sync, nn.SyncBatchNorm)
    assert torch.equal(sync.running_var, plain.running_var)
    assert list(sync.state_dict()) == list(plain.state_dict())


def test_registered_for_norm_cfg():
    name, layer = build_norm_layer(dict(type='PortableSyncBN', requires_grad=True), 8)
    assert name == 'bn' and isinstance(layer, PortableSyncBatchNorm)
    name, layer = build_norm_layer(dict(type='AutoSyncBN', requires_grad=False), 8)
    assert name == 'bn' and layer.num_features == 8 and layer.eps == 1e-5
    assert not any(p.requires_grad for p in layer.parameters())


@pytest.mark.parametrize('cuda', [True, False], ids=['cuda', 'no-cuda'])
def test_configs_build_torch_sync_batch_norm_where_cuda_is_available(monkeypatch, cuda):
    from conftest import build_model, load_config, tiny_model_overrides

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    config = 'fianet_swin-b_rrsisd_4xb2.py'
    cfg = load_config(config)
    assert cfg.model.decode_head.norm_cfg.type == cfg.model.neck.norm_cfg.type == 'AutoSyncBN'

    def norms(overrides: dict) -> list:
        model = build_model(config, dict(tiny_model_overrides(), **overrides))
        return [m for part in (model.neck, model.decode_head) for m in part.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    plain = norms({'model.neck.norm_cfg.type': 'BN', 'model.decode_head.norm_cfg.type': 'BN'})
    synchronised = norms({})
    assert len(synchronised) == len(plain) > 0  # every batch norm of TMEM and the decoder
    expected = nn.SyncBatchNorm if cuda else PortableSyncBatchNorm
    assert all(type(m) is expected for m in synchronised), {type(m) for m in synchronised}
    assert not any(isinstance(m, AutoSyncBatchNorm) for m in synchronised)
    # the same checkpoint keys as the plain batch norms either way
    assert [list(m.state_dict()) for m in synchronised] == [list(m.state_dict()) for m in plain]


@pytest.fixture(autouse=True)
def _no_leftover_group():
    yield
    assert not dist.is_initialized()
    os.environ.pop('MASTER_ADDR', None)

