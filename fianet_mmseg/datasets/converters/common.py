"""Pieces shared by the benchmark converters: errors, summary, output writer, command line.

Output layout written by every converter (``OUT`` is the output directory)::

    OUT/train.jsonl, OUT/val.jsonl, OUT/test.jsonl   # always all three, possibly empty
    OUT/masks/<name>.png                             # uint8 (H, W), 0 background, 1 referred object
    OUT/images/<file>                                # only with ``copy_images``

One JSON object per (reference, sentence) pair, keys in :data:`RECORD_KEYS` order, records in
the order of the source files. A split without records still gets its (empty) file.

Paths in the records: ``seg_map_path`` (and ``img_path`` of copied images) are relative to
``OUT``; ``img_path`` of a source image is relative to ``OUT`` too (it climbs out of ``OUT``
with ``..``), computed between the real locations (symlinks resolved) of ``OUT`` and of the
image's folder, so ``OUT`` and the release can move together. With ``absolute_paths`` source
images get absolute paths instead (``OUT`` can then move alone). ``RefSegDataset`` resolves a
relative path against the folder of the JSON-lines file, i.e. ``OUT`` (its ``data_root``).

A conversion is built in a temporary sibling folder of ``OUT`` (same parent, so renaming is
atomic on one file system) and moved to ``OUT`` only when it has succeeded: an existing ``OUT``
(empty, or an earlier conversion replaced with ``overwrite``) is renamed away, the new folder
renamed in, the old one deleted. A failed conversion leaves ``OUT`` as it was and no temporary
folder. The source release is only read; ``OUT`` may not be, contain or lie inside it.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
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
    """Malformed input or refused output; the message names the file, record and field.

    Args:
        message: The full explanation.
        reason: Short kind of problem (e.g. ``'bad RLE'``), the key under which
            ``skip_bad`` counts a left-out record in the summary.
    """

    def __init__(self, message: str, reason: str = 'malformed record') -> None:
        super().__init__(message)
        self.reason = reason


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
        skipped: ``(where, reason)`` of input records left out (blank lines; with
            ``skip_bad`` every malformed record).
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

    def skip_counts(self) -> Dict[str, int]:
        """Number of left-out records per reason."""
        return dict(Counter(reason for _, reason in self.skipped))

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
        lines.append(f'  skipped records: {len(self.skipped)}')
        for reason, count in sorted(self.skip_counts().items()):
            where = [w for w, r in self.skipped if r == reason]
            lines.append(f'    {reason}: {count}' + _examples(where))
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
        raise ConverterError(f'{where}: file name {file_name!r} is not a plain file name',
                             'bad file name')
    return file_name


def read_image_size(path: Path, where: str, verify: bool = True,
                    kind: str = 'image') -> Tuple[int, int]:
    """``(height, width)`` of an image file from its header.

    Args:
        path: Image file.
        where: Record description used in error messages.
        verify: Also decode the whole image, to catch truncated or corrupt files.
        kind: What the file is (``'image'``, ``'mask'``), for the messages.
    """
    if not path.is_file():
        raise ConverterError(f'{where}: missing {kind} file {path}', f'missing {kind} file')
    try:
        with Image.open(path) as image:
            width, height = image.size
            if verify:
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ConverterError(f'{where}: cannot decode {kind} file {path}: {err}',
                             f'cannot decode {kind}') from err
    return height, width


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class OutputWriter:
    """Builds a conversion in a temporary sibling of ``out_dir`` and swaps it in at the end.

    Use as a context manager: the temporary folder is made on entry and removed on leaving
    unless :meth:`commit` moved it to ``out_dir``. See the module docstring for the rules.

    Args:
        out_dir: Output directory (followed if it is a symlink: the real folder is replaced).
        source_root: Release root; ``out_dir`` may not be it, lie inside it or contain it.
        overwrite: Replace an existing non-empty ``out_dir`` that holds an earlier conversion
            (its ``{train,val,test}.jsonl``) as a whole. Any other non-empty folder is refused.
        copy_images: Copy images into ``OUT/images/``.
        absolute_paths: Absolute ``img_path`` for (non-copied) source images.
    """

    def __init__(self, out_dir: str | os.PathLike, source_root: str | os.PathLike, *,
                 overwrite: bool = False, copy_images: bool = False,
                 absolute_paths: bool = False) -> None:
        if copy_images and absolute_paths:
            raise ConverterError('copy_images and absolute_paths exclude each other: copied '
                                 'images are always stored relative to the output directory')
        self.out_dir = Path(os.path.abspath(out_dir))
        self.target = Path(os.path.realpath(out_dir))
        self.copy_images = copy_images
        self.absolute_paths = absolute_paths
        source = Path(os.path.realpath(source_root))
        if self.target.exists() and not self.target.is_dir():
            raise ConverterError(f'output path {self.out_dir} exists and is not a directory')
        if self.target == source:
            raise ConverterError(f'output directory {self.out_dir} is the source directory; '
                                 'choose another --out')
        if _inside(self.target, source):
            raise ConverterError(f'output directory {self.out_dir} is inside the source '
                                 f'directory {source}; choose an --out outside the release')
        if _inside(source, self.target):
            raise ConverterError(f'output directory {self.out_dir} contains the source '
                                 f'directory {source}; choose another --out')
        if self.target.is_dir() and any(self.target.iterdir()):
            if not overwrite:
                raise ConverterError(
                    f'output directory {self.out_dir} is not empty; pass --overwrite '
                    '(overwrite=True) to replace an earlier conversion there as a whole')
            missing = [f'{s}.jsonl' for s in SPLITS if not (self.target / f'{s}.jsonl').is_file()]
            if missing:
                raise ConverterError(
                    f'output directory {self.out_dir} is not empty and does not hold an earlier '
                    f'conversion (no {", ".join(missing)}); --overwrite only replaces an '
                    'earlier conversion: empty or remove the folder yourself, or choose another '
                    '--out')
        if os.path.ismount(self.target):
            raise ConverterError(f'output directory {self.out_dir} is a mount point, which '
                                 'cannot be replaced; choose a folder inside it')
        self.work_dir: Path | None = None
        self.warnings: List[str] = []
        self._records: Dict[str, List[Dict[str, Any]]] = {split: [] for split in SPLITS}
        self._copied: Dict[str, Path] = {}
        self._committed = False
        self.masks_written = 0

    def __enter__(self) -> OutputWriter:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.work_dir = self._new_sibling('converting')
            (self.work_dir / MASK_DIR).mkdir()
        except OSError as err:
            self._remove_work_dir()
            raise ConverterError(f'cannot create a folder next to {self.out_dir}: {err}') from err
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._committed:
            self._remove_work_dir()

    def _remove_work_dir(self) -> None:
        if self.work_dir is not None and self.work_dir.exists():
            shutil.rmtree(self.work_dir)

    def _new_sibling(self, kind: str) -> Path:
        """A new empty folder ``.<OUT name>.<kind>-<random>`` next to ``OUT``."""
        for _ in range(100):
            candidate = self.target.with_name(
                f'.{self.target.name}.{kind}-{secrets.token_hex(4)}')
            try:
                candidate.mkdir()  # umask-default permissions, as for a plain mkdir
                return candidate
            except FileExistsError:
                continue
        raise ConverterError(f'cannot find a free temporary name next to {self.out_dir}')

    def _path(self, relative: str) -> Path:
        if self.work_dir is None:
            raise RuntimeError('OutputWriter is used outside its "with" block')
        return self.work_dir / relative

    def write_mask(self, name: str, mask: np.ndarray) -> str:
        """Write a binary mask (H, W) uint8 0/1 as ``masks/<name>.png``; return that path."""
        relative = f'{MASK_DIR}/{name}.png'
        with open(self._path(relative), 'xb') as handle:
            Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(handle, format='PNG')
        self.masks_written += 1
        return relative

    def image_path(self, source: Path, file_name: str) -> str:
        """``img_path`` of a source image for the records (copying it with ``copy_images``)."""
        if self.copy_images:
            previous = self._copied.get(file_name)
            if previous is None:
                copy = self._path(f'{IMAGE_DIR}/{file_name}')
                copy.parent.mkdir(exist_ok=True)
                shutil.copyfile(source, copy)
                self._copied[file_name] = source
            elif previous != source:
                raise ConverterError(f'two source images share the file name {file_name!r}: '
                                     f'{previous} and {source}; cannot copy both into '
                                     f'{IMAGE_DIR}/', 'image file name shared')
            return f'{IMAGE_DIR}/{file_name}'
        if self.absolute_paths:
            return os.path.abspath(source)
        # The image folder's real place (a symlinked file stays a link to follow).
        real = os.path.join(os.path.realpath(source.parent), source.name)
        return Path(os.path.relpath(real, self.target)).as_posix()

    def add_record(self, record: Dict[str, Any]) -> None:
        """Queue one record (keys :data:`RECORD_KEYS`) for its split's JSON-lines file."""
        self._records[record['split']].append({key: record[key] for key in RECORD_KEYS})

    def commit(self) -> None:
        """Write ``<split>.jsonl`` for every split and move the conversion to ``OUT``."""
        for split, records in self._records.items():
            with open(self._path(f'{split}.jsonl'), 'x', encoding='utf-8') as handle:
                handle.writelines(json.dumps(rec) + '\n' for rec in records)
        work_dir = self._path('')  # the temporary folder (raises outside the "with" block)
        holder = None
        try:
            if self.target.exists():
                holder = self._new_sibling('replaced')
                os.rename(self.target, holder / self.target.name)
            try:
                os.rename(work_dir, self.target)
            except OSError:
                if holder is not None:  # put the previous output back
                    os.rename(holder / self.target.name, self.target)
                raise
        except OSError as err:
            if holder is not None and not any(holder.iterdir()):
                holder.rmdir()
            raise ConverterError(f'cannot move the conversion into {self.out_dir}: {err}') \
                from err
        self._committed = True
        if holder is not None:
            try:
                shutil.rmtree(holder)
            except OSError as err:
                self.warnings.append(f'could not delete the previous output, moved to '
                                     f'{holder}: {err}')


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
    parser.add_argument('--out', required=True,
                        help='output directory (new or empty; not inside --src)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier conversion in --out as a whole (no file of it '
                             'survives); only once the new conversion has succeeded')
    paths = parser.add_mutually_exclusive_group()
    paths.add_argument('--copy-images', action='store_true',
                       help='copy images into OUT/images/ (OUT then moves on its own)')
    paths.add_argument('--absolute-paths', action='store_true',
                       help='store absolute paths of the source images (default: relative to '
                            'OUT, so OUT and the release can move together); masks are always '
                            'relative to OUT')
    parser.add_argument('--skip-bad', action='store_true',
                        help='leave out malformed records, counted by reason in the summary '
                             '(default: stop at the first one, naming it)')
    parser.add_argument('--no-verify-images', action='store_true',
                        help='read only image headers instead of decoding every image')
    args = parser.parse_args(argv)
    try:
        summary = convert(args.src, args.out, overwrite=args.overwrite,
                          copy_images=args.copy_images, absolute_paths=args.absolute_paths,
                          skip_bad=args.skip_bad, verify_images=not args.no_verify_images,
                          progress=sys.stderr.isatty())
    except ConverterError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(summary.format())
    return 0


def as_int(value: Any, where: str, field_name: str) -> int:
    """``value`` as an int (bools and non-integral values refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConverterError(f'{where}: field {field_name!r} must be an integer, got {value!r}',
                             f'bad {field_name}')
    return int(value)


def require(record: Dict[str, Any], key: str, where: str) -> Any:
    """``record[key]``, or a :class:`ConverterError` naming the missing field."""
    if not isinstance(record, dict):
        raise ConverterError(f'{where}: expected a dict, got {type(record).__name__}',
                             'not a dict')
    if key not in record:
        raise ConverterError(f'{where}: missing field {key!r}', f'missing {key}')
    return record[key]


__all__ = ['SPLITS', 'RECORD_KEYS', 'ConverterError', 'ConversionSummary', 'OutputWriter',
           'read_image_size', 'check_file_name', 'optional_progress', 'as_int', 'require',
           'run_cli']
