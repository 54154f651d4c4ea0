"""COCO segmentations (RLE, compressed or not, and polygons) decoded into one mask, checked.

Decoding is pycocotools': every RLE it reads correctly converts, also an
uncompressed one (``counts`` a list of run lengths) and a compressed string
other than the one pycocotools would write; only RLEs whose runs do not cover
exactly the image are refused, with an error naming the reference.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
from pycocotools import mask as mask_utils

from .common import ConverterError, require


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """Binary mask of an RRSIS-D segmentation: the union of its parts.

    Args:
        segmentation: A list of COCO RLE dicts (``size`` [h, w], ``counts`` a compressed
            string or a list of run lengths) and/or polygons (flat ``[x1, y1, x2, y2, ...]``
            lists); a single RLE dict is accepted too.
        height, width: Image size; every RLE must have this size.
        where: Record description used in error messages.

    Returns:
        uint8 array (height, width), C order, 1 where any part covers the pixel.
    """
    parts = [segmentation] if isinstance(segmentation, dict) else segmentation
    if not isinstance(parts, list) or not parts:
        raise ConverterError(f'{where}: field \'segmentation\' must be a non-empty list of RLE '
                             f'dicts or polygons, got {_short(segmentation)}',
                             'bad segmentation')
    union = np.zeros((height, width), dtype=bool)
    for index, part in enumerate(parts):
        at = f'{where}, field \'segmentation[{index}]\''
        if isinstance(part, dict):
            union |= _decode_rle(part, height, width, at) > 0
        elif isinstance(part, list):
            union |= _decode_polygon(part, height, width, at) > 0
        else:
            raise ConverterError(f'{at}: expected an RLE dict or a polygon, got {_short(part)}',
                                 'bad segmentation')
    return union.astype(np.uint8)


def compressed_run_lengths(counts: bytes) -> List[int] | None:
    """Run lengths stored in a COCO compressed RLE string, or None if it is not one.

    pycocotools reads these strings without checking them (and has no call that returns the
    runs); this reader follows the same format so that :func:`decode_segmentation` can check
    that the runs cover the image exactly before handing the string to ``mask.decode``. The
    format: each run is a little-endian sequence of 5-bit groups, one character
    (``chr(48 + group + 32 * more)``) each, the last group's bit 4 being the sign; from the
    fourth run on the value stored is the difference to the run two places before.
    A run may come out negative here (pycocotools would wrap it around).
    """
    runs: List[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position == len(counts):
                return None  # the last run is cut off
            group = counts[position] - 48
            if not 0 <= group < 64:
                return None
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # negative: sign-extend
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _decode_rle(rle: Dict[str, Any], height: int, width: int, where: str) -> np.ndarray:
    """Decode one RLE dict with pycocotools after checking that it covers the image."""
    size = require(rle, 'size', where)
    counts = require(rle, 'counts', where)
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        raise ConverterError(f'{where}: bad RLE: mask size {size!r} does not match the image '
                             f'size [{height}, {width}]', 'bad RLE')
    if isinstance(counts, list):  # uncompressed: pycocotools' own conversion
        if not all(isinstance(c, (int, float, np.integer)) and not isinstance(c, bool)
                   and float(c).is_integer() for c in counts):
            raise ConverterError(f'{where}: bad RLE: run lengths must be integers, got '
                                 f'{_short(counts)}', 'bad RLE')
        runs = [int(c) for c in counts]
        _check_runs(runs, height, width, where)
        pycoco_rle = mask_utils.frPyObjects({'size': [height, width], 'counts': runs},
                                            height, width)
    elif isinstance(counts, (str, bytes)):  # compressed: pycocotools decodes it as it is
        if isinstance(counts, str):
            if not counts.isascii():
                raise ConverterError(f'{where}: bad RLE: counts is not ASCII', 'bad RLE')
            counts = counts.encode('ascii')
        runs = compressed_run_lengths(counts)
        if runs is None:
            raise ConverterError(f'{where}: bad RLE: counts {_short(counts)} is not a COCO '
                                 'compressed RLE string (character outside "0"-"o" or a '
                                 'run cut off)', 'bad RLE')
        _check_runs(runs, height, width, where)
        pycoco_rle = {'size': [height, width], 'counts': counts}
    else:
        raise ConverterError(f'{where}: bad RLE: counts must be a string or a list, got '
                             f'{_short(counts)}', 'bad RLE')
    return mask_utils.decode(pycoco_rle)


def _check_runs(runs: List[int], height: int, width: int, where: str) -> None:
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise ConverterError(f'{where}: bad RLE: run lengths must be non-negative and sum to '
                             f'{height}x{width} = {height * width} pixels, got '
                             f'{len(runs)} runs summing to {sum(runs)}'
                             + (' with a negative one' if any(r < 0 for r in runs) else ''),
                             'bad RLE')


def _decode_polygon(polygon: List[Any], height: int, width: int, where: str) -> np.ndarray:
    if (len(polygon) < 6 or len(polygon) % 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) for v in polygon)):
        raise ConverterError(f'{where}: bad polygon: expected at least 3 (x, y) pairs of finite '
                             f'numbers, got {_short(polygon)}', 'bad polygon')
    rles = mask_utils.frPyObjects([[float(v) for v in polygon]], height, width)
    return mask_utils.decode(rles)[:, :, 0]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'
