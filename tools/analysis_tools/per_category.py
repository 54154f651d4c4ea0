"""Per-category scores of a test run, from the file ``tools/test.py --out`` writes.

    python tools/analysis_tools/per_category.py RESULTS.jsonl [--sort miou|oiou|p|count|name]
        [--threshold 0.5] [--json SUMMARY.json]
        [--gallery-dir DIR --config CONFIG --checkpoint CKPT [--k 10] ...]

Prints, per category and for all samples: the number of expressions, mIoU
(mean of the per-sample IoUs), oIoU (sum of intersections / sum of unions)
and P@0.5 (share of samples with IoU >= 0.5), in percent. IoUs are recomputed
from each line's ``I`` and ``U`` (``U = 0`` counts as IoU 0, as in
``RefSegMetric``); samples without a category are listed as ``(none)``.
Categories are sorted by mIoU, best first (``--sort``); the totals come last.

With ``--gallery-dir`` it also writes the failure gallery of the ``--k``
worst expressions (see ``tools/analysis_tools/failure_gallery.py``).
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from mmengine.config import DictAction
from prettytable import PrettyTable

from fianet_mmseg.utils.jsonl import read_jsonl

NO_CATEGORY = '(none)'
TOTAL = 'all'
SORT_KEYS = {'miou': 'mIoU', 'oiou': 'oIoU', 'p': 'P', 'count': 'count', 'name': 'name'}


def _count(record: dict, key: str, where: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
            or value != int(value):
        raise ValueError(f'{where}: field "{key}" must be a non-negative integer, got {value!r}')
    return int(value)


def read_results(path: str) -> List[dict]:
    """The per-sample records of a results JSONL file, with ``line`` and ``iou`` added.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Bad JSON, missing / invalid ``I`` or ``U``, ``I > U``, no
            records; the message names the file and line.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file {path} does not exist')
    records = []
    for line_no, where, record in read_jsonl(path):
        intersection, union = _count(record, 'I', where), _count(record, 'U', where)
        if intersection > union:
            raise ValueError(f'{where}: I = {intersection} is larger than U = {union}')
        record.update(I=intersection, U=union, line=line_no,
                      iou=intersection / union if union else 0.0)
        records.append(record)
    if not records:
        raise ValueError(f'{path}: no results')
    return records


def summarize(records: Sequence[dict], threshold: float = 0.5) -> Dict[str, float]:
    """``count``, ``mIoU``, ``oIoU`` and ``P`` (at ``threshold``) in percent."""
    ious = [r['iou'] for r in records]
    union = sum(r['U'] for r in records)
    return dict(count=len(records),
                mIoU=100.0 * sum(ious) / len(ious),
                oIoU=100.0 * sum(r['I'] for r in records) / union if union else 0.0,
                P=100.0 * sum(iou >= threshold for iou in ious) / len(ious))


def per_category(records: Sequence[dict], threshold: float = 0.5,
                 sort: str = 'miou') -> Dict[str, Dict[str, float]]:
    """Summaries per category (in ``sort`` order), then ``'all'``."""
    if sort not in SORT_KEYS:
        raise ValueError(f'sort must be one of {sorted(SORT_KEYS)}, got {sort!r}')
    groups: Dict[str, List[dict]] = defaultdict(list)
    for record in records:
        category = record.get('category')
        groups[NO_CATEGORY if category is None else str(category)].append(record)
    summaries = {name: summarize(group, threshold) for name, group in groups.items()}
    if sort == 'name':
        order = sorted(summaries)
    else:
        key = SORT_KEYS[sort]
        order = sorted(summaries, key=lambda name: (-summaries[name][key], name))
    result = {name: summaries[name] for name in order}
    result[TOTAL] = summarize(records, threshold)
    return result


def format_table(summaries: Dict[str, Dict[str, float]], threshold: float = 0.5) -> str:
    """A text table: category, count, mIoU, oIoU, P@threshold."""
    table = PrettyTable(field_names=['category', 'count', 'mIoU', 'oIoU', f'P@{threshold:g}'])
    for name, summary in summaries.items():
        table.add_row([name, summary['count'], f"{summary['mIoU']:.2f}",
                       f"{summary['oIoU']:.2f}", f"{summary['P']:.2f}"])
    table.align['category'] = 'l'
    return table.get_string()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', help='per-sample JSONL of tools/test.py --out')
    parser.add_argument('--sort', choices=sorted(SORT_KEYS), default='miou',
                        help='category order (numbers: best first; default miou)')
    parser.add_argument('--threshold', type=float, default=0.5, help='IoU threshold of P@')
    parser.add_argument('--json', help='also write the numbers to this JSON file')
    gallery = parser.add_argument_group('failure gallery')
    gallery.add_argument('--gallery-dir', help='write overlays of the K worst expressions here')
    gallery.add_argument('--k', type=int, default=10, help='number of worst expressions')
    gallery.add_argument('--config', help='config of the run (for the model and the data)')
    gallery.add_argument('--checkpoint', help='checkpoint of the run')
    gallery.add_argument('--ann-file', help="annotation JSONL with the ground truth (default: "
                         "the config's test set)")
    gallery.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    gallery.add_argument('--cfg-options', nargs='+', action=DictAction,
                         help='override config entries')
    args = parser.parse_args(argv)
    if not 0 < args.threshold <= 1:
        parser.error(f'--threshold must be in (0, 1], got {args.threshold}')
    if args.gallery_dir and not (args.config and args.checkpoint):
        parser.error('--gallery-dir needs --config and --checkpoint')
    return args


def _gallery_module():
    """tools/analysis_tools/failure_gallery.py, imported on demand (it loads the model code)."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # this folder's scripts
    import failure_gallery

    return failure_gallery


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    args = parse_args(argv)
    records = read_results(args.results)
    summaries = per_category(records, args.threshold, args.sort)
    print(f'{args.results}: {len(records)} expressions')
    print(format_table(summaries, args.threshold))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as file:
            json.dump(summaries, file, indent=2)
    if args.gallery_dir:
        gallery = _gallery_module()
        written = gallery.make_gallery(args.results, args.config, args.checkpoint,
                                       args.gallery_dir, k=args.k, ann_file=args.ann_file,
                                       device=args.device, cfg_options=args.cfg_options)
        print(f'{len(written)} overlays of the worst expressions written to {args.gallery_dir}')
    return summaries


if __name__ == '__main__':
    main()
