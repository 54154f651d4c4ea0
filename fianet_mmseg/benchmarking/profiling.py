"""Where a FIANet training step spends its time, per model part.

:func:`part_scopes` wraps the forwards of the parts (text encoder, Swin
blocks, the rest of the Swin backbone, FIAM, TMEM, decoder, loss, data
preprocessor) and the optimizer's ``step`` / ``zero_grad`` in
``torch.profiler.record_function`` scopes named ``part::<name>``.
:func:`attribute_events` then splits the profiler's self times: forward ops
go to their enclosing scope, backward ops to the part whose forward created
their autograd node (matched by the profiler's sequence numbers), gradient
accumulation and everything else to their own buckets.
:func:`profile_training_step` does it for the training step of a benchmark's
settings. Profiling inflates cheap operators: compare shares, not absolute
times, with :func:`~fianet_mmseg.benchmarking.runs.run`.
"""
from __future__ import annotations

import contextlib
import functools
import os.path as osp
import time
from collections import defaultdict
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from .inputs import synthetic_data
from .runs import build_model, make_step
from .settings import BenchmarkSettings, model_speedups, prepare_config

SCOPE_PREFIX = 'part::'
BACKWARD_PREFIX = 'autograd::engine::evaluate_function: '
ACCUMULATE_GRAD = 'torch::autograd::AccumulateGrad'

#: Report order of the parts.
PARTS = ('data_preprocessor', 'text_encoder', 'swin_blocks', 'swin_other', 'fiam', 'tmem',
         'decoder', 'loss', 'optimizer', 'grad_accumulation', 'other')


def fianet_parts(model: nn.Module, optim_wrapper=None) -> List[Tuple[str, object, str]]:
    """(part, object, method) triples to scope, for FIANet-like models.

    Parts the model lacks are left out. ``swin_other`` is the patch
    embedding, patch merging and the per-stage output norms.
    """
    from mmseg.models.backbones.swin import SwinBlock

    targets: List[Tuple[str, object, str]] = []
    if getattr(model, 'data_preprocessor', None) is not None:
        targets.append(('data_preprocessor', model.data_preprocessor, 'forward'))
    if getattr(model, 'text_encoder', None) is not None:
        targets.append(('text_encoder', model.text_encoder, 'forward'))
    backbone = getattr(model, 'backbone', None)
    if backbone is not None:
        for module in backbone.modules():
            if isinstance(module, SwinBlock):
                targets.append(('swin_blocks', module, 'forward'))
        if hasattr(backbone, 'patch_embed'):
            targets.append(('swin_other', backbone.patch_embed, 'forward'))
        for stage in getattr(backbone, 'stages', []):
            if getattr(stage, 'downsample', None) is not None:
                targets.append(('swin_other', stage.downsample, 'forward'))
        for index in range(len(getattr(backbone, 'stages', []))):
            norm = getattr(backbone, f'norm{index}', None)
            if norm is not None:
                targets.append(('swin_other', norm, 'forward'))
        for fusion in getattr(backbone, 'fusions', []):
            targets.append(('fiam', fusion, 'forward'))
    if getattr(model, 'neck', None) is not None:
        targets.append(('tmem', model.neck, 'forward'))
    head = getattr(model, 'decode_head', None)
    if head is not None:
        targets.append(('decoder', head, 'forward'))
        targets.append(('loss', head, 'loss_by_feat'))
    if optim_wrapper is not None:
        targets.append(('optimizer', optim_wrapper, 'step'))
        targets.append(('optimizer', optim_wrapper, 'zero_grad'))
    return targets


def _scoped(method: Callable, name: str) -> Callable:

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with record_function(SCOPE_PREFIX + name):
            return method(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def part_scopes(targets: Sequence[Tuple[str, object, str]]) -> Iterator[None]:
    """Wrap ``obj.method`` of each target in a ``part::<name>`` scope.

    The wrappers are instance attributes (calls through ``nn.Module.__call__``
    and direct method calls both pass through them); they are removed on exit.
    """
    installed = []
    try:
        for name, obj, method in targets:
            if method in vars(obj):
                raise RuntimeError(f'{type(obj).__name__}.{method} is already wrapped')
            setattr(obj, method, _scoped(getattr(obj, method), name))
            installed.append((obj, method))
        yield
    finally:
        for obj, method in installed:
            delattr(obj, method)


def _ancestor_part(event, seq_part: Dict[Tuple[int, int], str]) -> Tuple[str, str]:
    """(part, phase) of a profiler event from its nearest labelled ancestor."""
    node = event
    while node is not None:
        name = node.name
        if name.startswith(SCOPE_PREFIX):
            return name[len(SCOPE_PREFIX):], 'forward'
        if name.startswith(BACKWARD_PREFIX):
            if name.endswith(ACCUMULATE_GRAD):
                return 'grad_accumulation', 'backward'
            thread = getattr(node, 'fwd_thread', None) or node.thread
            return seq_part.get((thread, node.sequence_nr), 'other'), 'backward'
        node = node.cpu_parent
    return 'other', 'other'


def attribute_events(events) -> Dict[str, Dict[str, float]]:
    """Self CPU time (ms) per part and phase from ``profiler.events()``.

    Returns:
        dict: part -> ``{'forward': ms, 'backward': ms, 'other': ms}``.
    """
    ordered = sorted(events, key=lambda e: e.time_range.start)
    # The op that creates autograd node n is the last one recorded with n.
    seq_part: Dict[Tuple[int, int], str] = {}
    for event in ordered:
        if event.sequence_nr is not None and event.sequence_nr >= 0 and \
                not event.name.startswith(BACKWARD_PREFIX):
            part, phase = _ancestor_part(event, {})
            if phase == 'forward':
                seq_part[(event.thread, event.sequence_nr)] = part
    totals: Dict[str, Dict[str, float]] = defaultdict(
        lambda: dict(forward=0.0, backward=0.0, other=0.0))
    for event in ordered:
        part, phase = _ancestor_part(event, seq_part)
        totals[part][phase] += event.self_cpu_time_total / 1000.0
    return dict(totals)


def shares_table(totals: Dict[str, Dict[str, float]]) -> List[dict]:
    """Rows ``part, forward_ms, backward_ms, total_ms, share`` in report order."""
    grand = sum(sum(v.values()) for v in totals.values()) or 1.0
    rows = []
    for part in PARTS + tuple(sorted(set(totals) - set(PARTS))):
        if part not in totals:
            continue
        phases = totals[part]
        total = sum(phases.values())
        rows.append(dict(part=part, forward_ms=round(phases['forward'], 1),
                         backward_ms=round(phases['backward'], 1),
                         total_ms=round(total, 1), share=round(total / grand, 4)))
    return rows


def format_table(rows: List[dict], title: Optional[str] = None) -> str:
    """A plain-text table of :func:`shares_table` rows."""
    lines = [title] if title else []
    lines.append(f'{"part":<18}{"forward ms":>12}{"backward ms":>13}{"total ms":>11}'
                 f'{"share":>8}')
    for row in rows:
        lines.append(f'{row["part"]:<18}{row["forward_ms"]:>12.1f}{row["backward_ms"]:>13.1f}'
                     f'{row["total_ms"]:>11.1f}{100 * row["share"]:>7.1f}%')
    total = sum(row['total_ms'] for row in rows)
    lines.append(f'{"total":<18}{"":>12}{"":>13}{total:>11.1f}')
    return '\n'.join(lines)


def profile_training_step(settings: BenchmarkSettings, steps: int = 1,
                          top: int = 15) -> Tuple[str, dict]:
    """Profile ``steps`` training steps (``settings.mode='infer'``: inferences, no
    gradients) after ``settings.warmup`` on the CPU.

    Returns:
        tuple: ``(text, record)``: the parts table (and the ``top`` slowest
        operators), and the JSON record with the rows of :func:`shares_table`.
    """
    from mmengine.optim import build_optim_wrapper

    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    cfg, _ = prepare_config(settings)
    model = build_model(cfg, 'cpu')
    infer = settings.mode == 'infer'
    optim_wrapper = None if infer else build_optim_wrapper(model, cfg.optim_wrapper)
    data, inputs = synthetic_data(settings, cfg, model)
    step = make_step(model, data, settings.mode, optim_wrapper)
    for _ in range(settings.warmup):
        step()
    scopes = part_scopes(fianet_parts(model, optim_wrapper))
    with scopes, profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - start) / steps
    totals = attribute_events(prof.events())
    for phases in totals.values():
        for phase in phases:
            phases[phase] /= steps
    rows = shares_table(totals)
    size, length = inputs['size'], inputs['length']
    title = (f'{osp.basename(settings.config)}: batch {settings.batch}, {size[0]}x{size[1]}, '
             f'L={length}, {settings.mode}, path={settings.path}, '
             f'{torch.get_num_threads()} threads; '
             f'profiled step {wall:.3f} s (self CPU time per step)')
    text = format_table(rows, title)
    if top:
        text += '\n' + prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=top)
    record = dict(config=osp.basename(settings.config), mode=settings.mode,
                  batch=settings.batch, **inputs,
                  path=settings.path, amp=settings.amp,
                  speedups=model_speedups(model, optim_wrapper),
                  profiled_step_s=round(wall, 4), parts=rows)
    return text, record
