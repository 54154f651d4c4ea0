"""The (image, expression) pairs of a batch: a CSV / JSONL pairs file or a folder of images.

A pairs file is a CSV with a header holding the columns ``image`` (or
``img_path``) and ``expression``, or JSON lines with the keys ``image`` (or
``img_path``) and ``expression``; relative image paths are resolved against
the pairs file's folder. A bad row (bad JSON, missing or empty fields, missing
image file) becomes a :class:`Job` whose ``error`` names the file and line; the
others are kept, so a batch goes on past it.
"""
from __future__ import annotations

import csv
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional

from ..utils.jsonl import iter_jsonl_lines, parse_jsonl_line

IMAGE_KEYS = ('image', 'img_path')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


@dataclass
class Job:
    """One (image, expression) pair of a batch; ``error`` set when it cannot run.

    ``source`` says where it comes from: ``"pairs.csv, line 3"`` or the image path.
    """

    index: int
    source: str
    image: Optional[str]
    expression: Optional[str]
    error: Optional[str] = None


def _job(path: str, index: int, line_no: int, image: object, expression: object) -> Job:
    """Check one pair of a pairs file; resolve its image path."""
    source = f'{path}, line {line_no}'
    job = Job(index, source, image if isinstance(image, str) else None,
              expression if isinstance(expression, str) else None)
    if not isinstance(image, str) or not image.strip():
        job.error = f'{source}: the image path is missing or empty'
    elif not isinstance(expression, str) or not expression.strip():
        job.error = f'{source}: the expression is missing or empty'
    else:
        job.image = osp.join(osp.dirname(osp.abspath(path)), image.strip())
        if not osp.isfile(job.image):
            job.error = f'{source}: image file {job.image} does not exist'
    return job


def read_pairs(path: str) -> List[Job]:
    """The pairs of a CSV or JSONL pairs file, bad ones with their ``error``.

    Raises:
        FileNotFoundError: The pairs file does not exist.
        ValueError: Unknown extension, bad CSV header, no pairs at all.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pairs file {path} does not exist')
    extension = osp.splitext(path)[1].lower()
    jobs: List[Job] = []
    with open(path, encoding='utf-8', newline='') as file:
        if extension == '.csv':
            reader = csv.DictReader(file)
            columns = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = columns
            image_key = next((key for key in IMAGE_KEYS if key in columns), None)
            if image_key is None or 'expression' not in columns:
                raise ValueError(f'{path}, line 1: the header must name the columns image and '
                                 f'expression, got {columns}')
            for row in reader:
                if not any((value or '').strip() for value in row.values() if
                           isinstance(value, str)):
                    continue
                jobs.append(_job(path, len(jobs), reader.line_num, row.get(image_key),
                                 row.get('expression')))
        elif extension in ('.jsonl', '.json'):
            for line_no, where, line in iter_jsonl_lines(path):
                try:
                    record = parse_jsonl_line(line, where)
                except ValueError as err:  # this row fails, the others go on
                    jobs.append(Job(len(jobs), where, None, None, str(err)))
                    continue
                image = next((record[key] for key in IMAGE_KEYS if key in record), None)
                jobs.append(_job(path, len(jobs), line_no, image, record.get('expression')))
        else:
            raise ValueError(f'{path}: unknown pairs file type {extension!r} (use .csv or '
                             '.jsonl)')
    if not jobs:
        raise ValueError(f'{path}: no pairs')
    return jobs


def folder_jobs(folder: str, expression: str) -> List[Job]:
    """One job per image file of ``folder`` (not its subfolders; sorted by name).

    Raises:
        FileNotFoundError: No such folder.
        ValueError: No image file in it.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder} does not exist')
    names = sorted(name for name in os.listdir(folder)
                   if osp.splitext(name)[1].lower() in IMAGE_SUFFIXES
                   and osp.isfile(osp.join(folder, name)))
    if not names:
        raise ValueError(f'{folder}: no image files ({", ".join(IMAGE_SUFFIXES)})')
    return [Job(index, osp.join(folder, name), osp.join(folder, name), expression)
            for index, name in enumerate(names)]
