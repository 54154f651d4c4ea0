"""Pieces shared by the benchmark converters: error type, summary and output writer.

Output layout written by every converter (``OUT`` is the output directory)::

    OUT/train.jsonl, OUT/val.jsonl, OUT/test.jsonl   # always all three, possibly empty
    OUT/masks/<name>.png                             # uint8 (H, W), 0 background, 1 referred object
    OUT/images/<file>                                # only with ``copy_images``

One JSON object per (reference, sentence) pair, keys in :data:`RECORD_KEYS` order, records in
the order of the source files. A split without records still gets its (empty) file. The
JSON-lines files are written last, so they exist only after a successful conversion.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
from PIL import Image

SPLITS = ('train', 'val', 'test')
MASK_DIR = 'masks'
IMAGE_DIR = 'images'
RECORD_KEYS = ('img_path', 'seg_map_path', 'expression', 'ref_id', 'sent_id', 'image_id',
               'category', 'split', 'height', 'width')
_MAX_LISTED = 5  # examples shown per kind of problem in the printed summary


class ConverterError(ValueError):
    """Malformed input or refused output; the message names the file, record and field."""


def _per_split() -> Dict[str, int]:
    return dict.fromkeys(SPLITS, 0)


@dataclass
class ConversionSummary:
    """What a conversion wrote, per split, and what it noticed on the way.

    Attributes:
        dataset: Data set name, e.g. ``'RRSIS-D'``.
        out_dir: Absolute output directory.
        references: Referred objects (refs / phrase lines) per split.
        sentences: Records (reference, sentence pairs) per split.
        images: Distinct source images over all splits.
        masks: Mask files written.
        empty_masks: Masks with no foreground pixel (written anyway), by name.
        skipped: ``(where, reason)`` of input records left out on purpose.
        warnings: Oddities that did not stop the conversion.
    """

    dataset: str
    out_dir: str
    references: Dict[str, int] = field(default_factory=_per_split)
    sentences: Dict[str, int] = field(default_factory=_per_split)
    images: int = 0
    masks: int = 0
    empty_masks: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def format(self) -> str:
        """Multi-line, human-readable report."""
        lines = [f'{self.dataset} converted into {self.out_dir}',
                 f'  {"split":<6} {"references":>10} {"sentences":>10}']
        for split in SPLITS:
            lines.append(f'  {split:<6} {self.references[split]:>10} {self.sentences[split]:>10}')
        lines.append(f'  {"total":<6} {sum(self.references.values()):>10} '
                     f'{sum(self.sentences.values()):>10}')
        lines.append(f'  distinct images: {self.images}')
        lines.append(f'  masks written: {self.masks}, empty masks: {len(self.empty_masks)}'
                     + _examples(self.empty_masks))
        if self.skipped:
            reasons = Counter(reason for _, reason in self.skipped)
            lines.append(f'  skipped records: {len(self.skipped)}')
            for reason, count in sorted(reasons.items()):
                where = [w for w, r in self.skipped if r == reason]
                lines.append(f'    {reason}: {count}' + _examples(where))
        else:
            lines.append('  skipped records: 0')
        for warning in self.warnings[:_MAX_LISTED]:
            lines.append(f'  warning: {warning}')
        if len(self.warnings) > _MAX_LISTED:
            lines.append(f'  ... and {len(self.warnings) - _MAX_LISTED} more warnings')
        return '\n'.join(lines)

    def __str__(self) -> str:
        return self.format()


def _examples(items: List[str]) -> str:
    if not items:
        return ''
    shown = ', '.join(items[:_MAX_LISTED])
    more = ', ...' if len(items) > _MAX_LISTED else ''
    return f' ({shown}{more})'


def check_file_name(file_name: Any, where: str) -> str:
    """Return ``file_name`` if it is a plain file name (no folder part), else raise."""
    if (not isinstance(file_name, str) or file_name in ('', '.', '..')
            or Path(file_name).name != file_name or '\\' in file_name):
        raise ConverterError(f'{where}: file name {file_name!r} is not a plain file name')
    return file_name


def read_image_size(path: Path, where: str, verify: bool = True) -> Tuple[int, int]:
    """``(height, width)`` of an image file from its header.

    Args:
        path: Image file.
        where: Record description used in error messages.
        verify: Also decode the whole image, to catch truncated or corrupt files.
    """
    if not path.is_file():
        raise ConverterError(f'{where}: missing image file {path}')
    try:
        with Image.open(path) as image:
            width, height = image.size
            if verify:
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ConverterError(f'{where}: cannot decode image file {path}: {err}') from err
    return height, width


class OutputWriter:
    """Writes the converted records, masks and (optionally) image copies into ``out_dir``.

    Refuses a non-empty ``out_dir`` unless ``overwrite``; even then it only replaces the
    files it writes itself, each through a temporary file and ``os.replace`` (a symlink in
    the way is replaced, never followed), and never a path registered with :meth:`protect`
    (the source files). The JSON-lines files are written last, by :meth:`finish`.
    """

    def __init__(self, out_dir: str | os.PathLike, source_root: str | os.PathLike, *,
                 overwrite: bool = False, copy_images: bool = False) -> None:
        self.out_dir = Path(os.path.abspath(out_dir))
        self.copy_images = copy_images
        source = Path(os.path.abspath(source_root))
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ConverterError(f'output path {self.out_dir} exists and is not a directory')
        if self.out_dir == source or (self.out_dir.exists() and source.exists()
                                      and self.out_dir.samefile(source)):
            raise ConverterError(f'output directory {self.out_dir} is the source directory; '
                                 'choose another --out')
        if self.out_dir.is_dir() and any(self.out_dir.iterdir()) and not overwrite:
            raise ConverterError(
                f'output directory {self.out_dir} is not empty; pass --overwrite '
                '(overwrite=True) to replace the files this converter writes there')
        self._protected: set[Path] = set()
        self._records: Dict[str, List[Dict[str, Any]]] = {split: [] for split in SPLITS}
        self._copied: Dict[str, Path] = {}
        self.masks_written = 0

    def protect(self, path: Path) -> None:
        """Register a source file that must never be written."""
        self._protected.add(path.resolve())

    def write_mask(self, name: str, mask: np.ndarray) -> str:
        """Write a binary mask (H, W) uint8 0/1 as ``masks/<name>.png``; return that path."""
        relative = f'{MASK_DIR}/{name}.png'
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(buffer, format='PNG')
        self._replace(relative, lambda handle: handle.write(buffer.getvalue()))
        self.masks_written += 1
        return relative

    def image_path(self, source: Path, file_name: str) -> str:
        """Path of an image for the records: absolute source path, or the copy's relative one."""
        if not self.copy_images:
            return os.path.abspath(source)
        previous = self._copied.get(file_name)
        if previous is None:
            def copy(handle: Any) -> None:
                with open(source, 'rb') as reader:
                    shutil.copyfileobj(reader, handle)
            self._replace(f'{IMAGE_DIR}/{file_name}', copy)
            self._copied[file_name] = source
        elif previous != source:
            raise ConverterError(f'two source images share the file name {file_name!r}: '
                                 f'{previous} and {source}; cannot copy both into {IMAGE_DIR}/')
        return f'{IMAGE_DIR}/{file_name}'

    def add_record(self, record: Dict[str, Any]) -> None:
        """Queue one record (keys :data:`RECORD_KEYS`) for its split's JSON-lines file."""
        self._records[record['split']].append({key: record[key] for key in RECORD_KEYS})

    def finish(self) -> None:
        """Write ``<split>.jsonl`` for every split (an empty file for a split with no record)."""
        for split, records in self._records.items():
            text = ''.join(json.dumps(rec) + '\n' for rec in records)
            self._replace(f'{split}.jsonl', lambda handle, t=text: handle.write(t.encode('utf-8')))

    def _replace(self, relative: str, write: Callable[[Any], Any]) -> None:
        target = self.out_dir / relative
        if target.resolve() in self._protected:
            raise ConverterError(f'refusing to write {target}: it is a source file')
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = None
        try:
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f'.{target.name}.',
                                             suffix='.tmp', delete=False) as handle:
                temporary = Path(handle.name)
                write(handle)
            os.replace(temporary, target)
        except BaseException:
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            raise


def optional_progress(items: Any, enabled: bool, description: str) -> Any:
    """Wrap ``items`` in a tqdm bar on stderr when ``enabled``."""
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=description, unit='ref')


def run_cli(convert: Callable[..., ConversionSummary], dataset: str, layout: str,
            argv: List[str] | None = None) -> int:
    """Command-line front end shared by ``data_prep/*.py``; returns the exit status.

    Prints the summary on success, and only ``error: <message>`` (no traceback) on a
    :class:`ConverterError`.
    """
    parser = argparse.ArgumentParser(
        description=f'Convert a {dataset} release into fianet-mmseg annotations: '
                    'OUT/{train,val,test}.jsonl and OUT/masks/*.png. The source is only read.',
        epilog=f'Release layout expected under --src: {layout}')
    parser.add_argument('--src', required=True, help=f'root of the {dataset} release')
    parser.add_argument('--out', required=True, help='output directory (empty or new)')
    parser.add_argument('--overwrite', action='store_true',
                        help='allow a non-empty --out; replaces only files this tool writes')
    parser.add_argument('--copy-images', action='store_true',
                        help='copy images into OUT/images/ (paths relative to OUT); default: '
                             'records hold absolute paths of the source images')
    parser.add_argument('--no-verify-images', action='store_true',
                        help='read only image headers instead of decoding every image')
    args = parser.parse_args(argv)
    try:
        summary = convert(args.src, args.out, overwrite=args.overwrite,
                          copy_images=args.copy_images,
                          verify_images=not args.no_verify_images,
                          progress=sys.stderr.isatty())
    except ConverterError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(summary.format())
    return 0


def as_int(value: Any, where: str, field_name: str) -> int:
    """``value`` as an int (bools and non-integral values refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConverterError(f'{where}: field {field_name!r} must be an integer, got {value!r}')
    return int(value)


def require(record: Dict[str, Any], key: str, where: str) -> Any:
    """``record[key]``, or a :class:`ConverterError` naming the missing field."""
    if not isinstance(record, dict):
        raise ConverterError(f'{where}: expected a dict, got {type(record).__name__}')
    if key not in record:
        raise ConverterError(f'{where}: missing field {key!r}')
    return record[key]


__all__ = ['SPLITS', 'RECORD_KEYS', 'ConverterError', 'ConversionSummary', 'OutputWriter',
           'read_image_size', 'check_file_name', 'optional_progress', 'as_int', 'require',
           'run_cli']
