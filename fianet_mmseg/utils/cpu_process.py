"""Allocator settings for a process that repeats CPU training steps (glibc ``mallopt``)."""
from __future__ import annotations

import ctypes
import os
from typing import Dict

#: glibc ``mallopt`` parameters: M_MMAP_THRESHOLD (-3), M_TRIM_THRESHOLD (-1),
#: M_TOP_PAD (-2). Tensors up to 2 GiB come from the heap, and freed memory stays
#: there for the next step instead of going back to the kernel: no page faults to
#: fill the same tensors again every step (what ``MALLOC_MMAP_THRESHOLD_`` etc.
#: do, applied from inside the process). Measured on a 2-core AMD EPYC: demo step
#: 1.18x faster, Swin-B 480x480 step 1.16x, page faults per step from thousands to
#: none (docs/benchmarks.md). OpenMP's passive wait policy was measured too and left
#: out: it made the demo's steps slower on an otherwise idle machine.
MALLOPT_SETTINGS = ((-3, 2**31 - 1), (-1, 2**31 - 1), (-2, 2**28))


def tune_cpu_process() -> Dict[str, str]:
    """Apply :data:`MALLOPT_SETTINGS`; returns what was set ({}: nothing).

    The allocator is left alone when the user set any ``MALLOC_*`` variable
    or the C library is not glibc.
    """
    applied = {}
    if any(name.startswith('MALLOC_') for name in os.environ):
        return applied
    try:
        libc = ctypes.CDLL('libc.so.6')
        done = all(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1
                   for param, value in MALLOPT_SETTINGS)
    except (OSError, AttributeError):
        done = False
    if done:
        applied['mallopt'] = 'freed memory kept'
    return applied
