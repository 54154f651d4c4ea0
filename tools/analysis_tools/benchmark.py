"""Time a FIANet training step, an inference or the text pipeline; print JSON lines.

Builds the model of a config, runs ``--warmup`` untimed and ``--iters`` timed
full steps on a synthetic batch and prints ONE JSON line (see
:mod:`fianet_mmseg.benchmarking.runs`). Examples::

    # Swin-B FIANet without any download (random weights, bert-base sizes)
    python tools/analysis_tools/benchmark.py configs/fianet_swin-b_rrsisd.py \\
        --random-init --batch 2 --size 480 480 --iters 3 --warmup 2
    # the CPU demo, straightforward path against the fast path (one JSON line
    # per path, each in its own process, then a summary line)
    python tools/analysis_tools/benchmark.py configs/fianet_tiny_synthetic.py \\
        --batch 8 --iters 10 --compare straightforward fast
    # every speed-up on its own, all paths in one process, steps alternating
    python tools/analysis_tools/benchmark.py configs/fianet_tiny_synthetic.py --compare \\
        --interleave
    # against a model given from outside: here the tests' plain re-implementation of
    # the reference model, at the config's sizes, with the reference's loss and AdamW
    python tools/analysis_tools/benchmark.py configs/fianet_swin-b_rrsisd.py \\
        --random-init --batch 2 --size 480 480 --iters 2 --warmup 1 \\
        --compare config baseline --baseline tests/reference_fianet.py:benchmark_step \\
        --interleave
    # reduced precision (bf16, int8) against float32 and the reference, Swin-B inference
    python tools/analysis_tools/benchmark.py configs/fianet_swin-b_rrsisd.py --random-init \\
        --mode infer --batch 1 --size 480 480 --compare config bf16 int8 baseline \\
        --interleave --baseline tests/reference_fianet.py:benchmark_step
    # their logits against float32's (max / mean |difference|, argmax agreement)
    python tools/analysis_tools/benchmark.py configs/fianet_swin-b_rrsisd.py --random-init \\
        --mode infer --batch 1 --size 480 480 --agreement
    # decoupling and tokenisation per expression (microseconds)
    python tools/analysis_tools/benchmark.py --mode text --iters 2000

``--path``: ``config`` (as the config says: the feature cache defaults to on, the
schedules fuse AdamW), ``fast`` (every switch of
:data:`fianet_mmseg.benchmarking.settings.SPEEDUPS` on), ``straightforward`` (all
off), one switch name (only that one on) or ``baseline`` (``--baseline
FILE.py:FACTORY``, a callable ``(cfg, data, mode, device) -> (model, step)``).
``--amp``: bfloat16 autocast on CPU, float16 AMP on GPU. ``bf16`` / ``int8`` (``--mode
infer``): the config's path at that inference precision (``init_model(...,
precision=...)``); ``onnxruntime`` (``--onnx FILE``): its tensor forward in
onnxruntime. Every record has the step's FLOPs (torch's counter, one step),
the achieved GFLOP/s and its fraction of this machine's float32 matrix-product peak
(best of a few 2048x2048 products at start, same threads).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from dataclasses import fields
from typing import Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

import fianet_mmseg  # noqa: E402
from fianet_mmseg.benchmarking import runs  # noqa: E402
from fianet_mmseg.benchmarking.agreement import precision_agreement  # noqa: E402
from fianet_mmseg.benchmarking.settings import (  # noqa: E402
    PATHS,
    REDUCED_PRECISIONS,
    SPEEDUPS,
    BenchmarkSettings,
    complete_arguments,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('config', nargs='?', help='config file (not for --mode text)')
    add('--mode', choices=['train', 'infer', 'text'], default='train')
    add('--batch', type=int, default=2, help='samples per step')
    add('--size', type=int, nargs=2, metavar=('H', 'W'),
        help="image size (default: the config's img_scale, else 480 480)")
    add('--length', type=int, help="text length L (default: the config's max_length, else 22)")
    add('--iters', type=int, help='timed steps (default 5; text: expressions, 2000)')
    add('--warmup', type=int, help='untimed steps first (default 2; text: 200)')
    add('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda[:N] (default: cuda when available)')
    add('--amp', action='store_true', help='bfloat16 autocast on CPU, float16 AMP on GPU')
    add('--amp-dtype', choices=['float16', 'bfloat16'], help='GPU AMP dtype (default float16)')
    add('--with-cp', action='store_true', help='activation checkpointing of the Swin blocks')
    add('--random-init', action='store_true', help='random weights, no checkpoint or hub '
        'download (text encoder: the configured one\'s sizes when on this machine, else '
        'bert-base-uncased\'s)')
    add('--path', choices=PATHS, default='config', help='speed-up switches: as in the config, '
        'all on, all off, only the named one on, or the --baseline model')
    add('--compare', nargs='*', choices=PATHS, metavar='PATH', help='run each PATH in its own '
        'process and add a summary line (no PATH: straightforward, each switch alone, fast)')
    add('--interleave', action='store_true', help='with --compare: every path in this process, '
        'steps alternating round by round (no memory per path)')
    add('--baseline', metavar='FILE.py:FACTORY', help='the model of the baseline path')
    add('--onnx', metavar='FILE', help='the onnxruntime path\'s graph (tools/deployment/'
        'export_onnx.py, at --size and --length)')
    add('--agreement', action='store_true', help='--mode infer: instead of timing, compare the '
        'logits of the reduced-precision paths (bf16, int8) with float32 on the batch')
    add('--text', choices=['expressions', 'random'], default='expressions',
        help='built-in RRSIS-D / RefSegRS-style expressions (random when the offline '
        'vocabulary is missing or the encoder has a smaller one), or random word pieces')
    add('--tokenizer', help='--mode text: tokenizer (default: the demo text encoder)')
    add('--dataset', choices=['rrsisd', 'refsegrs'], help='--mode text: decoupling rules')
    add('--threads', type=int, help='torch intra-op threads')
    add('--seed', type=int, default=0)
    add('--cfg-options', nargs='+', action=DictAction, default={},
        help='override config entries (key=value)')
    args = parser.parse_args(argv)
    problem = complete_arguments(args)
    if problem:
        parser.error(problem)
    return args


def settings_of(args: argparse.Namespace) -> BenchmarkSettings:
    """The package's settings from the parsed arguments."""
    return BenchmarkSettings(**{f.name: getattr(args, f.name) for f in fields(BenchmarkSettings)})


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.mode == 'text':
        print(json.dumps(runs.time_text_pipeline(args.iters, args.warmup, args.tokenizer,
                                                 args.length or 22, args.dataset)))
        return
    fianet_mmseg.register_all_modules()
    if args.agreement:
        for record in precision_agreement(settings_of(args), REDUCED_PRECISIONS):
            print(json.dumps(record), flush=True)
        return
    if args.compare is None:
        print(json.dumps(runs.run(settings_of(args))), flush=True)
        return
    paths = args.compare or ['straightforward', *SPEEDUPS, 'fast']
    if args.interleave:
        runs.compare_interleaved(settings_of(args), paths)
    else:
        runs.compare_in_processes(osp.abspath(__file__), argv, paths)


if __name__ == '__main__':
    main()
