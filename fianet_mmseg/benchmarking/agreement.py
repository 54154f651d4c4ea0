"""Answers of the reduced-precision paths against float32 on the benchmark's batch.

:func:`precision_agreement` builds the config's model once, infers the
synthetic batch in float32, then for each reduced precision (a copy of the
model, :func:`~fianet_mmseg.utils.precision.set_benchmark_precision`) compares the
logits at the input size: max and mean |difference|, the float32 logits'
largest magnitude, and the share of pixels whose argmax class agrees.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import torch

from ..utils.precision import set_benchmark_precision
from .inputs import synthetic_data
from .runs import build_model
from .settings import BenchmarkSettings, prepare_config


def _logits(model: torch.nn.Module, data: dict) -> torch.Tensor:
    """(B, C, H, W) float32 logits of ``model.test_step`` on ``data``."""
    with torch.no_grad():
        samples = model.test_step(copy.copy(data))
    return torch.stack([s.seg_logits.data.float() for s in samples])


def compare_logits(low: torch.Tensor, exact: torch.Tensor) -> Dict[str, float]:
    """Differences of (B, C, H, W) logits ``low`` from ``exact`` and the argmax agreement."""
    difference = (low - exact).abs()
    return dict(max_abs_diff=float(difference.max()), mean_abs_diff=float(difference.mean()),
                max_abs_logit=float(exact.abs().max()),
                pixel_agreement=float((low.argmax(1) == exact.argmax(1)).float().mean()))


def precision_agreement(settings: BenchmarkSettings, precisions: Sequence[str]) -> List[dict]:
    """One record per precision: its logits against float32's on the benchmark batch."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    cfg, _ = prepare_config(settings)
    model = build_model(cfg, settings.device).eval()
    data, inputs = synthetic_data(settings, cfg, model)
    exact = _logits(model, data)
    records = []
    for precision in precisions:
        reduced = copy.deepcopy(model)
        ran = set_benchmark_precision(reduced, precision, settings.device)
        values = {k: round(v, 6) for k, v in compare_logits(_logits(reduced, data),
                                                            exact).items()}
        records.append(dict(agreement=precision, ran_as=ran, batch=settings.batch, **inputs,
                            random_init=settings.random_init, **values))
        del reduced
    return records
