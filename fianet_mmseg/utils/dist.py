"""CPU-only distributed runs with mmengine's ``pytorch`` launcher."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_cpu_distributed(launcher: str, backend: str = 'gloo') -> bool:
    """Start the process group with gloo when launched without CUDA.

    mmengine 0.10.x calls ``torch.cuda.set_device`` while initialising the
    ``pytorch`` launcher, which fails on CPU-only builds of torch. When no GPU
    is available, this initialises the process group from the launcher's
    environment (``torch.distributed.run`` sets RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT) first; mmengine then finds it initialised and
    skips its own set-up.

    Returns:
        bool: Whether this function initialised the process group.
    """
    if launcher != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return False
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch needs {missing} in the environment: start the '
                           'script with `python -m torch.distributed.run` (tools/dist_train.sh)')
    dist.init_process_group(backend=backend)
    return True
