"""The per-sample results file of a test run, read back and summarised per category.

``RefSegMetric(output_file=...)`` (``tools/test.py --out``) writes one JSON
line per (image, expression) sample with its ``I`` and ``U``; this module
reads such a file (errors name the file and line) and gives, per category and
for all samples, the count, mIoU, oIoU and P@threshold in percent, computed by
the metric's own code (:func:`fianet_mmseg.utils.iou.summarize_ious`).
"""
from __future__ import annotations

import os.path as osp
from collections import defaultdict
from typing import Dict, List, Sequence

from prettytable import PrettyTable

from ..utils.iou import sample_iou, summarize_ious
from ..utils.jsonl import read_jsonl

#: The group of samples without a category, and of all samples.
NO_CATEGORY = '(none)'
TOTAL = 'all'
#: ``sort`` choices of :func:`per_category` -> the summary key they order by.
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
                      iou=sample_iou(intersection, union))
        records.append(record)
    if not records:
        raise ValueError(f'{path}: no results')
    return records


def summarize(records: Sequence[dict], threshold: float = 0.5) -> Dict[str, float]:
    """``count``, ``mIoU``, ``oIoU`` and ``P`` (at ``threshold``) in percent."""
    scores = summarize_ious(records, (threshold,))
    return dict(count=len(records), mIoU=scores['mIoU'], oIoU=scores['oIoU'],
                P=scores[f'P@{threshold:g}'])


def per_category(records: Sequence[dict], threshold: float = 0.5,
                 sort: str = 'miou') -> Dict[str, Dict[str, float]]:
    """Summaries per category (in ``sort`` order: numbers best first), then ``'all'``."""
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
