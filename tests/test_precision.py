"""Reduced-precision inference: bf16 (and the benchmark's int8) agree with float32 within
their dtype's bound.

The bound. bfloat16 keeps 8 significant bits: one rounding has a relative error
of at most ``u = 2**-8``. Under autocast every matrix product and convolution
rounds both operands to bfloat16 (normalisations and softmax stay float32), so
each of the ``D`` rounding steps along the model's chain adds a relative
error of about ``2u`` to the magnitudes flowing through it; to first order
these add up to ``2uD`` of the features reaching the last layer, and a logit,
a dot product ``w . x``, then moves by at most ``2uD`` times its absolute
scale ``S = |w| . |x| + |b|`` (the usual error bound of a dot product, larger
than the logit itself where terms cancel). int8 dynamic quantisation rounds
each output channel's weights to 255 steps of its range and each activation
tensor to 255 steps of its range: ``2/255 ~ 2u`` per linear layer, the same
order. The tests allow twice that first-order bound, ``4uDS``: normalisations
(LayerNorm, BatchNorm) rescale the errors with the features, and the measured
error of the tiny random model below already reaches 0.83 of ``2uDS``
(bf16: max |difference| 0.94 with S = 4.37; int8: 0.77; AMD EPYC with
avx512_bf16, torch 2.13). This tiny model is a hard case: random weights,
logits shifted so that half its pixels are object, margins of at most ~1 — on
the demo's trained model bf16 keeps 99.97% of the pixels (docs/benchmarks.md).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import BASE_CONFIG as CONFIG
from conftest import (
    load_script,
    make_tiny_checkpoint,
    options_dict,
    split_records,
    tiny_test_options,
)

from fianet_mmseg.apis import inference_model, init_model
from fianet_mmseg.utils import precision as precision_module
from fianet_mmseg.utils.precision import PRECISION_ATTR, apply_precision, set_benchmark_precision

#: bfloat16's unit roundoff (8 significant bits).
BF16_U = 2.0 ** -8
#: Rounding steps along the tiny model's chain from input to logits. A residual
#: sub-block (attention or MLP) adds its output, rounded once at its size, to the
#: stream: one step each. Swin: 4 stages x 2 blocks x 2 sub-blocks (16), patch
#: embedding and 3 mergings (4), FIAM after each stage (4); TMEM's block (2); the
#: head's three convolutions and conv_seg (4); BERT's 2 layers x 2 sub-blocks (4),
#: whose words FIAM reads.
CHAIN_PRODUCTS = 34


@pytest.fixture(scope='module')
def tiny_checkpoint(rrsisd_root, tmp_path_factory):
    return make_tiny_checkpoint(rrsisd_root, tmp_path_factory.mktemp('ckpt') / 'tiny.pth')


def load(rrsisd_root, tiny_checkpoint, precision='fp32'):
    return init_model(CONFIG, str(tiny_checkpoint), precision=precision,
                      cfg_options=options_dict(tiny_test_options(rrsisd_root)))


def logits_of(model, rrsisd_root) -> list:
    """(2, H, W) float32 logits of each of the fixture's first test samples."""
    records = split_records(rrsisd_root, 'test')[:4]
    results = inference_model(model, [r['img_path'] for r in records],
                              [r['expression'] for r in records])
    return [r.seg_logits.data for r in results]


@pytest.fixture(scope='module')
def fp32_run(rrsisd_root, tiny_checkpoint):
    """The float32 logits and the last layer's absolute scale S = max |w| . |x| + |b|."""
    model = load(rrsisd_root, tiny_checkpoint)
    scales = []

    def absolute_scale(conv, inputs, output) -> None:
        scales.append(float(F.conv2d(inputs[0].abs(), conv.weight.abs(),
                                     conv.bias.abs()).max()))

    handle = model.decode_head.conv_seg.register_forward_hook(absolute_scale)
    logits = logits_of(model, rrsisd_root)
    handle.remove()
    return logits, max(scales)


@pytest.fixture(scope='module')
def fp32_logits(fp32_run):
    return fp32_run[0]


def check_agreement(reduced, fp32_run, unit: float) -> None:
    """Max |difference| <= 4 * unit * CHAIN_PRODUCTS * S (the module docstring)."""
    exact, scale = fp32_run
    bound = 4 * unit * CHAIN_PRODUCTS * scale
    for low, high in zip(reduced, exact):
        assert low.dtype == torch.float32 and low.shape == high.shape
        difference = (low - high).abs().max().item()
        assert difference <= bound, (difference, bound)
        assert difference > 0  # the reduced path did run (not the float32 one)


@pytest.mark.numerics
def test_bf16_agrees_with_fp32(rrsisd_root, tiny_checkpoint, fp32_run):
    model = load(rrsisd_root, tiny_checkpoint)
    assert apply_precision(model, 'bf16', force=True) == 'bf16'  # on any CPU
    check_agreement(logits_of(model, rrsisd_root), fp32_run, BF16_U)


@pytest.mark.numerics
def test_benchmark_int8_agrees_with_fp32(rrsisd_root, tiny_checkpoint, fp32_run):
    """int8 is not an option of init_model (its gain was too small); the benchmark measures it."""
    model = load(rrsisd_root, tiny_checkpoint)
    assert set_benchmark_precision(model, 'int8') == 'int8'
    linears = [m for m in model.modules() if type(m).__name__ == 'Linear']
    assert not [m for m in linears if type(m) is torch.nn.Linear]  # all quantised
    check_agreement(logits_of(model, rrsisd_root), fp32_run, 1 / 255)


@pytest.mark.parametrize('value', ['fp16', 'FP32', None, 8, 'int8'])
def test_bad_precision_names_the_field(rrsisd_root, tiny_checkpoint, value):
    with pytest.raises(ValueError, match=r"precision must be one of 'fp32', 'bf16', got") as err:
        load(rrsisd_root, tiny_checkpoint, precision=value)
    assert ('measured and not kept' in str(err.value)) == (value == 'int8')


def test_bf16_without_instructions_warns_and_stays_fp32(rrsisd_root, tiny_checkpoint,
                                                        fp32_logits, monkeypatch):
    monkeypatch.setattr(precision_module, 'cpu_flags', lambda: {'avx2', 'fma'})
    assert precision_module.bf16_support('cpu')[0] is False
    with pytest.warns(UserWarning, match=r"precision='bf16' falls back to 'fp32'.*avx512_bf16"):
        model = load(rrsisd_root, tiny_checkpoint, precision='bf16')
    assert getattr(model, PRECISION_ATTR) == 'fp32'
    assert 'test_step' not in vars(model)  # no autocast wrapper
    for low, high in zip(logits_of(model, rrsisd_root), fp32_logits):
        assert torch.equal(low, high)


def test_bf16_detection_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision_module, 'cpu_flags', lambda: {'avx512f', 'amx_bf16'})
    assert precision_module.bf16_support('cpu') == (True, 'CPU flags amx_bf16')


def test_benchmark_int8_refuses_a_gpu():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match='int8 path runs on the CPU only'):
        set_benchmark_precision(model, 'int8', device='cuda')


SCRIPT_ARGS = {
    'demo/image_demo.py': ['a.png', 'the car', 'c.py', 'k.pth'],
    'demo/web_demo.py': ['c.py', 'k.pth'],
    'demo/rs_image_inference.py': ['s.tif', 'the car', 'c.py', 'k.pth', '--out-dir', 'o'],
    'tools/test.py': ['c.py', 'k.pth'],
}


@pytest.mark.parametrize('script', sorted(SCRIPT_ARGS))
def test_scripts_take_precision(script, monkeypatch, capsys):
    """The demos, the whole-scene script and tools/test.py share the --precision option."""
    module = load_script(script)

    def parse(*extra):
        argv = SCRIPT_ARGS[script] + list(extra)
        if script == 'tools/test.py':  # its parse_args reads sys.argv
            monkeypatch.setattr('sys.argv', ['test.py', *argv])
            return module.parse_args()
        return module.parse_args(argv)

    assert (parse().precision, parse().onnx) == ('fp32', None)
    assert parse('--precision', 'bf16').precision == 'bf16'
    assert parse('--onnx', 'model.onnx').onnx == 'model.onnx'
    with pytest.raises(SystemExit):
        parse('--precision', 'int8')
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def test_test_py_refuses_a_reduced_precision_with_an_onnx_graph(monkeypatch, tmp_path):
    """tools/test.py applies --precision and --onnx as init_model does (one helper): the
    float32 graph with bf16 is refused before the checkpoint or config is read."""
    monkeypatch.setattr('sys.argv', ['test.py', str(tmp_path / 'missing.py'),
                                     str(tmp_path / 'missing.pth'), '--precision', 'bf16',
                                     '--onnx', str(tmp_path / 'model.onnx')])
    with pytest.raises(ValueError, match="onnx runs the exported float32 graph: give "
                                         "precision='fp32', not 'bf16'"):
        load_script('tools/test.py').main()
