"""FLOPs of a step (torch's FLOP counter) and the machine's float32 matrix-product peak.

A benchmark record states how far a path is from what the machine can do: the
step's FLOPs (:func:`count_flops`, counted once), the achieved GFLOP/s (FLOPs /
median step time) and its fraction of :func:`matmul_peak`, the best of a few
square float32 matrix products on the same threads, measured at the start of
the run. torch's counter counts matrix products, convolutions and attention
(the operations that hold nearly all the work); quantised int8 kernels are not
counted, so a reduced-precision path is given the FLOPs of its float32 step.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Optional

import torch

#: Side of the square matrices of :func:`matmul_peak`: the size of the larger
#: matrix products of Swin-B and BERT (e.g. 14400x128 @ 128x512, 900x512 @ 512x2048).
PEAK_SIZE = 2048
#: Timed products of :func:`matmul_peak` (the best one counts).
PEAK_REPEATS = 5


def count_flops(step: Callable[[], None]) -> int:
    """Floating-point operations of one call of ``step`` (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def matmul_peak(size: int = PEAK_SIZE, repeats: int = PEAK_REPEATS, device: str = 'cpu',
                dtype: torch.dtype = torch.float32) -> Dict[str, float]:
    """The best GFLOP/s of ``repeats`` ``(size, size) @ (size, size)`` products (one warm-up).

    Returns:
        dict: ``gflop_per_s`` (best), ``median_gflop_per_s``, ``size``, ``dtype``.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    flops = 2 * size ** 3
    rates = []
    for index in range(repeats + 1):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if index:  # the first product warms up
            rates.append(flops / elapsed / 1e9)
    rates.sort()
    return dict(gflop_per_s=round(rates[-1], 1),
                median_gflop_per_s=round(rates[len(rates) // 2], 1),
                size=size, dtype=str(dtype).replace('torch.', ''))


def efficiency(flops: Optional[int], median_s: float, peak: Optional[dict]) -> dict:
    """``gflop``, ``gflop_per_s`` and ``fraction_of_peak`` of a step (None where unknown)."""
    if not flops:
        return dict(gflop=None, gflop_per_s=None, fraction_of_peak=None)
    rate = flops / median_s / 1e9
    fraction = rate / peak['gflop_per_s'] if peak else None
    return dict(gflop=round(flops / 1e9, 2), gflop_per_s=round(rate, 1),
                fraction_of_peak=None if fraction is None else round(fraction, 3))
