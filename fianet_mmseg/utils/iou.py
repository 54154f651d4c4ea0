"""Intersection over union of referring masks: per sample, and P@k / oIoU / mIoU of a set.

The protocol of the FIANet reference (docs/reference.md section 7), used by
:class:`~fianet_mmseg.evaluation.RefSegMetric`, by the analysis of its
per-sample files and by the visualiser's titles, so all report the same
numbers. Per sample ``I = |pred & gt|`` and ``U = |pred | gt|`` over the
foreground (label 1); pixels whose ground truth is the ignore index are left
out; ``IoU = I / U``.

Reference quirk kept on purpose: a sample with ``U = 0`` (empty prediction on
an empty target) counts as ``IoU = 0``, not 1, so such samples lower ``mIoU``
and every ``P@k`` (they add nothing to ``oIoU``).
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence, Tuple

import numpy as np


def intersection_and_union(pred: np.ndarray, gt: np.ndarray,
                           ignore_index: int = 255) -> Tuple[int, int]:
    """Foreground intersection and union of one sample.

    Args:
        pred: ``(H, W)`` predicted labels (1 or True = referred object, else
            background).
        gt: ``(H, W)`` ground truth (1 or True = object, 0 = background,
            ``ignore_index`` = left out).
        ignore_index: Ground-truth label left out of I and U.

    Returns:
        ``(I, U)`` pixel counts.
    """
    valid = gt != ignore_index
    pred_fg = (pred == 1) & valid
    gt_fg = gt == 1
    return int(np.count_nonzero(pred_fg & gt_fg)), int(np.count_nonzero(pred_fg | gt_fg))


def sample_iou(intersection: int, union: int) -> float:
    """``I / U``; 0 when ``U == 0`` (the reference's convention)."""
    return intersection / union if union > 0 else 0.0


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore_index: int = 255) -> float:
    """The IoU of one sample: :func:`sample_iou` of :func:`intersection_and_union`."""
    return sample_iou(*intersection_and_union(pred, gt, ignore_index))


def summarize_ious(samples: Iterable[Mapping[str, int]],
                   thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)
                   ) -> Dict[str, float]:
    """Percent ``P@<t>`` for each threshold, ``oIoU`` and ``mIoU`` of per-sample counts.

    Args:
        samples: Per-sample dicts with the counts ``I`` and ``U`` (at least one).
        thresholds: IoU thresholds of the precisions.

    Returns:
        ``{'P@0.5': ..., 'oIoU': sum(I) / sum(U), 'mIoU': mean per-sample IoU}``
        in percent (``oIoU`` 0 when every union is empty).
    """
    samples = list(samples)
    if not samples:
        raise ValueError('summarize_ious: no sample')
    ious = np.array([sample_iou(s['I'], s['U']) for s in samples], dtype=np.float64)
    total_union = sum(s['U'] for s in samples)
    summary = {f'P@{t:g}': 100.0 * float(np.mean(ious >= t)) for t in thresholds}
    summary['oIoU'] = 100.0 * sum(s['I'] for s in samples) / total_union \
        if total_union > 0 else 0.0
    summary['mIoU'] = 100.0 * float(ious.mean())
    return summary
