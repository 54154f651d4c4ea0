"""Time a FIANet training step (or inference) and measure its peak memory.

Builds the model of a config, runs ``--warmup`` untimed and ``--iters`` timed
full steps on a synthetic batch (training: data preprocessor, forward, loss,
backward and the config's optimizer step through ``model.train_step``;
inference: ``model.test_step`` without gradients) and prints ONE JSON line.
Examples::

    # Swin-B FIANet without any download (random weights, bert-base sizes)
    python tools/analysis_tools/benchmark.py configs/fianet_swin-b_rrsisd.py \\
        --random-init --batch 2 --size 480 480 --iters 3 --warmup 2
    # the CPU demo, straightforward path against the fast path (one JSON line
    # per variant, each in its own process, then a summary line)
    python tools/analysis_tools/benchmark.py configs/fianet_tiny_synthetic.py \\
        --batch 8 --iters 10 --compare straightforward fast
    # every speed-up on its own (on top of the straightforward path), all paths
    # in one process, steps alternating (robust to a drifting machine)
    python tools/analysis_tools/benchmark.py configs/fianet_tiny_synthetic.py --compare \
        --interleave

``--path`` picks the speed-up switches (see
:data:`benchmarking.SPEEDUPS`): ``config`` (as the
config says: the feature cache defaults to on, the schedules fuse AdamW),
``fast`` (all on), ``straightforward`` (all off) or one switch name (only
that one on). ``reference`` times the test oracle
``tests/reference_fianet.py`` (the plain re-implementation of the reference
model, see :func:`benchmarking.build_reference`) at the config's sizes, with the
reference's loss and torch's default AdamW: compare it with ``config`` in one
run for the project-to-reference ratio::

    python tools/analysis_tools/benchmark.py configs/fianet_swin-b_rrsisd.py \
        --random-init --batch 2 --size 480 480 --iters 2 --warmup 1 \
        --compare config reference --interleave

``--amp``: bfloat16 autocast on CPU (``AutocastOptimWrapper``), float16 AMP on
GPU (``AmpOptimWrapper``).

Every record holds the wall time per step (``step_s``) and the process CPU
time per step (``cpu_s``, user + system of all threads). The interleaved
comparison adds, per path, the per-round ratio to the ``straightforward`` and
to the ``reference`` path (median, quartiles and range over the rounds).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

import fianet_mmseg  # noqa: E402

fianet_mmseg.register_all_modules()
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import benchmarking as bench  # noqa: E402  (this folder's helpers)
from benchmark_text import EXPRESSIONS  # noqa: E402  (RRSIS-D / RefSegRS-style)

REFERENCE = 'reference'
PATHS = ('config', 'fast', 'straightforward') + tuple(bench.SPEEDUPS) + (REFERENCE,)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--mode', choices=['train', 'infer'], default='train')
    parser.add_argument('--batch', type=int, default=2, help='samples per step')
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                        help="image size (default: the config's img_scale, else 480 480)")
    parser.add_argument('--length', type=int,
                        help="text length L (default: the config's max_length, else 22)")
    parser.add_argument('--iters', type=int, default=5, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps first (at 480x480 on CPU the second step is '
                        'still slower than the rest: allocator warm-up)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu or cuda[:N] (default: cuda when available)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bfloat16 autocast on CPU, float16 AMP on GPU')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='GPU mixed-precision dtype (default float16)')
    parser.add_argument('--with-cp', action='store_true',
                        help='activation checkpointing of the Swin blocks')
    parser.add_argument('--random-init', action='store_true',
                        help='random weights everywhere, no checkpoint or hub download '
                        '(text encoder: bert-base-uncased sizes unless the configured '
                        'encoder is on this machine)')
    parser.add_argument('--path', choices=PATHS, default='config',
                        help='speed-up switches: as in the config, all on, all off, or '
                        'only the named one on')
    parser.add_argument('--compare', nargs='*', choices=PATHS, metavar='PATH',
                        help='run each PATH in its own process and add a summary line '
                        '(no PATH: straightforward, each switch alone, fast)')
    parser.add_argument('--text', choices=['expressions', 'random'], default='expressions',
                        help='text inputs: built-in RRSIS-D / RefSegRS-style expressions, '
                        'decoupled and tokenised (falls back to random when the offline '
                        'vocabulary is missing or the encoder has a smaller one), or random '
                        'word pieces')
    parser.add_argument('--interleave', action='store_true',
                        help='with --compare: build every path in this one process and '
                        'alternate their steps round by round (robust to a drifting machine '
                        'load; memory is then not per path)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries (key=value)')
    args = parser.parse_args(argv)
    for name in ('batch', 'iters'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    if args.size is not None and min(args.size) < 32:
        parser.error('--size must be at least 32 32')
    return args


def prepare_config(args: argparse.Namespace) -> tuple:
    """The config with the run's settings applied, plus what was set."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    notes = {}
    if args.random_init:
        notes['text_encoder_arch'] = bench.use_random_weights(cfg)
    if args.path in ('fast', REFERENCE):
        bench.set_speedups(cfg, bench.SPEEDUPS)
    elif args.path == 'straightforward':
        bench.set_speedups(cfg, ())
    elif args.path != 'config':
        bench.set_speedups(cfg, [args.path])
    if args.with_cp:
        cfg.model.backbone.with_cp = True
    amp = None
    if args.amp:
        amp = bench.use_mixed_precision(cfg, 'cpu' if args.device == 'cpu' else 'cuda',
                                        args.amp_dtype)
    notes['amp'] = amp
    return cfg, notes


def synthetic_data(args: argparse.Namespace, cfg: Config, model,
                   vocab: Optional[int] = None) -> tuple:
    """The synthetic batch of the run and a description of its text."""
    size = tuple(args.size or cfg.get('img_scale') or (480, 480))
    length = args.length or cfg.get('max_length') or 22
    vocab = vocab or model.text_encoder.bert.config.vocab_size
    texts = None
    if args.text == 'expressions' and vocab >= 30522:
        texts = bench.tokenize_expressions(EXPRESSIONS, length)
    data = bench.synthetic_batch(args.batch, size, length, vocab, seed=args.seed, texts=texts)
    return data, dict(size=list(size), length=length,
                      text='expressions' if texts else 'random')


def build_path(args: argparse.Namespace) -> tuple:
    """The model, optim wrapper, config, notes, step and input description of ``args.path``."""
    from mmengine.optim import build_optim_wrapper

    torch.manual_seed(args.seed)
    cfg, notes = prepare_config(args)
    if args.path == REFERENCE:
        if args.amp:
            raise ValueError('--amp is not supported for the reference path')
        model = bench.build_reference(cfg, args.device)
        bert = model.text_encoder
        data, inputs = synthetic_data(args, cfg, model, bert.config.vocab_size)
        step = bench.make_reference_step(model, data, args.mode, cfg, args.device)
        return model, None, cfg, notes, step, inputs
    model = bench.build_model(cfg, args.device)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper) if args.mode == 'train' \
        else None
    data, inputs = synthetic_data(args, cfg, model)
    step = bench.make_step(model, data, args.mode, optim_wrapper,
                           amp_dtype=notes['amp'] if args.mode == 'infer' else None)
    return model, optim_wrapper, cfg, notes, step, inputs


def speedups_of(path: str, model, optim_wrapper) -> Optional[dict]:
    return None if path == REFERENCE else bench.model_speedups(model, optim_wrapper)


def rounded_stats(values: List[float]) -> dict:
    return {k: [round(t, 4) for t in v] if k == 'all' else round(v, 4)
            for k, v in bench.summarize_times(values).items()}


def run(args: argparse.Namespace) -> dict:
    """Build, warm up, time; returns the JSON record."""
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = bench.load_average()
    model, optim_wrapper, cfg, notes, step, inputs = build_path(args)
    memory = bench.PeakMemory(args.device)
    memory_after_build = memory.current_mb()
    memory.reset()
    usage: List[dict] = []
    times = bench.time_steps(step, args.iters, args.warmup, args.device, usage)
    stats = bench.summarize_times(times)
    record = dict(
        config=osp.basename(args.config), mode=args.mode, device=args.device,
        batch=args.batch, **inputs, iters=args.iters,
        warmup=args.warmup, path=args.path,
        speedups=speedups_of(args.path, model, optim_wrapper),
        amp=notes['amp'], with_cp=bool(cfg.model.backbone.get('with_cp', False)),
        random_init=args.random_init, optim_wrapper=cfg.optim_wrapper.get('type'),
        step_s=rounded_stats(times), cpu_s=rounded_stats(bench.cpu_seconds(usage)),
        **bench.usage_summary(usage), samples_per_s=round(args.batch / stats['median'], 3),
        memory=dict(memory.peak(), after_build_mb=memory_after_build),
        params=bench.count_parameters(model),
        threads=torch.get_num_threads(), torch=torch.__version__,
        machine=platform.processor() or platform.machine(),
        load_avg=dict(start=load_start, end=bench.load_average()))
    if 'text_encoder_arch' in notes:
        record['text_encoder_arch'] = notes['text_encoder_arch']
    if args.device.startswith('cuda'):
        record['gpu'] = torch.cuda.get_device_name(torch.device(args.device))
    for key in ('peak_mb', 'after_build_mb', 'reserved_peak_mb'):
        if record['memory'].get(key) is not None:
            record['memory'][key] = round(record['memory'][key], 1)
    return record


def child_argv(argv: Sequence[str], path: str) -> List[str]:
    """``argv`` without ``--compare ...`` and ``--path X``, plus ``--path path``."""
    out, skip = [], False
    for token in argv:
        if skip and not token.startswith('--'):
            continue
        skip = False
        if token in ('--compare', '--path'):
            skip = True
            continue
        if token.startswith(('--compare=', '--path=')) or token == '--interleave':
            continue
        out.append(token)
    return out + ['--path', path]


def summary_line(records: dict, rounds: Optional[Dict[str, Dict[str, List[float]]]] = None
                 ) -> dict:
    """Medians, peaks and speed-ups against the straightforward and reference paths.

    ``rounds`` (interleaved runs): per kind (``step_s``, ``cpu_s``) the per-round
    times of every path, for the paired ratios of :func:`benchmarking.paired_ratios`.
    """
    summary = dict(step_s_median={p: r['step_s']['median'] for p, r in records.items()},
                   cpu_s_median={p: (r.get('cpu_s') or {}).get('median')
                                 for p, r in records.items()},
                   peak_mb={p: (r['memory'] or {}).get('peak_mb') for p, r in records.items()})
    for baseline in ('straightforward', REFERENCE):
        if baseline not in records:
            continue
        base = records[baseline]['step_s']['median']
        summary[f'speedup_vs_{baseline}'] = {
            p: round(base / r['step_s']['median'], 3) for p, r in records.items()}
        for kind, times in (rounds or {}).items():
            summary[f'paired_{kind}_speedup_vs_{baseline}'] = bench.paired_ratios(times,
                                                                                  baseline)
    return dict(summary=summary)


def compare(argv: Sequence[str], paths: Sequence[str]) -> None:
    """Run one process per path, print their lines and a summary line."""
    records = {}
    for path in paths:
        done = subprocess.run([sys.executable, osp.abspath(__file__)] + child_argv(argv, path),
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f'benchmark of path {path!r} failed (exit {done.returncode})')
        line = done.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        records[path] = json.loads(line)
    print(json.dumps(summary_line(records)), flush=True)


def compare_interleaved(args: argparse.Namespace, paths: Sequence[str]) -> None:
    """All paths in this process; round r runs one step of each, order rotated."""
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = bench.load_average()
    steps, models = {}, {}
    for path in paths:
        model, optim_wrapper, cfg, notes, steps[path], inputs = build_path(
            argparse.Namespace(**{**vars(args), 'path': path}))
        models[path] = (model, optim_wrapper, cfg, notes)
        for _ in range(args.warmup):
            steps[path]()
    times = {path: [] for path in paths}
    usage = {path: [] for path in paths}
    for round_index in range(args.iters):
        shift = round_index % len(paths)
        for path in list(paths[shift:]) + list(paths[:shift]):
            times[path] += bench.time_steps(steps[path], 1, 0, args.device, usage[path])
    cpu_times = {path: bench.cpu_seconds(usage[path]) for path in paths}
    records = {}
    for path in paths:
        model, optim_wrapper, cfg, notes = models[path]
        stats = bench.summarize_times(times[path])
        records[path] = dict(
            config=osp.basename(args.config), mode=args.mode, device=args.device,
            batch=args.batch, **inputs, iters=args.iters, warmup=args.warmup, path=path,
            interleaved=True, speedups=speedups_of(path, model, optim_wrapper),
            amp=notes['amp'], with_cp=bool(cfg.model.backbone.get('with_cp', False)),
            step_s=rounded_stats(times[path]), cpu_s=rounded_stats(cpu_times[path]),
            **bench.usage_summary(usage[path]),
            samples_per_s=round(args.batch / stats['median'], 3), memory=None,
            threads=torch.get_num_threads(),
            load_avg=dict(start=load_start, end=bench.load_average()))
        print(json.dumps(records[path]), flush=True)
    print(json.dumps(summary_line(records, dict(step_s=times, cpu_s=cpu_times))), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.compare is not None:
        paths = args.compare or ['straightforward', *bench.SPEEDUPS, 'fast']
        if args.interleave:
            compare_interleaved(args, paths)
        else:
            compare(argv, paths)
        return
    print(json.dumps(run(args)), flush=True)


if __name__ == '__main__':
    main()
