"""RRSIS-D release layout -> the project's annotation format (see :mod:`.common`).

Release layout under ``src``::

    rrsisd/refs(unc).p             # pickle: list of reference dicts
    rrsisd/instances.json          # images / annotations (category key: categories_id) / categories
    images/rrsisd/JPEGImages/<file_name>

One mask per annotation (``masks/<ann_id>.png``), one record per (reference, sentence);
``ref_id``, ``sent_id`` and ``image_id`` are the release's own ids. A malformed reference is an
error naming the file, reference and field; with ``skip_bad`` it is left out (with all its
sentences) and counted by reason in the summary instead. Segmentations are decoded by
pycocotools (:mod:`.coco_masks`): every RLE it reads correctly converts, also an uncompressed
one (``counts`` a list of run lengths) and a compressed string other than the one pycocotools
would write; only RLEs whose runs do not cover exactly the image are refused. ``refs(unc).p`` is
a pickle, which can run code when loaded: convert only a release you trust.
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from .coco_masks import decode_segmentation
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
                                 f'not in the categories of {self.path.name})',
                                 'unknown category')
        name = require(category, 'name', f'{self.path.name} category id {category_id}')
        return category_id, str(name)


def convert_rrsisd(src: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False,
                   copy_images: bool = False, verify_images: bool = True,
                   progress: bool = False, absolute_paths: bool = False,
                   skip_bad: bool = False) -> ConversionSummary:
    """Convert an RRSIS-D release into ``out`` (``{train,val,test}.jsonl`` + ``masks/``).

    Args:
        src: Release root (holding ``rrsisd/`` and ``images/``); only read.
        out: Output directory; must be absent or empty unless ``overwrite``.
        overwrite: Replace an earlier conversion in ``out`` as a whole (after success).
        copy_images: Copy images to ``out/images/`` (paths relative to ``out``).
        verify_images: Decode every image fully (catches truncated files); else read headers.
        progress: Show a progress bar on stderr.
        absolute_paths: Absolute source image paths instead of paths relative to ``out``.
        skip_bad: Leave out malformed references (counted by reason in the summary)
            instead of stopping at the first one.

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
    writer = OutputWriter(out, src_root, overwrite=overwrite, copy_images=copy_images,
                          absolute_paths=absolute_paths)
    summary = ConversionSummary('RRSIS-D', str(writer.out_dir))
    instances = _Instances(instances_path)
    refs = _load_refs(refs_path)

    def skip_or_raise(where: str, err: ConverterError) -> None:
        if not skip_bad:
            raise err
        summary.skipped.append((where, err.reason))

    references = _plan_references(refs, instances, image_dir, summary, verify_images,
                                  skip_or_raise)
    written_images: set[int] = set()
    with writer:
        masks: Dict[int, str | ConverterError] = {}  # ann_id -> mask path or its error
        for ref in optional_progress(references, progress, 'RRSIS-D'):
            image = ref.image
            if ref.ann_id not in masks:
                try:
                    masks[ref.ann_id] = _write_mask(instances, ref, writer, summary)
                except ConverterError as err:
                    masks[ref.ann_id] = err
            try:
                mask = masks[ref.ann_id]
                if isinstance(mask, ConverterError):
                    raise mask
                img_path = writer.image_path(image.path, image.file_name)
            except ConverterError as err:
                skip_or_raise(f'{REFS_FILE.name} ref_id {ref.ref_id}', err)
                continue
            written_images.add(ref.image_id)
            summary.references[ref.split] += 1
            for sent_id, expression in ref.sentences:
                summary.sentences[ref.split] += 1
                writer.add_record(dict(
                    img_path=img_path, seg_map_path=mask, expression=expression,
                    ref_id=ref.ref_id, sent_id=sent_id, image_id=ref.image_id,
                    category=ref.category, split=ref.split, height=image.height,
                    width=image.width))
        writer.commit()
    summary.warnings.extend(writer.warnings)
    summary.images = len(written_images)
    summary.masks = writer.masks_written
    return summary


def _write_mask(instances: _Instances, ref: _Reference, writer: OutputWriter,
                summary: ConversionSummary) -> str:
    """Decode a reference's annotation and write it as ``masks/<ann_id>.png``."""
    where = f'{instances.path.name} annotation {ref.ann_id} (ref_id {ref.ref_id})'
    segmentation = require(instances.annotations[ref.ann_id], 'segmentation', where)
    mask = decode_segmentation(segmentation, ref.image.height, ref.image.width, where)
    if not mask.any():
        summary.empty_masks.append(f'ann {ref.ann_id}')
    return writer.write_mask(str(ref.ann_id), mask)


def _plan_references(refs: List[Dict[str, Any]], instances: _Instances, image_dir: Path,
                     summary: ConversionSummary, verify_images: bool,
                     skip_or_raise: Callable[[str, ConverterError], None]
                     ) -> List[_Reference]:
    """Check every reference's metadata and image before anything is written."""
    images: Dict[int, _Image | ConverterError] = {}
    seen_refs: set[int] = set()
    planned = []
    for position, ref in enumerate(refs):
        where = f'{REFS_FILE.name} entry {position}'
        try:
            ref_id = as_int(require(ref, 'ref_id', where), where, 'ref_id')
            where = f'{REFS_FILE.name} ref_id {ref_id}'
            if ref_id in seen_refs:
                raise ConverterError(f'{where}: duplicate ref_id', 'duplicate ref_id')
            seen_refs.add(ref_id)
            planned.append(_plan_reference(ref, ref_id, where, instances, image_dir, images,
                                           summary, verify_images))
        except ConverterError as err:
            skip_or_raise(where, err)
    return planned


def _plan_reference(ref: Dict[str, Any], ref_id: int, where: str, instances: _Instances,
                    image_dir: Path, images: Dict[int, _Image | ConverterError],
                    summary: ConversionSummary, verify_images: bool) -> _Reference:
    split = require(ref, 'split', where)
    if split not in SPLITS:
        raise ConverterError(f'{where}: unknown split {split!r} (field \'split\'; expected '
                             f'one of {", ".join(SPLITS)})', 'unknown split')
    ann_id = as_int(require(ref, 'ann_id', where), where, 'ann_id')
    image_id = as_int(require(ref, 'image_id', where), where, 'image_id')
    annotation = instances.annotations.get(ann_id)
    if annotation is None:
        raise ConverterError(f'{where}: no annotation with id {ann_id} (field \'ann_id\') '
                             f'in {instances.path.name}', 'unknown annotation')
    where = f'{where} (annotation {ann_id})'
    ann_image_id = as_int(require(annotation, 'image_id', where), where, 'image_id')
    if ann_image_id != image_id:
        raise ConverterError(f'{where}: annotation image_id {ann_image_id} differs from the '
                             f'reference image_id {image_id}', 'image_id mismatch')
    category_id, category = instances.category_name(annotation, where)
    sentences = _sentences(ref, where)
    if image_id not in images:
        try:
            images[image_id] = _check_image(instances, image_id, image_dir, where,
                                            verify_images)
        except ConverterError as err:
            images[image_id] = err
    image = images[image_id]
    if isinstance(image, ConverterError):
        raise image
    if 'category_id' in ref and ref['category_id'] != category_id:
        summary.warnings.append(
            f'ref_id {ref_id}: category_id {ref["category_id"]!r} differs from the '
            f'annotation\'s categories_id {category_id}; using {category!r}')
    return _Reference(where, ref_id, ann_id, image_id, split, category, image, sentences)


def _sentences(ref: Dict[str, Any], where: str) -> List[Tuple[int, str]]:
    """``(sent_id, stripped raw text)`` of every sentence of a reference."""
    sentences = require(ref, 'sentences', where)
    if not isinstance(sentences, list) or not sentences:
        raise ConverterError(f'{where}: field \'sentences\' must be a non-empty list',
                             'no sentences')
    sent_ids = ref.get('sent_ids') or []
    result = []
    for index, sentence in enumerate(sentences):
        at = f'{where} sentences[{index}]'
        raw = require(sentence, 'raw', at)
        if not isinstance(raw, str):
            raise ConverterError(f'{at}: field \'raw\' must be a string, got {raw!r}',
                                 'bad raw')
        if not raw.strip():
            raise ConverterError(f'{at}: empty expression (field \'raw\' is {raw!r})',
                                 'empty expression')
        if 'sent_id' in sentence:
            sent_id = sentence['sent_id']
        elif index < len(sent_ids):
            sent_id = sent_ids[index]
        else:
            raise ConverterError(f'{at}: no sent_id (neither in the sentence nor in sent_ids)',
                                 'missing sent_id')
        sent_id = as_int(sent_id, at, 'sent_id')
        if any(sent_id == seen for seen, _ in result):
            raise ConverterError(f'{at}: duplicate sent_id {sent_id} (field \'sent_id\'; '
                                 'each sentence of a reference needs its own)',
                                 'duplicate sent_id')
        result.append((sent_id, raw.strip()))
    return result


def _check_image(instances: _Instances, image_id: int, image_dir: Path, where: str,
                 verify: bool) -> _Image:
    """Find an image's file and check its size against ``instances.json``."""
    entry = instances.images.get(image_id)
    if entry is None:
        raise ConverterError(f'{where}: no image with id {image_id} (field \'image_id\') in '
                             f'{instances.path.name}', 'unknown image')
    at = f'{instances.path.name} image id {image_id}'
    file_name = check_file_name(require(entry, 'file_name', at), at)
    height = as_int(require(entry, 'height', at), at, 'height')
    width = as_int(require(entry, 'width', at), at, 'width')
    path = image_dir / file_name
    file_height, file_width = read_image_size(path, f'{where}, image {file_name}', verify)
    if (file_height, file_width) != (height, width):
        raise ConverterError(f'{where}: image {path} is {file_height}x{file_width} (HxW) but '
                             f'{instances.path.name} says {height}x{width}',
                             'image size mismatch')
    return _Image(file_name, path, height, width)
