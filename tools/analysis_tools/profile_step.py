"""Profile one FIANet training step (or inference) and print each part's share of the time.

Runs ``--warmup`` unprofiled training steps, then profiles ``--steps`` steps with
``torch.profiler`` (CPU activity) and splits the self CPU time into the parts of
:data:`fianet_mmseg.benchmarking.profiling.PARTS`: data preprocessor, text encoder,
Swin blocks, the rest of the Swin backbone, FIAM, TMEM, decoder, loss, optimizer,
gradient accumulation, other (backward time goes to the part whose forward created
the autograd node). Prints a table, the slowest operators (``--top``) and one JSON
line. Profiling inflates cheap operators: compare shares, not absolute times, with
``tools/analysis_tools/benchmark.py``. Examples::

    python tools/analysis_tools/profile_step.py configs/fianet_tiny_synthetic.py --batch 8
    python tools/analysis_tools/profile_step.py configs/fianet_swin-b_rrsisd.py \\
        --random-init --batch 1 --size 224 224
    python tools/analysis_tools/profile_step.py configs/fianet_swin-b_rrsisd.py \\
        --random-init --mode infer --batch 1 --size 480 480
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

from mmengine.config import DictAction  # noqa: E402

import fianet_mmseg  # noqa: E402
from fianet_mmseg.benchmarking.profiling import profile_training_step  # noqa: E402
from fianet_mmseg.benchmarking.settings import BASELINE, PATHS, BenchmarkSettings  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('config', help='config file')
    add('--mode', choices=['train', 'infer'], default='train',
        help='a training step or an inference (test_step, no gradients)')
    add('--batch', type=int, default=2)
    add('--size', type=int, nargs=2, metavar=('H', 'W'),
        help="image size (default: the config's img_scale)")
    add('--length', type=int, help="text length (default: the config's)")
    add('--warmup', type=int, default=1, help='unprofiled steps first')
    add('--steps', type=int, default=1, help='profiled steps')
    add('--random-init', action='store_true', help='random weights, no download '
        '(see benchmark.py)')
    add('--path', choices=[p for p in PATHS if p != BASELINE], default='config',
        help='speed-up switches (see benchmark.py)')
    add('--amp', action='store_true', help='bfloat16 autocast')
    add('--with-cp', action='store_true', help='activation checkpointing of the Swin blocks')
    add('--text', choices=['expressions', 'random'], default='expressions',
        help='text inputs (see benchmark.py)')
    add('--top', type=int, default=15, help='slowest operators to list')
    add('--threads', type=int, help='torch intra-op threads')
    add('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        parser.error('--batch and --steps must be >= 1, --warmup >= 0')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    fianet_mmseg.register_all_modules()
    settings = BenchmarkSettings(
        args.config, mode=args.mode, batch=args.batch, size=args.size, length=args.length,
        warmup=args.warmup,
        amp=args.amp, with_cp=args.with_cp, random_init=args.random_init, path=args.path,
        text=args.text, threads=args.threads, cfg_options=args.cfg_options)
    text, record = profile_training_step(settings, args.steps, args.top)
    print(text)
    print(json.dumps(record), flush=True)


if __name__ == '__main__':
    main()
