"""Referring-segmentation metric: P@k, overall IoU and mean IoU per expression.

The protocol of the FIANet reference (docs/reference.md section 7): one binary
prediction per (image, expression) sample; per sample ``I = |pred & gt|`` and
``U = |pred | gt|`` over the foreground (label 1), pixels whose ground truth is
the ignore index are left out; ``IoU = I / U``.

Reference quirk kept on purpose: a sample with ``U = 0`` (empty prediction on
an empty target) counts as ``IoU = 0``, not 1, so such samples lower ``mIoU``
and every ``P@k`` (they add nothing to ``oIoU``).
"""
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from ..constants import INPUT_SIZE_PRED
from ..utils.iou import intersection_and_union, sample_iou, summarize_ious

EVAL_SIZES = ('input', 'original')
# Per-sample metadata copied from the data sample into the results (and the JSON lines).
SAMPLE_META_KEYS = ('sample_idx', 'ref_id', 'sent_id', 'expression', 'category', 'img_path')
# Codes of the ground truth before nearest resizing (uint8 for Pillow).
_BACKGROUND, _FOREGROUND, _IGNORED = 0, 1, 2


def _to_numpy(data, what: str, sample_name: str) -> np.ndarray:
    """``(1, H, W)`` or ``(H, W)`` tensor/array -> ``(H, W)`` numpy array."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f'{sample_name}: {what} must have shape (1, H, W) or (H, W), '
                         f'got {tuple(array.shape)}')
    return array


def _field(sample: dict, key: str, eval_size: str, sample_name: str) -> np.ndarray:
    """The ``data`` of a pixel field of a data sample dict, as ``(H, W)``."""
    field = sample.get(key)
    if field is None:
        if key == INPUT_SIZE_PRED:
            hint = ("the FIANet segmentor adds it; for other segmentors use "
                    "RefSegMetric(eval_size='original')")
        elif key == 'gt_sem_seg':
            hint = 'the test pipeline must load the annotations (LoadAnnotations)'
        else:
            hint = "use RefSegMetric(eval_size='input') with the FIANet segmentor"
        raise KeyError(f"{sample_name}: data sample has no '{key}', needed by "
                       f"eval_size='{eval_size}' ({hint})")
    data = field['data'] if isinstance(field, dict) else field.data
    return _to_numpy(data, key, sample_name)

def _plain(value):
    """Numpy/torch scalars -> Python scalars (JSON-serialisable)."""
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    return value


@METRICS.register_module()
class RefSegMetric(BaseMetric):
    """Precision@k, overall IoU and mean IoU of referring segmentation.

    Reported in percent: ``P@<t>`` (share of samples with IoU >= t, for each
    threshold), ``oIoU`` = sum(I) / sum(U), ``mIoU`` = mean per-sample IoU and,
    with ``per_category``, ``mIoU.<category>`` for every category met (samples
    whose ``category`` is None are left out of the per-category numbers).

    Args:
        eval_size: ``'input'`` (the reference protocol: the argmax at the
            network input size, ``pred_sem_seg_at_input``, against the ground
            truth resized to ``img_shape`` with Pillow's nearest filter, as the
            reference's torchvision resize of a PIL mask does, which is also the
            training target of the configs' ``Resize(backend='pillow')``) or
            ``'original'`` (``pred_sem_seg`` against ``gt_sem_seg`` at the
            original image size).
        thresholds: IoU thresholds of the precisions, each in (0, 1].
        per_category: also report the mIoU of each category (and log a table).
        ignore_index: ground-truth label left out of I and U.
        output_file: if set, write one JSON line per sample (sample_idx,
            ref_id, sent_id, expression, category, img_path, I, U, IoU) there;
            metadata missing from a data sample is written as null.
        output_dir: if set, write every sample's predicted mask there, as
            mmseg's ``IoUMetric(output_dir=...)`` does: a PNG at the image's
            original size, 0 = background, 1 = referred object, named
            ``<sample_idx>_<image name>.png`` (one image has several
            expressions, so the image name alone would not do).
        collect_device: ``'cpu'`` or ``'gpu'``, to gather results across ranks.
        prefix: prepended as ``<prefix>/`` to the keys; None gives the bare
            keys (give mmseg's IoUMetric a prefix when both run together, both
            emit ``mIoU``).
    """

    default_prefix: str | None = None

    def __init__(self,
                 eval_size: str = 'input',
                 thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 per_category: bool = True,
                 ignore_index: int = 255,
                 output_file: str | None = None,
                 output_dir: str | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        if eval_size not in EVAL_SIZES:
            raise ValueError(f"eval_size must be one of {EVAL_SIZES}, got '{eval_size}'")
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or any(not 0 < t <= 1 for t in thresholds):
            raise ValueError(f'thresholds must be a non-empty list of values in (0, 1], '
                             f'got {thresholds}')
        self.eval_size = eval_size
        self.thresholds = thresholds
        self.per_category = per_category
        self.ignore_index = ignore_index
        self.output_file = output_file
        self.output_dir = output_dir

    # -- per sample -------------------------------------------------------------------
    def _pred_and_gt(self, sample: dict, sample_name: str) -> Tuple[np.ndarray, np.ndarray]:
        """Prediction and ground truth of one sample at the evaluation size."""
        gt = _field(sample, 'gt_sem_seg', self.eval_size, sample_name)
        unexpected = ~np.isin(gt, (0, 1, self.ignore_index))
        if unexpected.any():
            raise ValueError(
                f'{sample_name}: gt_sem_seg holds labels {np.unique(gt[unexpected])[:5].tolist()}; '
                f'expected 0 (background), 1 (object) or {self.ignore_index} (ignore)')
        if self.eval_size == 'original':
            pred = _field(sample, 'pred_sem_seg', self.eval_size, sample_name)
            if pred.shape != gt.shape:
                raise ValueError(
                    f'{sample_name}: pred_sem_seg is {pred.shape} but gt_sem_seg is {gt.shape} '
                    "with eval_size='original'; the test pipeline probably resizes the ground "
                    "truth (LoadAnnotations before Resize): load it after Resize, or use "
                    "eval_size='input'")
            return pred, gt
        pred = _field(sample, INPUT_SIZE_PRED, self.eval_size, sample_name)
        img_shape = sample.get('img_shape')
        if img_shape is None:
            raise KeyError(f"{sample_name}: data sample has no 'img_shape', needed by "
                           "eval_size='input'")
        height, width = (int(v) for v in img_shape[:2])
        if pred.shape != (height, width):
            raise ValueError(
                f'{sample_name}: {INPUT_SIZE_PRED} is {pred.shape} but img_shape is '
                f"{(height, width)}; use eval_size='original' if the prediction is not at "
                'the network input size')
        if gt.shape != (height, width):
            codes = np.full(gt.shape, _BACKGROUND, dtype=np.uint8)
            codes[gt == 1] = _FOREGROUND
            codes[gt == self.ignore_index] = _IGNORED
            codes = mmcv.imresize(codes, (width, height), interpolation='nearest',
                                  backend='pillow')
            gt = np.where(codes == _IGNORED, self.ignore_index, (codes == _FOREGROUND))
        return pred, gt

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store I, U and the metadata of each sample (no masks)."""
        for sample in data_samples:
            meta = {key: sample.get(key) for key in SAMPLE_META_KEYS}
            sample_name = (f"sample {meta['sample_idx']} (ref_id {meta['ref_id']}, "
                           f"{meta['img_path']})")
            pred, gt = self._pred_and_gt(sample, sample_name)
            if self.output_dir is not None:
                self._write_mask(sample, sample_name)
            intersection, union = intersection_and_union(pred, gt, self.ignore_index)
            for key in ('sample_idx', 'ref_id', 'sent_id'):
                meta[key] = _plain(meta[key])
            self.results.append(dict(meta, I=intersection, U=union))

    def _write_mask(self, sample: dict, sample_name: str) -> None:
        """The prediction at the original size as a 0/1 PNG in ``output_dir``."""
        pred = _field(sample, 'pred_sem_seg', 'original', sample_name)
        stem = osp.splitext(osp.basename(str(sample.get('img_path') or 'image')))[0]
        index = sample.get('sample_idx')
        name = f'{_plain(index):06d}_{stem}.png' if index is not None else f'{stem}.png'
        os.makedirs(self.output_dir, exist_ok=True)
        path = osp.join(self.output_dir, name)
        if not mmcv.imwrite((pred == 1).astype(np.uint8), path):
            raise OSError(f'{sample_name}: cannot write the predicted mask {path}')

    # -- whole set --------------------------------------------------------------------
    def _summary(self, results: List[dict]) -> Dict[str, float]:
        """Percent P@t, oIoU and mIoU of a list of per-sample results."""
        return summarize_ious(results, self.thresholds)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Metrics in percent; logs tables and writes ``output_file`` if set."""
        if not results:
            raise ValueError('RefSegMetric: no sample was processed, nothing to evaluate')
        metrics = self._summary(results)
        table = PrettyTable(field_names=['samples', *metrics])
        table.add_row([len(results), *(f'{v:.2f}' for v in metrics.values())])
        print_log('Referring segmentation results:\n' + table.get_string(), logger='current')

        if self.per_category:
            by_category: Dict[str, List[dict]] = defaultdict(list)
            for result in results:
                if result['category'] is not None:
                    by_category[str(result['category'])].append(result)
            if by_category:
                first = 'P@0.5' if 0.5 in self.thresholds else f'P@{self.thresholds[0]:g}'
                table = PrettyTable(field_names=['category', 'count', 'mIoU', 'oIoU', first])
                for category in sorted(by_category):
                    summary = self._summary(by_category[category])
                    metrics[f'mIoU.{category}'] = summary['mIoU']
                    table.add_row([category, len(by_category[category]),
                                   *(f'{summary[k]:.2f}' for k in ('mIoU', 'oIoU', first))])
                print_log('Per-category results:\n' + table.get_string(), logger='current')

        if self.output_file:
            self._write_samples(results)
        return metrics

    def _write_samples(self, results: List[dict]) -> None:
        """One JSON line per sample, in processing order."""
        directory = osp.dirname(osp.abspath(self.output_file))
        os.makedirs(directory, exist_ok=True)
        with open(self.output_file, 'w', encoding='utf-8') as file:
            for result in results:
                record = {key: result[key] for key in SAMPLE_META_KEYS}
                record.update(I=result['I'], U=result['U'],
                              IoU=sample_iou(result['I'], result['U']))
                file.write(json.dumps(record, ensure_ascii=False) + '\n')
        print_log(f'Per-sample IoUs written to {self.output_file}', logger='current')
