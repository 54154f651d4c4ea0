"""What a PNG header and a TIFF's tags say a decoder must return."""
from __future__ import annotations

import io
from typing import Optional, Tuple

from PIL import TiffImagePlugin

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: PNG colour type -> (channels, index of the alpha channel).
PNG_CHANNELS = {0: (1, None), 2: (3, None), 3: (3, None), 4: (2, 1), 6: (4, 3)}
TIFF_PREFIXES = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
#: TIFF tags that say what a decoder must return.
BITS_PER_SAMPLE, SAMPLES_PER_PIXEL, EXTRA_SAMPLES, SAMPLE_FORMAT = 258, 277, 338, 339
GDAL_NODATA = 42113
SAMPLE_KINDS = {1: 'u', 2: 'i', 3: 'f'}  # TIFF SampleFormat -> numpy dtype kind


def png_header(content: bytes) -> Optional[Tuple[int, int]]:
    """``(bit depth, colour type)`` of a PNG (its IHDR chunk); None for other files."""
    if content[:8] != PNG_SIGNATURE or content[12:16] != b'IHDR' or len(content) < 26:
        return None
    return content[24], content[25]


def tiff_tags(content: bytes) -> Optional[dict]:
    """The tags of a TIFF's first image that say what it holds; None for other files.

    Keys: the tag numbers ``BITS_PER_SAMPLE`` (tuple), ``SAMPLES_PER_PIXEL``,
    ``EXTRA_SAMPLES`` (tuple), ``SAMPLE_FORMAT`` (tuple), ``GDAL_NODATA``
    (str); absent tags are None. ``{}`` when the header cannot be parsed.
    """
    if content[:4] not in TIFF_PREFIXES:
        return None
    try:
        big = content[2:4] in (b'+\x00', b'\x00+')  # BigTIFF: a 16-byte header
        directory = TiffImagePlugin.ImageFileDirectory_v2(content[:16 if big else 8])
        stream = io.BytesIO(content)
        stream.seek(directory.next)
        directory.load(stream)
    except Exception:  # a broken header: nothing to check a decoder against
        return {}
    tags = {tag: directory.get(tag) for tag in (BITS_PER_SAMPLE, SAMPLES_PER_PIXEL,
                                                EXTRA_SAMPLES, SAMPLE_FORMAT, GDAL_NODATA)}
    for tag in (BITS_PER_SAMPLE, EXTRA_SAMPLES, SAMPLE_FORMAT):
        if isinstance(tags[tag], int):
            tags[tag] = (tags[tag],)
    return tags


def nodata_value(tags: Optional[dict]) -> Optional[float]:
    text = (tags or {}).get(GDAL_NODATA)
    if not text:
        return None
    try:
        return float(str(text).strip('\x00 '))
    except ValueError:
        return None


def tiff_alpha(tags: dict, count: int) -> Optional[int]:
    """Index of a TIFF's alpha channel: its first extra sample, when that is alpha."""
    extra = tags.get(EXTRA_SAMPLES) or ()
    if extra and extra[0] in (1, 2):  # associated / unassociated alpha
        return count - len(extra)
    return None


def describe_tiff(tags: dict) -> str:
    bits = tags.get(BITS_PER_SAMPLE) or ('?',)
    kind = {'u': 'unsigned', 'i': 'signed', 'f': 'float'}.get(
        SAMPLE_KINDS.get((tags.get(SAMPLE_FORMAT) or (1,))[0]), '')
    return (f'a TIFF of {tags.get(SAMPLES_PER_PIXEL) or "?"} band(s) of {bits[0]}-bit '
            f'{kind} samples').replace('  ', ' ')
