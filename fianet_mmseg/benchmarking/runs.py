"""Benchmark runs: one path timed, paths compared, a baseline from outside, the text pipeline.

A run (:func:`run`) builds the model of a :class:`~.settings.BenchmarkSettings`
path, runs ``warmup`` untimed and ``iters`` timed full steps on a synthetic batch
(training: data preprocessor, forward, loss, backward and the config's optimizer
step through ``model.train_step``; inference: ``model.test_step`` without
gradients) and returns one JSON record: the wall time per step (``step_s``), the
process CPU time per step (``cpu_s``, user + system of all threads), peak memory,
parameter counts. :func:`compare_interleaved` builds every path in one process and
alternates their steps round by round; :func:`summary_line` adds the ratios to the
``straightforward`` and ``baseline`` paths.

The ``baseline`` path is a model given from outside: ``FILE.py:FACTORY`` names a
Python file and a callable ``FACTORY(cfg, data, mode, device) -> (model, step)``
(``cfg``: the prepared config; ``data``: the synthetic batch; ``step()``: one
training step or inference on it), loaded by path. The tests' plain
re-implementation of the reference model is one:
``--baseline tests/reference_fianet.py:benchmark_step``.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import itertools
import json
import os.path as osp
import platform
import subprocess
import sys
import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import nn

from . import flops as flop_count
from . import timing
from .inputs import EXPRESSIONS, synthetic_data
from .settings import (
    BASELINE,
    ONNXRUNTIME,
    REDUCED_PRECISIONS,
    BenchmarkSettings,
    model_speedups,
    prepare_config,
    text_encoder_arch,
)

#: ``build_path``'s result: model, optim wrapper (None), config, notes, step, inputs.
BuiltPath = Tuple[nn.Module, object, Config, dict, Callable[[], None], dict]


def build_model(cfg: Config, device: str = 'cpu', quiet: bool = True) -> nn.Module:
    """Build and initialise ``cfg.model`` on ``device`` (``quiet``: no INFO logs)."""
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    if quiet:  # print_log(logger='current') goes to the newest logger instance
        MMLogger.get_instance(f'fianet_benchmark_{id(cfg)}', log_level='ERROR')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.to(device)


def count_parameters(model: nn.Module) -> Dict[str, int]:
    """Total and trainable (requires_grad) parameter counts."""
    params = list(model.parameters())
    return dict(total=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad))


def make_step(model: nn.Module, data: dict, mode: str, optim_wrapper=None,
              amp_dtype: Optional[str] = None) -> Callable[[], None]:
    """One full training step (``train_step``) or one inference (``test_step``)."""
    if mode == 'train':
        if optim_wrapper is None:
            raise ValueError('a training step needs an optim wrapper')
        model.train()
        return lambda: model.train_step(copy.copy(data), optim_wrapper)
    if mode != 'infer':
        raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")
    model.eval()
    device_type = next(model.parameters()).device.type
    dtype = getattr(torch, amp_dtype) if amp_dtype else None

    def infer() -> None:
        with torch.no_grad(), torch.autocast(device_type, dtype=dtype,
                                             enabled=dtype is not None):
            model.test_step(copy.copy(data))

    return infer


def load_baseline(spec: str) -> Callable:
    """The factory ``FILE.py:NAME`` names, loaded from that file by its path."""
    path, _, name = spec.rpartition(':')
    if not path or not name:
        raise ValueError(f'--baseline must be FILE.py:FACTORY, got {spec!r}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'--baseline: no file {path}')
    module_name = f'fianet_benchmark_baseline_{abs(hash(osp.abspath(path)))}'
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # (dataclasses look their module up there)
    module_spec.loader.exec_module(module)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise AttributeError(f'--baseline: {path} has no callable {name!r}')
    return factory


def build_path(settings: BenchmarkSettings) -> BuiltPath:
    """The model, optim wrapper, config, notes, step and input description of a path."""
    from mmengine.optim import build_optim_wrapper

    torch.manual_seed(settings.seed)
    cfg, notes = prepare_config(settings)
    if settings.path == BASELINE:
        if settings.amp:
            raise ValueError('--amp is not supported for the baseline path')
        if not settings.baseline:
            raise ValueError('the baseline path needs --baseline FILE.py:FACTORY')
        data, inputs = synthetic_data(settings, cfg, vocab=text_encoder_arch(cfg)['vocab_size'])
        model, step = load_baseline(settings.baseline)(cfg, data, settings.mode,
                                                       settings.device)
        return model, None, cfg, notes, step, inputs
    if settings.path in (*REDUCED_PRECISIONS, ONNXRUNTIME) and (settings.mode != 'infer'
                                                                or settings.amp):
        raise ValueError(f'the {settings.path} path is for --mode infer without --amp')
    model = build_model(cfg, settings.device)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper) \
        if settings.mode == 'train' else None
    data, inputs = synthetic_data(settings, cfg, model)
    step = make_step(model, data, settings.mode, optim_wrapper,
                     amp_dtype=notes['amp'] if settings.mode == 'infer' else None)
    if settings.path in REDUCED_PRECISIONS:
        from ..utils.precision import set_benchmark_precision

        # its float32 step's FLOPs (int8 kernels are not counted), counted here, before
        # the timed steps: the other paths count after them (see _count_flops)
        notes['flops'] = flop_count.count_flops(step)
        notes['precision'] = set_benchmark_precision(model, settings.path, settings.device)
        step = make_step(model, data, settings.mode)
    elif settings.path == ONNXRUNTIME:
        from ..utils.onnx_runtime import use_onnxruntime

        if not settings.onnx:
            raise ValueError('the onnxruntime path needs --onnx FILE')
        notes['flops'] = flop_count.count_flops(step)  # the PyTorch step's (the same graph)
        use_onnxruntime(model, settings.onnx)
        step = make_step(model, data, settings.mode)
    return model, optim_wrapper, cfg, notes, step, inputs


def _count_flops(built: BuiltPath) -> None:
    """Count the FLOPs of the path's step once (after its timed steps and peak memory: the
    counting step's freed memory then does not raise the measured peak)."""
    notes, step = built[3], built[4]
    if 'flops' not in notes:
        notes['flops'] = flop_count.count_flops(step)


def _record(settings: BenchmarkSettings, built: BuiltPath, times: List[float],
            usage: List[dict], load_start, peak: Optional[dict] = None) -> dict:
    """The JSON record of one path's timed steps (memory and machine added by :func:`run`).

    ``peak``: :func:`~.flops.matmul_peak` of this run, for the step's fraction of it.
    """
    model, optim_wrapper, cfg, notes, _, inputs = built
    median = timing.summarize_times(times)['median']
    return dict(
        config=osp.basename(settings.config), mode=settings.mode, device=settings.device,
        batch=settings.batch, **inputs, iters=settings.iters, warmup=settings.warmup,
        path=settings.path,
        speedups=None if settings.path == BASELINE else model_speedups(model, optim_wrapper),
        amp=notes['amp'], with_cp=bool(cfg.model.backbone.get('with_cp', False)),
        step_s=timing.rounded_stats(times),
        cpu_s=timing.rounded_stats(timing.cpu_seconds(usage)), **timing.usage_summary(usage),
        samples_per_s=round(settings.batch / median, 3),
        **flop_count.efficiency(notes.get('flops'), median, peak), matmul_peak=peak,
        precision=notes.get('precision', 'fp32'), threads=torch.get_num_threads(),
        load_avg=dict(start=load_start, end=timing.load_average()))


def run(settings: BenchmarkSettings) -> dict:
    """Build, warm up, time one path; returns its JSON record."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    load_start = timing.load_average()
    peak = flop_count.matmul_peak(device=settings.device)
    built = build_path(settings)
    model, _, cfg, notes, step, _ = built
    memory = timing.PeakMemory(settings.device)
    memory_after_build = memory.current_mb()
    memory.reset()
    usage: List[dict] = []
    times = timing.time_steps(step, settings.iters, settings.warmup, settings.device, usage)
    peak_memory = memory.peak()
    _count_flops(built)
    record = _record(settings, built, times, usage, load_start, peak)
    record.update(
        random_init=settings.random_init, optim_wrapper=cfg.optim_wrapper.get('type'),
        memory=dict(peak_memory, after_build_mb=memory_after_build),
        params=count_parameters(model),
        torch=torch.__version__, machine=platform.processor() or platform.machine())
    if 'text_encoder_arch' in notes:
        record['text_encoder_arch'] = notes['text_encoder_arch']
    if settings.device.startswith('cuda'):
        record['gpu'] = torch.cuda.get_device_name(torch.device(settings.device))
    for key in ('peak_mb', 'after_build_mb', 'reserved_peak_mb'):
        if record['memory'].get(key) is not None:
            record['memory'][key] = round(record['memory'][key], 1)
    return record


def summary_line(records: dict, rounds: Optional[Dict[str, Dict[str, List[float]]]] = None
                 ) -> dict:
    """Medians, peaks and speed-ups against the straightforward and baseline paths.

    ``rounds`` (interleaved runs): per kind (``step_s``, ``cpu_s``) the per-round
    times of every path, for the paired ratios of :func:`~.timing.paired_ratios`.
    """
    summary = dict(step_s_median={p: r['step_s']['median'] for p, r in records.items()},
                   cpu_s_median={p: (r.get('cpu_s') or {}).get('median')
                                 for p, r in records.items()},
                   peak_mb={p: (r['memory'] or {}).get('peak_mb') for p, r in records.items()},
                   gflop={p: r.get('gflop') for p, r in records.items()},
                   fraction_of_peak={p: r.get('fraction_of_peak') for p, r in records.items()})
    against = ('straightforward', 'config', BASELINE) \
        if set(records).intersection((*REDUCED_PRECISIONS, ONNXRUNTIME)) \
        else ('straightforward', BASELINE)
    for baseline in against:
        if baseline not in records:
            continue
        base = records[baseline]['step_s']['median']
        summary[f'speedup_vs_{baseline}'] = {
            p: round(base / r['step_s']['median'], 3) for p, r in records.items()}
        for kind, times in (rounds or {}).items():
            summary[f'paired_{kind}_speedup_vs_{baseline}'] = timing.paired_ratios(times,
                                                                                   baseline)
    return dict(summary=summary)


def child_argv(argv: Sequence[str], path: str) -> List[str]:
    """``argv`` without ``--compare ...``, ``--interleave`` and ``--path X``; then ``--path
    path``."""
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


def compare_in_processes(script: str, argv: Sequence[str], paths: Sequence[str]) -> List[dict]:
    """Run ``script`` once per path (its own process), print its line and a summary line."""
    records = {}
    for path in paths:
        done = subprocess.run([sys.executable, script, *child_argv(argv, path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f'benchmark of path {path!r} failed (exit {done.returncode})')
        line = done.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        records[path] = json.loads(line)
    summary = summary_line(records)
    print(json.dumps(summary), flush=True)
    return [*records.values(), summary]


def compare_interleaved(settings: BenchmarkSettings, paths: Sequence[str]) -> List[dict]:
    """All paths in this process; round r runs one step of each, order rotated.

    Prints (and returns) one record per path (no memory: the paths share the
    process) and a summary line with paired per-round ratios.
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    load_start = timing.load_average()
    peak = flop_count.matmul_peak(device=settings.device)
    built = {}
    for path in paths:
        built[path] = build_path(replace(settings, path=path))
        for _ in range(settings.warmup):
            built[path][4]()
    times = {path: [] for path in paths}
    usage = {path: [] for path in paths}
    for round_index in range(settings.iters):
        shift = round_index % len(paths)
        for path in list(paths[shift:]) + list(paths[:shift]):
            times[path] += timing.time_steps(built[path][4], 1, 0, settings.device, usage[path])
    records = {}
    for path in paths:
        _count_flops(built[path])
        records[path] = dict(_record(replace(settings, path=path), built[path], times[path],
                                     usage[path], load_start, peak),
                             interleaved=True, memory=None)
        print(json.dumps(records[path]), flush=True)
    cpu_times = {path: timing.cpu_seconds(usage[path]) for path in paths}
    summary = summary_line(records, dict(step_s=times, cpu_s=cpu_times))
    print(json.dumps(summary), flush=True)
    return [*records.values(), summary]


def time_text_pipeline(n: int = 2000, warmup: int = 200, tokenizer: Optional[str] = None,
                       max_length: int = 22, dataset: Optional[str] = None) -> dict:
    """Time expression decoupling and tokenisation per expression (this thread).

    :data:`~.inputs.EXPRESSIONS` in turn; returns the statistics of
    :func:`~.timing.summarize_times` in microseconds (without the list of
    times) of the decoupling, the tokenisation (ids + three masks) and both.
    """
    from ..text import ExpressionEncoder, TextDecoupler
    from ..utils import DEMO_TEXT_ENCODER

    decoupler = TextDecoupler(dataset)
    encoder = ExpressionEncoder(tokenizer or DEMO_TEXT_ENCODER, max_length)
    stream = itertools.cycle(EXPRESSIONS)
    for expression in itertools.islice(stream, warmup):
        encoder(expression, decoupler(expression))
    spans: Dict[str, List[float]] = dict(decouple=[], tokenize=[], total=[])
    clock = time.perf_counter_ns
    for expression in itertools.islice(stream, n):
        start = clock()
        decoupled = decoupler(expression)
        middle = clock()
        encoder(expression, decoupled)
        end = clock()
        spans['decouple'].append((middle - start) / 1000)
        spans['tokenize'].append((end - middle) / 1000)
        spans['total'].append((end - start) / 1000)
    record = dict(mode='text', n=n, distinct_expressions=len(EXPRESSIONS),
                  max_length=max_length)
    for name, values in spans.items():
        stats = timing.summarize_times(values)
        record[f'{name}_us'] = {k: round(v, 1) for k, v in stats.items() if k != 'all'}
    return dict(record, python=platform.python_version(),
                machine=platform.processor() or platform.machine())
