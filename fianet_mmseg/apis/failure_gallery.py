"""Overlays of the K worst expressions of a test run: prediction | ground truth.

The K lines of a per-sample results file (``tools/test.py --out``) with the
lowest IoU (ties: file order) are run through the model again with their
expression. The ground truth comes from the annotation JSONL of the config's
test set (or ``ann_file``), found by the line's ``(ref_id, sent_id)``; when
that pair is not unique there, ``sample_idx`` (the dataset index) decides.
Command line: ``tools/analysis_tools/failure_gallery.py``.
"""
from __future__ import annotations

import copy
import csv
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
from mmseg.registry import DATASETS

from ..evaluation.sample_results import read_results
from ..utils.image_io import read_image
from ..utils.iou import mask_iou
from ..visualization import render_comparison
from .inference import inference_model, init_model


def worst(records: Sequence[dict], k: int) -> List[dict]:
    """The ``k`` records with the lowest IoU; ties keep the file order."""
    if k < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    return sorted(records, key=lambda r: (r['iou'], r['line']))[:k]


def load_annotations(model, ann_file: Optional[str] = None) -> Tuple[str, List[dict]]:
    """``(annotation file, data infos)`` of the model config's test set."""
    dataset_cfg = copy.deepcopy(model.cfg.test_dataloader.dataset)
    dataset_cfg.update(pipeline=[], lazy_init=False, serialize_data=False)
    if ann_file is not None:
        dataset_cfg.ann_file = osp.abspath(ann_file)
    dataset = DATASETS.build(dataset_cfg)
    return dataset.ann_file, list(dataset.data_list)


def match_ground_truth(records: Sequence[dict], infos: Sequence[dict], results_file: str,
                       ann_file: str) -> List[dict]:
    """The data info of each record, by ``(ref_id, sent_id)`` (then ``sample_idx``)."""
    by_key: Dict[tuple, List[Tuple[int, dict]]] = defaultdict(list)
    for index, info in enumerate(infos):
        by_key[(info.get('ref_id'), info.get('sent_id'))].append((index, info))
    matched = []
    for record in records:
        key = (record.get('ref_id'), record.get('sent_id'))
        candidates = by_key.get(key, [])
        if len(candidates) > 1:
            candidates = [c for c in candidates if c[0] == record.get('sample_idx')]
        if len(candidates) != 1:
            problem = 'no sample' if not by_key.get(key) else 'several samples'
            raise KeyError(f"{results_file}, line {record['line']}: {problem} with ref_id "
                           f'{key[0]!r}, sent_id {key[1]!r} in {ann_file} (give the run\'s '
                           'annotation file with --ann-file)')
        matched.append(candidates[0][1])
    return matched


def make_gallery(results_file: str, config: str, checkpoint: str, out_dir: str, k: int = 10,
                 ann_file: Optional[str] = None, device: str = 'cpu',
                 cfg_options: Optional[dict] = None, batch_size: int = 8) -> List[str]:
    """Write the overlays and ``index.csv``; returns the overlay paths, worst first.

    Written to ``out_dir``: ``<rank>_iou<IoU>_ref<ref_id>_sent<sent_id>.png``
    (rank 1 = worst; IoU from the results file) showing the prediction (red)
    and the ground truth (green, with the IoU of the re-run at the original
    size) side by side and the expression below with its phrases marked, and
    ``index.csv`` listing them.
    """
    records = worst(read_results(results_file), k)
    model = init_model(config, checkpoint, device=device, cfg_options=cfg_options)
    ann_file, infos = load_annotations(model, ann_file)
    truths = match_ground_truth(records, infos, results_file, ann_file)
    results = inference_model(model, [t['img_path'] for t in truths],
                              [r['expression'] for r in records], batch_size=batch_size)
    os.makedirs(out_dir, exist_ok=True)
    written, rows = [], []
    for rank, (record, truth, result) in enumerate(zip(records, truths, results), start=1):
        image = read_image(truth['img_path']).image  # as the model read it
        gt = mmcv.imread(truth['seg_map_path'], flag='unchanged')
        if gt is None:
            raise ValueError(f"cannot read the mask {truth['seg_map_path']}")
        gt = (gt if gt.ndim == 2 else gt[..., 0]) == 1
        pred = result.pred_sem_seg.data[0].cpu().numpy() == 1
        meta = result.metainfo
        drawn = render_comparison(image, pred, gt, meta.get('expression'),
                                  meta.get('object_phrase'), meta.get('spatial_phrases'))
        name = (f"{rank:02d}_iou{record['iou']:.3f}_ref{record.get('ref_id')}"
                f"_sent{record.get('sent_id')}.png")
        path = osp.join(out_dir, name)
        mmcv.imwrite(mmcv.rgb2bgr(drawn), path)
        written.append(path)
        rerun = mask_iou(pred, gt) if pred.shape == gt.shape else float('nan')
        rows.append(dict(rank=rank, iou=f"{record['iou']:.4f}", iou_rerun=f'{rerun:.4f}',
                         ref_id=record.get('ref_id'), sent_id=record.get('sent_id'),
                         category=record.get('category'), expression=record['expression'],
                         image=truth['img_path'], overlay=name))
    with open(osp.join(out_dir, 'index.csv'), 'w', encoding='utf-8', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return written
