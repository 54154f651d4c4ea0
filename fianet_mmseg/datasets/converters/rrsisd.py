"""RRSIS-D release layout -> the project's annotation format (see :mod:`.common`).

Release layout under ``src``::

    rrsisd/refs(unc).p             # pickle: list of reference dicts
    rrsisd/instances.json          # images / annotations (category key: categories_id) / categories
    images/rrsisd/JPEGImages/<file_name>

One mask per annotation (``masks/<ann_id>.png``), one record per (reference, sentence).
Nothing is skipped: every malformed reference is an error. ``refs(unc).p`` is a pickle, which
can run code when loaded: convert only a release you trust.
"""
from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from .common import (
    SPLITS,
    ConversionSummary,
    ConverterError,
    OutputWriter,
    as_int,
    check_file_name,
    optional_progress,
    read_image_size,
    require,
)

REFS_FILE = Path('rrsisd') / 'refs(unc).p'
INSTANCES_FILE = Path('rrsisd') / 'instances.json'
IMAGES_DIR = Path('images') / 'rrsisd' / 'JPEGImages'


@dataclass
class _Image:
    file_name: str
    path: Path
    height: int
    width: int


@dataclass
class _Reference:
    where: str
    ref_id: int
    ann_id: int
    image_id: int
    split: str
    category: str
    image: _Image
    sentences: List[Tuple[int, str]]  # (sent_id, expression)


def _load_refs(path: Path) -> List[Dict[str, Any]]:
    """The reference list of ``refs(unc).p`` (Python 2 pickles read as latin-1)."""
    def load(**kwargs: Any) -> Any:
        with open(path, 'rb') as handle:
            return pickle.load(handle, **kwargs)
    try:
        try:
            refs = load()
        except UnicodeDecodeError:
            refs = load(encoding='latin1')
    except Exception as err:  # unpickling can fail in many ways; all mean "not a refs file"
        raise ConverterError(f'{path}: cannot read the pickle: {err!r}') from err
    if not isinstance(refs, list):
        raise ConverterError(f'{path}: expected a list of reference dicts, got '
                             f'{type(refs).__name__}')
    return refs


class _Instances:
    """``instances.json`` indexed by id; entries are validated when a reference uses them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, encoding='utf-8') as handle:
                data = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConverterError(f'{path}: cannot read JSON: {err}') from err
        if not isinstance(data, dict):
            raise ConverterError(f'{path}: expected a JSON object at the top level')
        self.images = self._index(data, 'images')
        self.annotations = self._index(data, 'annotations')
        self.categories = self._index(data, 'categories')

    def _index(self, data: Dict[str, Any], section: str) -> Dict[int, Dict[str, Any]]:
        entries = data.get(section)
        if not isinstance(entries, list):
            raise ConverterError(f'{self.path}: missing list {section!r}')
        by_id: Dict[int, Dict[str, Any]] = {}
        for position, entry in enumerate(entries):
            where = f'{self.path.name} {section}[{position}]'
            entry_id = as_int(require(entry, 'id', where), where, 'id')
            if entry_id in by_id:
                raise ConverterError(f'{where}: duplicate id {entry_id}')
            by_id[entry_id] = entry
        return by_id

    def category_name(self, annotation: Dict[str, Any], where: str) -> Tuple[int, str]:
        """``(id, name)`` of an annotation's category (key ``categories_id``)."""
        key = 'categories_id' if 'categories_id' in annotation else 'category_id'
        category_id = as_int(require(annotation, key, where), where, key)
        category = self.categories.get(category_id)
        if category is None:
            raise ConverterError(f'{where}: unknown category id {category_id} (field {key!r}; '
                                 f'not in the categories of {self.path.name})')
        name = require(category, 'name', f'{self.path.name} category id {category_id}')
        return category_id, str(name)


def convert_rrsisd(src: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False,
                   copy_images: bool = False, verify_images: bool = True,
                   progress: bool = False) -> ConversionSummary:
    """Convert an RRSIS-D release into ``out`` (``{train,val,test}.jsonl`` + ``masks/``).

    Args:
        src: Release root (holding ``rrsisd/`` and ``images/``); only read.
        out: Output directory; must be empty or absent unless ``overwrite``.
        overwrite: Replace this converter's files in a non-empty ``out``.
        copy_images: Copy images to ``out/images/`` and store paths relative to ``out``
            (default: absolute source paths).
        verify_images: Decode every image fully (catches truncated files); else read headers.
        progress: Show a progress bar on stderr.

    Returns:
        The summary, also printed by the command-line tool.

    Raises:
        ConverterError: Malformed input (naming the file, ref_id and field) or refused output.
    """
    src_root = Path(src)
    refs_path, instances_path = src_root / REFS_FILE, src_root / INSTANCES_FILE
    image_dir = src_root / IMAGES_DIR
    for required in (refs_path, instances_path, image_dir):
        if not required.exists():
            raise ConverterError(f'{required} not found: --src must be the RRSIS-D root holding '
                                 f'{REFS_FILE}, {INSTANCES_FILE} and {IMAGES_DIR}/')
    writer = OutputWriter(out, src_root, overwrite=overwrite, copy_images=copy_images)
    writer.protect(refs_path)
    writer.protect(instances_path)
    summary = ConversionSummary('RRSIS-D', str(writer.out_dir))

    instances = _Instances(instances_path)
    references = _plan_references(_load_refs(refs_path), instances, image_dir, writer,
                                  summary, verify_images)
    mask_paths: Dict[int, str] = {}
    for ref in optional_progress(references, progress, 'RRSIS-D'):
        image = ref.image
        if ref.ann_id not in mask_paths:
            segmentation = require(instances.annotations[ref.ann_id], 'segmentation', ref.where)
            mask = decode_segmentation(segmentation, image.height, image.width, ref.where)
            if not mask.any():
                summary.empty_masks.append(f'ann {ref.ann_id}')
            mask_paths[ref.ann_id] = writer.write_mask(str(ref.ann_id), mask)
        img_path = writer.image_path(image.path, image.file_name)
        summary.references[ref.split] += 1
        for sent_id, expression in ref.sentences:
            summary.sentences[ref.split] += 1
            writer.add_record(dict(
                img_path=img_path, seg_map_path=mask_paths[ref.ann_id], expression=expression,
                ref_id=ref.ref_id, sent_id=sent_id, image_id=ref.image_id,
                category=ref.category, split=ref.split, height=image.height,
                width=image.width))
    writer.finish()
    summary.images = len({ref.image_id for ref in references})
    summary.masks = writer.masks_written
    return summary


def _plan_references(refs: List[Dict[str, Any]], instances: _Instances, image_dir: Path,
                     writer: OutputWriter, summary: ConversionSummary,
                     verify_images: bool) -> List[_Reference]:
    """Check every reference's metadata and image before anything is written."""
    images: Dict[int, _Image] = {}
    seen_refs: set[int] = set()
    planned = []
    for position, ref in enumerate(refs):
        where = f'{REFS_FILE.name} entry {position}'
        ref_id = as_int(require(ref, 'ref_id', where), where, 'ref_id')
        where = f'{REFS_FILE.name} ref_id {ref_id}'
        if ref_id in seen_refs:
            raise ConverterError(f'{where}: duplicate ref_id')
        seen_refs.add(ref_id)
        split = require(ref, 'split', where)
        if split not in SPLITS:
            raise ConverterError(f'{where}: unknown split {split!r} (field \'split\'; expected '
                                 f'one of {", ".join(SPLITS)})')
        ann_id = as_int(require(ref, 'ann_id', where), where, 'ann_id')
        image_id = as_int(require(ref, 'image_id', where), where, 'image_id')
        annotation = instances.annotations.get(ann_id)
        if annotation is None:
            raise ConverterError(f'{where}: no annotation with id {ann_id} (field \'ann_id\') '
                                 f'in {instances.path.name}')
        where = f'{where} (annotation {ann_id})'
        ann_image_id = as_int(require(annotation, 'image_id', where), where, 'image_id')
        if ann_image_id != image_id:
            raise ConverterError(f'{where}: annotation image_id {ann_image_id} differs from the '
                                 f'reference image_id {image_id}')
        category_id, category = instances.category_name(annotation, where)
        if 'category_id' in ref and ref['category_id'] != category_id:
            summary.warnings.append(
                f'ref_id {ref_id}: category_id {ref["category_id"]!r} differs from the '
                f'annotation\'s categories_id {category_id}; using {category!r}')
        if image_id not in images:
            images[image_id] = _check_image(instances, image_id, image_dir, where, writer,
                                            verify_images)
        planned.append(_Reference(where, ref_id, ann_id, image_id, split, category,
                                  images[image_id], _sentences(ref, where)))
    return planned


def _sentences(ref: Dict[str, Any], where: str) -> List[Tuple[int, str]]:
    """``(sent_id, stripped raw text)`` of every sentence of a reference."""
    sentences = require(ref, 'sentences', where)
    if not isinstance(sentences, list) or not sentences:
        raise ConverterError(f'{where}: field \'sentences\' must be a non-empty list')
    sent_ids = ref.get('sent_ids') or []
    result = []
    for index, sentence in enumerate(sentences):
        at = f'{where} sentences[{index}]'
        raw = require(sentence, 'raw', at)
        if not isinstance(raw, str):
            raise ConverterError(f'{at}: field \'raw\' must be a string, got {raw!r}')
        if not raw.strip():
            raise ConverterError(f'{at}: empty expression (field \'raw\' is {raw!r})')
        if 'sent_id' in sentence:
            sent_id = sentence['sent_id']
        elif index < len(sent_ids):
            sent_id = sent_ids[index]
        else:
            raise ConverterError(f'{at}: no sent_id (neither in the sentence nor in sent_ids)')
        result.append((as_int(sent_id, at, 'sent_id'), raw.strip()))
    return result


def _check_image(instances: _Instances, image_id: int, image_dir: Path, where: str,
                 writer: OutputWriter, verify: bool) -> _Image:
    """Find an image's file and check its size against ``instances.json``."""
    entry = instances.images.get(image_id)
    if entry is None:
        raise ConverterError(f'{where}: no image with id {image_id} (field \'image_id\') in '
                             f'{instances.path.name}')
    at = f'{instances.path.name} image id {image_id}'
    file_name = check_file_name(require(entry, 'file_name', at), at)
    height = as_int(require(entry, 'height', at), at, 'height')
    width = as_int(require(entry, 'width', at), at, 'width')
    path = image_dir / file_name
    file_height, file_width = read_image_size(path, f'{where}, image {file_name}', verify)
    if (file_height, file_width) != (height, width):
        raise ConverterError(f'{where}: image {path} is {file_height}x{file_width} (HxW) but '
                             f'{instances.path.name} says {height}x{width}')
    writer.protect(path)
    return _Image(file_name, path, height, width)


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """Binary mask of an RRSIS-D segmentation: the union of its parts.

    Args:
        segmentation: A list of COCO RLE dicts (``size`` [h, w], ``counts`` a string or a
            list of run lengths) and/or polygons (flat ``[x1, y1, x2, y2, ...]`` lists).
        height, width: Image size; every RLE must have this size.
        where: Record description used in error messages.

    Returns:
        uint8 array (height, width), C order, 1 where any part covers the pixel.
    """
    parts = [segmentation] if isinstance(segmentation, dict) else segmentation
    if not isinstance(parts, list) or not parts:
        raise ConverterError(f'{where}: field \'segmentation\' must be a non-empty list of RLE '
                             f'dicts or polygons, got {_short(segmentation)}')
    union = np.zeros((height, width), dtype=bool)
    for index, part in enumerate(parts):
        at = f'{where} segmentation[{index}]'
        if isinstance(part, dict):
            union |= _decode_rle(part, height, width, at) > 0
        elif isinstance(part, list):
            union |= _decode_polygon(part, height, width, at) > 0
        else:
            raise ConverterError(f'{at}: expected an RLE dict or a polygon, got {_short(part)}')
    return union.astype(np.uint8)


def _decode_rle(rle: Dict[str, Any], height: int, width: int, where: str) -> np.ndarray:
    size = require(rle, 'size', where)
    counts = require(rle, 'counts', where)
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        raise ConverterError(f'{where}: bad RLE: mask size {size!r} does not match the image '
                             f'size [{height}, {width}]')
    if isinstance(counts, list):  # uncompressed run lengths
        if (not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
                or sum(counts) != height * width):
            raise ConverterError(f'{where}: bad RLE: run lengths must be non-negative integers '
                                 f'summing to {height * width}')
        return mask_utils.decode(mask_utils.frPyObjects([rle], height, width))[:, :, 0]
    if isinstance(counts, str):
        try:
            counts = counts.encode('ascii')
        except UnicodeEncodeError as err:
            raise ConverterError(f'{where}: bad RLE: counts is not ASCII') from err
    if not isinstance(counts, bytes):
        raise ConverterError(f'{where}: bad RLE: counts must be a string or a list, got '
                             f'{_short(counts)}')
    compressed = {'size': [height, width], 'counts': counts}
    try:
        mask = mask_utils.decode(compressed)
    except ValueError as err:
        raise ConverterError(f'{where}: bad RLE counts: {err}') from err
    # pycocotools pads RLE strings that cover too few pixels; a valid (canonical) RLE
    # re-encodes to exactly the same string.
    if mask_utils.encode(np.asfortranarray(mask))['counts'] != counts:
        raise ConverterError(f'{where}: bad RLE counts: they do not describe exactly '
                             f'{height}x{width} pixels')
    return mask


def _decode_polygon(polygon: List[Any], height: int, width: int, where: str) -> np.ndarray:
    if (len(polygon) < 6 or len(polygon) % 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) for v in polygon)):
        raise ConverterError(f'{where}: bad polygon: expected at least 3 (x, y) pairs of finite '
                             f'numbers, got {_short(polygon)}')
    rles = mask_utils.frPyObjects([[float(v) for v in polygon]], height, width)
    return mask_utils.decode(rles)[:, :, 0]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'
