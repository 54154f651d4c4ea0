"""Pillow's and OpenCV's decoding of a file's bytes, then bands, no-data and stretch."""
from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .geo_image import GeoImage
from .headers import (
    BITS_PER_SAMPLE,
    PNG_CHANNELS,
    SAMPLE_FORMAT,
    SAMPLE_KINDS,
    SAMPLES_PER_PIXEL,
    nodata_value,
    png_header,
    tiff_alpha,
    tiff_tags,
)
from .stretch import DEFAULT_PERCENTILES, check_bands, to_model_image

#: Pillow modes of 8-bit images and the samples per pixel of each.
PILLOW_8BIT_MODES = {'1': 1, 'L': 1, 'P': 1, 'LA': 2, 'PA': 2, 'RGB': 3, 'YCbCr': 3, 'LAB': 3,
                     'HSV': 3, 'RGBA': 4, 'RGBX': 4, 'CMYK': 4}
#: One-band Pillow modes of more than 8 bits, decoded as they are.
PILLOW_DEEP_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F')
#: Modes converted to RGB first (``convert('RGB')``, as the reference decodes them).
_TO_RGB = ('P', 'YCbCr', 'LAB', 'HSV', 'CMYK')


@dataclass
class DecodedChannels:
    """A file's channels as decoded, before band selection and the stretch.

    Attributes:
        data (np.ndarray): ``(H, W, C)`` in file order (R, G, B, A), any dtype.
        alpha (int | None): Index of the alpha channel.
        nodata (float | None): The file's nodata value (TIFF ``GDAL_NODATA``).
        decoder (str): ``'pillow'`` or ``'opencv'``.
    """

    data: np.ndarray
    alpha: Optional[int] = None
    nodata: Optional[float] = None
    decoder: str = 'pillow'


def _pillow_is_lossless(image: Image.Image, png: Optional[Tuple[int, int]],
                        tags: Optional[dict]) -> bool:
    """Whether Pillow's array of ``image`` holds the file's samples unchanged.

    Pillow opens 16-bit RGB / RGBA PNGs and TIFFs as 8-bit RGB / RGBA (the
    high bytes) and 32-bit unsigned TIFFs as signed: those go to OpenCV.
    """
    mode = image.mode
    if mode in PILLOW_DEEP_MODES:
        if tags is None:
            return True
        unsigned_32 = (tags.get(BITS_PER_SAMPLE) or (0,))[0] == 32 and \
            (tags.get(SAMPLE_FORMAT) or (1,))[0] == 1 and mode == 'I'
        return (tags.get(SAMPLES_PER_PIXEL) or 1) == 1 and not unsigned_32
    samples = PILLOW_8BIT_MODES.get(mode)
    if samples is None:
        return False
    if png is not None and png[0] > 8:
        return False
    if tags:
        bits = tags.get(BITS_PER_SAMPLE) or (1,)
        if max(bits) > 8 or (tags.get(SAMPLES_PER_PIXEL) or 1) != samples:
            return False
    return True


def decode_with_pillow(content: bytes, png: Optional[Tuple[int, int]] = None,
                       tags: Optional[dict] = None) -> Optional[DecodedChannels]:
    """Pillow's decoding, or None when Pillow cannot open the file or would lose bits.

    EXIF orientation is not applied. Decoding errors of a file Pillow opened
    (a truncated JPEG...) are raised.
    """
    try:
        image = Image.open(io.BytesIO(content))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return None
    with image:
        if not _pillow_is_lossless(image, png, tags):
            return None
        mode = image.mode
        if mode in _TO_RGB:
            image = image.convert('RGB')
        elif mode == 'PA':
            image = image.convert('RGBA')
        elif mode == '1':
            image = image.convert('L')
        data = np.asarray(image)
    if not data.dtype.isnative:  # 'I;16B'
        data = data.astype(data.dtype.newbyteorder('='))
    if data.ndim == 2:
        data = data[..., None]
    if tags is not None:  # Pillow says RGBA for some 4-sample TIFFs without alpha
        alpha = tiff_alpha(tags, data.shape[2])
    else:
        alpha = {'LA': 1, 'PA': 3, 'RGBA': 3}.get(mode)
    return DecodedChannels(data, alpha, nodata_value(tags), 'pillow')


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's log level at 'silent' (its decoding failures are reported by the caller)."""
    try:
        from cv2.utils import logging as cv2_logging
    except ImportError:  # OpenCV builds without the logging bindings
        yield
        return
    level = cv2_logging.getLogLevel()
    cv2_logging.setLogLevel(cv2_logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2_logging.setLogLevel(level)


def decode_with_opencv(content: bytes, png: Optional[Tuple[int, int]] = None,
                       tags: Optional[dict] = None) -> Optional[DecodedChannels]:
    """OpenCV's decoding (``IMREAD_UNCHANGED``: any depth, no EXIF rotation).

    None when OpenCV cannot decode the file or returns other channels than
    the PNG header / TIFF tags announce (OpenCV folds some multi-band TIFFs
    into one channel).
    """
    if tags and (tags.get(SAMPLES_PER_PIXEL) or 1) > 4:
        return None  # OpenCV reads at most 4 channels
    try:
        with _quiet_opencv():  # libtiff warns of every GeoTIFF tag it does not know
            data = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if data is None:
        return None
    if data.ndim == 2:
        data = data[..., None]
    count = data.shape[2]
    if count >= 3:  # BGR(A) -> file order
        data = data[..., [2, 1, 0] + list(range(3, count))]
    alpha = None
    if png is not None:
        depth, colour_type = png
        channels, alpha = PNG_CHANNELS.get(colour_type, (None, None))
        if colour_type == 4 and count == 4:  # grey + alpha, given as BGRA
            data, count = data[..., [0, 3]], 2
        if count != channels or (depth >= 8 and data.dtype.itemsize * 8 != depth):
            return None
    elif tags is not None:
        bits = tags.get(BITS_PER_SAMPLE) or ()
        kind = SAMPLE_KINDS.get((tags.get(SAMPLE_FORMAT) or (1,))[0])
        if count != (tags.get(SAMPLES_PER_PIXEL) or 1) or not bits \
                or any(b != data.dtype.itemsize * 8 for b in bits) or data.dtype.kind != kind:
            return None
        alpha = tiff_alpha(tags, count)
    elif count == 4:
        alpha = 3
    return DecodedChannels(np.ascontiguousarray(data), alpha, nodata_value(tags), 'opencv')


def decode_channels(content: bytes, where: str) -> Optional[DecodedChannels]:
    """Pillow, else OpenCV (see :mod:`fianet_mmseg.utils.image_io`); None when neither can.

    Raises:
        ValueError: An empty file.
    """
    if not content:
        raise ValueError(f'cannot read image {where}: the file is empty (0 bytes)')
    png, tags = png_header(content), tiff_tags(content)
    return decode_with_pillow(content, png, tags) or decode_with_opencv(content, png, tags)


def _valid_pixels(decoded: DecodedChannels, values: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: alpha > 0, no selected band at the nodata value, finite."""
    valid = np.ones(values.shape[:2], dtype=bool)
    if decoded.alpha is not None:
        valid &= decoded.data[..., decoded.alpha] > 0
    nodata = decoded.nodata
    if nodata is not None:
        valid &= ~(np.isnan(values) if np.isnan(nodata) else values == nodata).any(axis=2)
    if values.dtype.kind == 'f':
        valid &= np.isfinite(values).all(axis=2)
    return valid


def to_geo_image(decoded: DecodedChannels, where: str, bands: Optional[Sequence[int]] = None,
                 stretch: str = 'auto', percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                 transform: Any = None, crs: Any = None) -> GeoImage:
    """Band selection, no-data pixels and the stretch: the model's image of decoded channels."""
    count = decoded.data.shape[2]
    colours = count - int(decoded.alpha is not None)
    bands = check_bands(bands, count, colours, where)
    indices = [band - 1 for band in bands]
    values = decoded.data if indices == list(range(count)) else decoded.data[..., indices]
    valid = _valid_pixels(decoded, values)
    image, limits = to_model_image(values.transpose(2, 0, 1), valid, stretch, percentiles,
                                   where)
    height, width = image.shape[:2]
    return GeoImage(image=image, valid=valid, transform=transform, crs=crs, path=where,
                    bands=bands, window=(0, 0, width, height), stretch=limits)
