"""Reduced-precision inference: bfloat16 autocast (and int8, measured and not kept).

:func:`apply_precision` turns a built model (eval mode, weights loaded) into
one that infers at a precision:

- ``'fp32'``: unchanged (the exact path).
- ``'bf16'``: every ``model.test_step`` runs under ``torch.autocast`` in
  bfloat16 (matrix products and convolutions in bfloat16, normalisations,
  softmax and reductions in float32 as autocast decides); the logits are
  returned in float32. Only where the processor has bfloat16 instructions
  (:func:`bf16_support`: CPU flags ``avx512_bf16`` / ``amx_bf16``, or
  ``torch.cuda.is_bf16_supported()``); elsewhere a warning says so and the
  model stays float32 (``force=True`` runs bfloat16 anyway, slowly: for tests).

int8 dynamic quantisation of the linear layers (:func:`quantize_linear_int8`)
is not a precision of :func:`apply_precision`: on the CPU it suits best (AMD
EPYC with AVX-512 VNNI) it made a Swin-B FIANet inference only 1.2x faster,
under the 1.5x a reduced-precision path must reach (docs/benchmarks.md). It
stays for the benchmark's ``int8`` path, to measure it again elsewhere. It
uses torch's ``torch.ao.quantization.quantize_dynamic``: torch 2.13 marks it
deprecated in favour of torchao, but torchao 0.18's eager int8 linear layer
was slower than float32 on that machine.

``add_precision_argument`` gives the scripts their ``--precision`` option.
"""
from __future__ import annotations

import argparse
import functools
import platform
import warnings
from typing import Any, Callable, Optional, Tuple

import torch
from torch import nn

#: The precisions of ``init_model(..., precision=...)`` and ``--precision``.
PRECISIONS = ('fp32', 'bf16')
#: Measured and not kept (docs/benchmarks.md, "Reduced precision"): the reason.
REMOVED_PRECISIONS = {'int8': 'int8 dynamic quantisation was measured and not kept: 1.2x '
                              'float32 on a Swin-B FIANet (docs/benchmarks.md)'}
#: CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
#: The attribute recording the precision a model runs at.
PRECISION_ATTR = 'inference_precision'


def check_precision(precision: Any) -> str:
    """``precision`` when it is one of :data:`PRECISIONS`, else a ValueError naming the field."""
    if isinstance(precision, str) and precision in PRECISIONS:
        return precision
    removed = REMOVED_PRECISIONS.get(precision) if isinstance(precision, str) else None
    raise ValueError(f'precision must be one of {", ".join(map(repr, PRECISIONS))}, got '
                     f'{precision!r}' + (f' ({removed})' if removed else ''))


def cpu_flags() -> set:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open('/proc/cpuinfo') as file:
            for line in file:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_support(device: str = 'cpu') -> Tuple[bool, str]:
    """Whether ``device`` computes in bfloat16 natively, and the reason given."""
    if str(device).startswith('cuda'):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, 'torch.cuda.is_bf16_supported()'
        return False, 'this GPU has no bfloat16 support (torch.cuda.is_bf16_supported())'
    found = sorted(cpu_flags().intersection(BF16_CPU_FLAGS))
    if found:
        return True, f'CPU flags {", ".join(found)}'
    return False, (f'this CPU ({platform.processor() or platform.machine()}) has none of the '
                   f'bfloat16 instruction flags {", ".join(BF16_CPU_FLAGS)}: bfloat16 would be '
                   'emulated and slower than float32')


def _float_logits(samples: Any) -> Any:
    """Cast each ``SegDataSample``'s ``seg_logits`` back to float32 (in place)."""
    for sample in samples if isinstance(samples, (list, tuple)) else [samples]:
        logits = getattr(sample, 'seg_logits', None)
        if logits is not None and logits.data.is_floating_point() \
                and logits.data.dtype != torch.float32:
            logits.data = logits.data.float()
    return samples


def autocast_test_step(model: nn.Module, device_type: str,
                       dtype: torch.dtype = torch.bfloat16) -> None:
    """Make ``model.test_step`` run under ``torch.autocast(device_type, dtype)``."""
    step: Callable = model.test_step

    @functools.wraps(step)
    def test_step(data: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            outputs = step(data)
        return _float_logits(outputs)

    model.test_step = test_step


def quantize_linear_int8(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (in place) by a dynamic int8 one (weights
    int8 per output channel, activations quantised per call; CPU only)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # the API's deprecation notice (see module docstring)
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.filterwarnings('ignore', message='.*quantize_per_(tensor|channel).*')
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig},
                                dtype=torch.qint8, inplace=True)


def apply_precision(model: nn.Module, precision: str = 'fp32', device: Optional[str] = None,
                    force: bool = False) -> str:
    """Make ``model`` infer at ``precision`` (in place); returns the precision it runs at.

    Args:
        model (nn.Module): Built, weights loaded, in eval mode (a model wrapper's
            ``module`` is changed).
        precision (str): One of :data:`PRECISIONS`.
        device (str, optional): Where the model runs (default: its parameters').
        force (bool): ``'bf16'`` even without bfloat16 instructions (tests).

    Returns:
        str: ``precision``, or ``'fp32'`` after the fallback warning.

    Raises:
        ValueError: An unknown precision.
    """
    check_precision(precision)
    model = getattr(model, 'module', model)
    if device is None:
        device = next(model.parameters()).device.type
    device_type = torch.device(device).type
    if precision == 'bf16':
        supported, reason = bf16_support(device)
        if not supported and not force:
            warnings.warn(f"precision='bf16' falls back to 'fp32': {reason}", stacklevel=2)
            precision = 'fp32'
        else:
            autocast_test_step(model, device_type)
    setattr(model, PRECISION_ATTR, precision)
    return precision


def check_inference_options(precision: Any, onnx: Optional[str] = None) -> None:
    """Refuse an unknown ``precision``, or a reduced one with an ONNX graph (float32 only).

    Raises:
        ValueError: Naming ``precision``.
    """
    check_precision(precision)
    if onnx is not None and precision != 'fp32':
        raise ValueError(f"onnx runs the exported float32 graph: give precision='fp32', "
                         f'not {precision!r}')


def set_inference_options(model: nn.Module, precision: str = 'fp32', onnx: Optional[str] = None,
                          device: Optional[str] = None) -> str:
    """``init_model``'s and ``tools/test.py``'s ``precision`` and ``onnx`` on a loaded model
    (in place): :func:`apply_precision`, then the graph of ``onnx`` in onnxruntime
    (:func:`~fianet_mmseg.utils.onnx_runtime.use_onnxruntime`). Returns the precision run."""
    check_inference_options(precision, onnx)
    precision = apply_precision(model, precision, device)
    if onnx is not None:
        from .onnx_runtime import use_onnxruntime

        use_onnxruntime(model, onnx)
    return precision


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """The scripts' ``--precision`` option (``fp32`` by default) and ``--onnx FILE``."""
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='inference precision: fp32 (exact), bf16 (bfloat16 autocast, CPUs '
                        'with avx512_bf16/amx_bf16 and GPUs with bfloat16; else fp32 with a '
                        'warning); docs/inference.md#reduced-precision')
    parser.add_argument('--onnx', metavar='FILE', help='run the model\'s tensor forward in '
                        'onnxruntime from this export of tools/deployment/export_onnx.py '
                        '(float32, CPU; docs/inference.md#onnx)')


def set_benchmark_precision(model: nn.Module, precision: str, device: str = 'cpu') -> str:
    """:func:`apply_precision`, or (benchmark only) ``'int8'``: :func:`quantize_linear_int8`."""
    if precision in REMOVED_PRECISIONS:
        if torch.device(device).type != 'cpu':
            raise ValueError(f'the {precision} path runs on the CPU only, not on {device}')
        quantize_linear_int8(getattr(model, 'module', model))
        setattr(model, PRECISION_ATTR, precision)
        return precision
    return apply_precision(model, precision, device)
