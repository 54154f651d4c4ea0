"""RefSegRS release layout -> the project's annotation format (see :mod:`.common`).

Release layout under ``src``::

    output_phrase_{train,val,test}.txt   # lines "<id> <expression words...>"
    images/<id>.tif
    masks/<id>.tif                       # 8-bit, soft edges; foreground = value > 50

Each phrase line is one reference with one sentence, and ``image_id`` is the ``<id>`` string.
Ids, unique over the three splits: ``ref_id = sent_id = SPLIT_ID_OFFSET[split] + line``, with
``line`` the 0-based line number in the split's file and offsets train 0, val 100000,
test 200000 (so val line 0 is 100000, test line 4 is 200004); a split file of more than
100000 lines is refused. One mask per image id (``masks/<id>.png``). Blank (whitespace-only)
lines are skipped and reported in the summary; every other malformed line is an error naming
the file and line, or with ``skip_bad`` left out and counted by reason.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from .common import (
    SPLITS,
    ConversionSummary,
    ConverterError,
    OutputWriter,
    optional_progress,
    read_image_size,
)

PHRASE_FILE = 'output_phrase_{split}.txt'
IMAGES_DIR = 'images'
MASKS_DIR = 'masks'
IMAGE_SUFFIX = '.tif'
FOREGROUND_THRESHOLD = 50  # mask value > 50 is the referred object (FIANet's convention)
#: ``ref_id`` / ``sent_id`` of line ``n`` (0-based) of a split file: offset + n.
SPLIT_ID_OFFSET = {'train': 0, 'val': 100_000, 'test': 200_000}
MAX_LINES = 100_000  # per split file, so that the id ranges do not overlap
CATEGORIES = ('road', 'vehicle', 'car', 'van', 'building', 'truck', 'trailer', 'bus',
              'road marking', 'bikeway', 'sidewalk', 'tree', 'low vegetation',
              'impervious surface')
_ID_PATTERN = re.compile(r'[A-Za-z0-9_-][A-Za-z0-9_.-]*')
_CATEGORY_PATTERNS = tuple(
    (name, re.compile(r'\b' + r'\s+'.join(map(re.escape, name.split())) + r'(?:s|es)?\b',
                      re.IGNORECASE))
    for name in CATEGORIES)


def category_from_expression(expression: str) -> str | None:
    """The longest RefSegRS category name found in ``expression``, else None.

    Names match as whole words, case-insensitively, with an optional plural ``s``/``es`` on
    the last word; between names of equal length the earlier occurrence wins.
    """
    best: Tuple[int, int, str] | None = None  # (-length, start, name)
    for name, pattern in _CATEGORY_PATTERNS:
        found = pattern.search(expression)
        if found is not None:
            candidate = (-len(name), found.start(), name)
            best = candidate if best is None else min(best, candidate)
    return None if best is None else best[2]


@dataclass
class _Line:
    where: str  # "<file> line <1-based number>"
    split: str
    index: int  # 0-based line number in the split file
    image_id: str
    expression: str


@dataclass
class _Tile:
    image_path: Path
    mask_path: Path
    height: int
    width: int


def read_phrase_file(path: Path, split: str, skipped: List[Tuple[str, str]],
                     skip_bad: bool = False) -> List[_Line]:
    """Parse one ``output_phrase_<split>.txt``.

    Blank lines are appended to ``skipped``; so are malformed ones with ``skip_bad``,
    which otherwise raise a :class:`ConverterError` naming the file and line.
    """
    try:
        text = path.read_bytes().decode('utf-8-sig')
    except UnicodeDecodeError as err:
        raise ConverterError(f'{path}: not UTF-8 text: {err}') from err
    raw_lines = text.split('\n')
    if raw_lines[-1] == '':  # the newline ending the last line
        raw_lines.pop()
    if len(raw_lines) > MAX_LINES:
        raise ConverterError(f'{path}: {len(raw_lines)} lines; at most {MAX_LINES} fit the '
                             f'ref_id scheme (split offset + line number)')
    lines = []
    for index, raw in enumerate(raw_lines):
        line = raw.rstrip('\r')
        where = f'{path.name} line {index + 1}'
        if not line.strip():
            skipped.append((where, 'blank line'))
            continue
        try:
            lines.append(_parse_line(line, where, split, index))
        except ConverterError as err:
            if not skip_bad:
                raise
            skipped.append((where, err.reason))
    return lines


def _parse_line(line: str, where: str, split: str, index: int) -> _Line:
    image_id, separator, rest = line.partition(' ')
    if not separator or not _ID_PATTERN.fullmatch(image_id):
        raise ConverterError(f'{where}: malformed line {line!r}: expected '
                             '"<id> <expression>" with the id separated by a space',
                             'malformed line')
    expression = rest.strip()
    if not expression:
        raise ConverterError(f'{where}: empty expression for image id {image_id}',
                             'empty expression')
    return _Line(where, split, index, image_id, expression)


def convert_refsegrs(src: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False,
                     copy_images: bool = False, verify_images: bool = True,
                     progress: bool = False, absolute_paths: bool = False,
                     skip_bad: bool = False) -> ConversionSummary:
    """Convert a RefSegRS release into ``out`` (``{train,val,test}.jsonl`` + ``masks/``).

    Args:
        src: Release root (phrase files, ``images/``, ``masks/``); only read.
        out: Output directory; must be absent or empty unless ``overwrite``.
        overwrite: Replace an earlier conversion in ``out`` as a whole (after success).
        copy_images: Copy images to ``out/images/`` (paths relative to ``out``).
        verify_images: Decode every image fully (catches truncated files); else read headers.
        progress: Show a progress bar on stderr.
        absolute_paths: Absolute source image paths instead of paths relative to ``out``.
        skip_bad: Leave out malformed lines (counted by reason in the summary) instead of
            stopping at the first one.

    Returns:
        The summary, also printed by the command-line tool.

    Raises:
        ConverterError: Malformed input (naming the file, line and field) or refused output.
    """
    src_root = Path(src)
    phrase_paths = {split: src_root / PHRASE_FILE.format(split=split) for split in SPLITS}
    for required in (*phrase_paths.values(), src_root / IMAGES_DIR, src_root / MASKS_DIR):
        if not required.exists():
            raise ConverterError(f'{required} not found: --src must be the RefSegRS root holding '
                                 f'{PHRASE_FILE.format(split="<split>")} for train, val and '
                                 f'test, {IMAGES_DIR}/ and {MASKS_DIR}/')
    writer = OutputWriter(out, src_root, overwrite=overwrite, copy_images=copy_images,
                          absolute_paths=absolute_paths)
    summary = ConversionSummary('RefSegRS', str(writer.out_dir))
    lines: List[_Line] = []
    for split, path in phrase_paths.items():
        lines.extend(read_phrase_file(path, split, summary.skipped, skip_bad))

    # Per image id: its tile and mask path, or the error that makes its lines unusable.
    tiles: Dict[str, _Tile | ConverterError] = {}
    mask_paths: Dict[str, str] = {}
    with writer:
        for line in optional_progress(lines, progress, 'RefSegRS'):
            try:
                if line.image_id not in tiles:
                    try:
                        tiles[line.image_id] = _check_tile(src_root, line, verify_images)
                        tile = tiles[line.image_id]
                        mask = load_binary_mask(tile.mask_path,
                                                f'{line.where} (image id {line.image_id})')
                        if not mask.any():
                            summary.empty_masks.append(f'id {line.image_id}')
                        mask_paths[line.image_id] = writer.write_mask(line.image_id, mask)
                    except ConverterError as err:
                        tiles[line.image_id] = err
                tile = tiles[line.image_id]
                if isinstance(tile, ConverterError):
                    raise tile
                img_path = writer.image_path(tile.image_path, tile.image_path.name)
            except ConverterError as err:
                if not skip_bad:
                    raise
                summary.skipped.append((line.where, err.reason))
                continue
            summary.references[line.split] += 1
            summary.sentences[line.split] += 1
            line_id = SPLIT_ID_OFFSET[line.split] + line.index
            writer.add_record(dict(
                img_path=img_path, seg_map_path=mask_paths[line.image_id],
                expression=line.expression, ref_id=line_id, sent_id=line_id,
                image_id=line.image_id, category=category_from_expression(line.expression),
                split=line.split, height=tile.height, width=tile.width))
        writer.commit()
    summary.warnings.extend(writer.warnings)
    summary.images = len(mask_paths)
    summary.masks = writer.masks_written
    return summary


def _check_tile(src_root: Path, line: _Line, verify: bool) -> _Tile:
    """Find an id's image and mask and check that their sizes agree."""
    where = f'{line.where} (image id {line.image_id})'
    image_path = src_root / IMAGES_DIR / f'{line.image_id}{IMAGE_SUFFIX}'
    mask_path = src_root / MASKS_DIR / f'{line.image_id}{IMAGE_SUFFIX}'
    height, width = read_image_size(image_path, where, verify)
    mask_size = read_image_size(mask_path, where, verify=False, kind='mask')
    if mask_size != (height, width):
        raise ConverterError(f'{where}: mask {mask_path} is {mask_size[0]}x{mask_size[1]} (HxW) '
                             f'but the image is {height}x{width}', 'mask size mismatch')
    return _Tile(image_path, mask_path, height, width)


def load_binary_mask(path: Path, where: str) -> np.ndarray:
    """Threshold an 8-bit RefSegRS mask: uint8 (H, W), 1 where the value is > 50.

    Single-channel (``L``, ``1``) masks are read as they are; RGB(A) ones only when their
    colour channels are equal (grey stored as colour).
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.asarray(image.convert('L') if mode == '1' else image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ConverterError(f'{where}: cannot decode mask file {path}: {err}',
                             'cannot decode mask') from err
    if mode in ('RGB', 'RGBA') and np.array_equal(values[..., 0], values[..., 1]) \
            and np.array_equal(values[..., 0], values[..., 2]):
        values = values[..., 0]
    elif mode not in ('L', '1'):
        raise ConverterError(f'{where}: mask file {path} has mode {mode!r}; expected an 8-bit '
                             'single-channel (grey) mask', 'bad mask mode')
    return (values > FOREGROUND_THRESHOLD).astype(np.uint8)
