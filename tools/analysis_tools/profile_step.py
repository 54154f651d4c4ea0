"""Profile one FIANet training step and print each part's share of the time.

Runs ``--warmup`` unprofiled training steps, then profiles ``--steps`` steps
with ``torch.profiler`` (CPU activity) and splits the self CPU time into the
parts of :data:`step_profiler.PARTS`: data preprocessor,
text encoder, Swin blocks, the rest of the Swin backbone (patch embedding,
patch merging, stage norms), FIAM, TMEM, decoder, loss (incl. resizing the
logits), optimizer (step + zero_grad), gradient accumulation into ``.grad``,
other. Backward time goes to the part whose forward created the autograd
node. Prints a table, the slowest operators (``--top``) and one JSON line.
Profiling inflates cheap operators: compare shares, not absolute times,
with ``tools/analysis_tools/benchmark.py``. Examples::

    python tools/analysis_tools/profile_step.py configs/fianet_tiny_synthetic.py --batch 8
    python tools/analysis_tools/profile_step.py configs/fianet_swin-b_rrsisd.py \\
        --random-init --batch 1 --size 224 224
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import fianet_mmseg  # noqa: E402

fianet_mmseg.register_all_modules()
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import benchmarking as bench  # noqa: E402  (this folder's helpers)
import step_profiler  # noqa: E402
from benchmark import PATHS, prepare_config, synthetic_data  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                        help="image size (default: the config's img_scale)")
    parser.add_argument('--length', type=int, help="text length (default: the config's)")
    parser.add_argument('--warmup', type=int, default=1, help='unprofiled steps first')
    parser.add_argument('--steps', type=int, default=1, help='profiled steps')
    parser.add_argument('--random-init', action='store_true',
                        help='random weights, no download (see benchmark.py)')
    parser.add_argument('--path', choices=PATHS, default='config',
                        help='speed-up switches (see benchmark.py)')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast')
    parser.add_argument('--with-cp', action='store_true',
                        help='activation checkpointing of the Swin blocks')
    parser.add_argument('--text', choices=['expressions', 'random'], default='expressions',
                        help='text inputs (see benchmark.py)')
    parser.add_argument('--top', type=int, default=15, help='slowest operators to list')
    parser.add_argument('--threads', type=int, help='torch intra-op threads')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    args.device, args.amp_dtype, args.seed = 'cpu', None, 0
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        parser.error('--batch and --steps must be >= 1, --warmup >= 0')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    from mmengine.optim import build_optim_wrapper

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg, _ = prepare_config(args)
    model = bench.build_model(cfg, 'cpu')
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    data, inputs = synthetic_data(args, cfg, model)
    size, length = inputs['size'], inputs['length']
    step = bench.make_step(model, data, 'train', optim_wrapper)
    for _ in range(args.warmup):
        step()

    scopes = step_profiler.part_scopes(step_profiler.fianet_parts(model, optim_wrapper))
    with scopes, profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        wall = (time.perf_counter() - start) / args.steps
    totals = step_profiler.attribute_events(prof.events())
    for phases in totals.values():
        for phase in phases:
            phases[phase] /= args.steps
    rows = step_profiler.shares_table(totals)
    title = (f'{osp.basename(args.config)}: batch {args.batch}, {size[0]}x{size[1]}, '
             f'L={length}, path={args.path}, {torch.get_num_threads()} threads; '
             f'profiled step {wall:.3f} s (self CPU time per step)')
    print(step_profiler.format_table(rows, title))
    if args.top:
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.top))
    print(json.dumps(dict(config=osp.basename(args.config), batch=args.batch, **inputs,
                          path=args.path, amp=args.amp,
                          speedups=bench.model_speedups(model, optim_wrapper),
                          profiled_step_s=round(wall, 4), parts=rows)), flush=True)


if __name__ == '__main__':
    main()
