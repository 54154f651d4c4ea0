"""One image reader for every entry point: an image file -> the model's 8-bit RGB image.

:func:`read_image` (a file) and :func:`decode_image` (a file's bytes) are how
this project turns an image file into the model's input. The Python API (a
path given to ``inference_model``, :func:`~fianet_mmseg.apis.geo.read_geotiff`),
``demo/image_demo.py`` (one image and batches), ``demo/web_demo.py``, the
visualiser and the failure gallery, and the data sets' image loader
(``LoadRefSegImage`` in the configs: ``tools/train.py``, ``tools/test.py``) all
call them, so one file gives the same pixels everywhere (docs/inference.md,
"How images are read").

Conventions:

* Decoders. Pillow decodes what it decodes losslessly: 8-bit images (JPEG,
  8-bit PNG / TIFF / BMP / WebP, palette images; ``Image.open``, then
  ``convert('RGB')`` for palette and CMYK images, as the reference decodes)
  and one-band 16-bit, 32-bit and float images. OpenCV
  (``cv2.IMREAD_UNCHANGED``) decodes 16-bit RGB / RGBA PNGs and TIFFs of 1, 3
  or 4 samples of 16 or 32 bits or floats; a TIFF is taken from OpenCV only
  when the channels it returns match the file's tags (OpenCV folds some
  multi-band TIFFs into one channel). GDAL (rasterio, the extra ``geo``)
  reads the rest (more than 4 bands, ...) and every window or bbox; without
  rasterio such a file is an ``ImportError`` naming it and
  ``pip install "fianet-mmseg[geo]"``. Georeferencing comes from rasterio
  when it is installed.
* Channels are bands numbered from 1 in file order (R, G, B, A). Default: one
  colour band is grey, repeated to R, G, B; of three or more colour bands the
  first three are R, G, B. ``bands`` chooses others (three, or one for grey).
* Alpha is dropped: it is not a colour. A pixel whose alpha is 0 has no data,
  as has a pixel equal to a TIFF's nodata value (GDAL's ``GDAL_NODATA`` tag) in
  a selected band, and a NaN / inf. No-data pixels stay out of the stretch
  statistics and are black in the model's image.
* Bit depth: :func:`stretch_to_uint8`, as for
  GeoTIFFs (``stretch='auto'``): 8-bit data as it is, other data stretched per
  band between the 2nd and 98th percentiles of its valid pixels.
* EXIF orientation is ignored: pixels are used in the order they are stored,
  as the reference (``Image.open`` without ``exif_transpose``), GDAL and the
  training data protocol use them; a rotated view would also no longer match
  a georeferenced pixel grid. (``cv2.imread`` with its default flag and
  ``mmcv.imread`` rotate by the tag: this project does not read images with
  them.)
"""
from __future__ import annotations

import io
import math
import os.path as osp
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

PathType = Union[str, Path]
Window = Tuple[int, int, int, int]  # col_off, row_off, width, height

GEO_INSTALL_HINT = 'pip install "fianet-mmseg[geo]"'
TIFF_SUFFIXES = ('.tif', '.tiff')
STRETCH_MODES = ('auto', 'percentile', 'none')
DEFAULT_PERCENTILES = (2.0, 98.0)


def require_rasterio() -> Any:
    """Import rasterio, or raise an ImportError that says how to install it."""
    try:
        import rasterio
    except ImportError as err:
        raise ImportError(f'GeoTIFF input and georeferenced outputs need rasterio: '
                          f'{GEO_INSTALL_HINT}') from err
    return rasterio


def rasterio_available() -> bool:
    """Whether rasterio can be imported."""
    try:
        require_rasterio()
    except ImportError:
        return False
    return True


def is_tiff(path: Any) -> bool:
    """Whether ``path`` is a file name ending in ``.tif`` / ``.tiff``."""
    return isinstance(path, (str, Path)) and osp.splitext(str(path))[1].lower() in TIFF_SUFFIXES


@dataclass
class GeoImage:
    """A window of a raster as the model's 8-bit RGB image, with its georeferencing.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 **RGB** (stretched bands).
        valid (np.ndarray): ``(H, W)`` bool, False where a selected band has
            no data.
        transform (affine.Affine | None): Pixel (column, row) -> CRS
            coordinates of the window's pixel corners (identity for rasters
            without georeferencing; None for images read without rasterio).
        crs (rasterio.crs.CRS | None): The source's CRS.
        path (str | None): The source file.
        bands (tuple[int]): Source bands (from 1) of the R, G, B channels.
        window (tuple[int]): ``(col_off, row_off, width, height)`` read.
        stretch (list[tuple[float, float]] | None): Per channel, the source
            values mapped to 0 and 255 (None: no stretch).
    """

    image: np.ndarray
    valid: np.ndarray
    transform: Any
    crs: Any = None
    path: Optional[str] = None
    bands: Tuple[int, ...] = (1, 2, 3)
    window: Window = (0, 0, 0, 0)
    stretch: Optional[List[Tuple[float, float]]] = field(default=None)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f'GeoImage: image must be (H, W, 3) uint8, got {self.image.shape} '
                             f'{self.image.dtype}')
        if self.valid.shape != self.image.shape[:2]:
            raise ValueError(f'GeoImage: valid has shape {self.valid.shape}, image '
                             f'{self.image.shape[:2]}')

    @property
    def bgr(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 BGR (what the inference pipeline takes), a new array."""
        return cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR)  # a fast copy of the swap

    @property
    def shape(self) -> Tuple[int, int]:
        """``(H, W)``."""
        return self.image.shape[:2]

    @property
    def georeferenced(self) -> bool:
        """True when the source has a CRS or a non-identity transform."""
        return self.crs is not None or (self.transform is not None
                                        and not self.transform.is_identity)


# ------------------------------------------------------- stretch, bands, GDAL
def _check_percentiles(percentiles: Sequence[float]) -> Tuple[float, float]:
    if len(percentiles) != 2:
        raise ValueError(f'percentiles must be (low, high), got {percentiles!r}')
    low, high = (float(p) for p in percentiles)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f'percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}')
    return low, high


def stretch_to_uint8(data: np.ndarray, valid: np.ndarray, mode: str = 'auto',
                     percentiles: Sequence[float] = DEFAULT_PERCENTILES
                     ) -> Tuple[np.ndarray, Optional[List[Tuple[float, float]]]]:
    """Map bands to 8 bit (see the module's conventions).

    Args:
        data: ``(C, H, W)`` array of any numeric dtype.
        valid: ``(H, W)`` bool; only these pixels enter the statistics.
        mode: ``'auto'``, ``'percentile'`` or ``'none'``.
        percentiles: ``(low, high)`` in [0, 100].

    Returns:
        tuple: ``((C, H, W) uint8 with invalid pixels 0, [(low, high)] per band
        or None when not stretched)``.

    Raises:
        ValueError: Unknown mode, bad percentiles, no valid pixel.
    """
    if mode not in STRETCH_MODES:
        raise ValueError(f'stretch must be one of {STRETCH_MODES}, got {mode!r}')
    low_p, high_p = _check_percentiles(percentiles)
    if not valid.any():
        raise ValueError('no valid pixel to stretch (everything is nodata)')
    if mode == 'auto':
        mode = 'none' if data.dtype == np.uint8 else 'percentile'
    out = np.zeros(data.shape, dtype=np.uint8)
    if mode == 'none':
        out[:, valid] = np.clip(np.rint(data[:, valid].astype(np.float64)), 0, 255)
        return out, None
    limits = []
    for index, band in enumerate(data):
        values = band[valid].astype(np.float64)
        low, high = (float(v) for v in np.percentile(values, [low_p, high_p]))
        limits.append((low, high))
        if high > low:
            scaled = (values - low) * (255.0 / (high - low))
            out[index, valid] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out, limits


def _pixel_window(src: Any, window: Optional[Sequence[int]], bbox: Optional[Sequence[float]],
                  where: str) -> Window:
    """The integer window to read: given, from a bounding box, or the whole raster."""
    if window is not None and bbox is not None:
        raise ValueError(f'{where}: give a window or a bbox, not both')
    if window is not None:
        if len(window) != 4 or any(isinstance(v, bool) or int(v) != v for v in window):
            raise ValueError(f'{where}: window must be 4 integers (col_off, row_off, width, '
                             f'height), got {window!r}')
        col, row, width, height = (int(v) for v in window)
        if width <= 0 or height <= 0 or col < 0 or row < 0 or col + width > src.width \
                or row + height > src.height:
            raise ValueError(f'{where}: window (col_off={col}, row_off={row}, width={width}, '
                             f'height={height}) is not inside the raster of {src.width}x'
                             f'{src.height} pixels')
        return col, row, width, height
    if bbox is not None:
        from rasterio.windows import from_bounds

        if len(bbox) != 4:
            raise ValueError(f'{where}: bbox must be (left, bottom, right, top), got {bbox!r}')
        left, bottom, right, top = (float(v) for v in bbox)
        if not (left < right and bottom < top):
            raise ValueError(f'{where}: bbox must have left < right and bottom < top, got '
                             f'{bbox!r}')
        float_window = from_bounds(left, bottom, right, top, transform=src.transform)
        # every pixel the box touches, cut to the raster
        eps = 1e-6
        col0 = max(0, math.floor(float_window.col_off + eps))
        row0 = max(0, math.floor(float_window.row_off + eps))
        col1 = min(src.width, math.ceil(float_window.col_off + float_window.width - eps))
        row1 = min(src.height, math.ceil(float_window.row_off + float_window.height - eps))
        if col1 <= col0 or row1 <= row0:
            raise ValueError(f'{where}: bbox {tuple(bbox)} does not overlap the raster '
                             f'(bounds {tuple(src.bounds)} in {src.crs})')
        return col0, row0, col1 - col0, row1 - row0
    return 0, 0, src.width, src.height


def check_bands(bands: Optional[Sequence[int]], count: int, colours: int,
                where: str) -> Tuple[int, ...]:
    """The source bands (from 1) of R, G, B, or of the grey channel.

    Args:
        bands: Chosen bands, or None for the default: the first three colour
            bands, or the only one.
        count: Bands in the source (an alpha channel included).
        colours: Bands that are not alpha (the first ``colours`` ones).
        where: The source, for error messages.

    Raises:
        ValueError: Not 3 or 1 bands, a band that does not exist, or no
            default (2 colour bands).
    """
    if bands is None:
        if colours >= 3:
            return (1, 2, 3)
        if colours == 1:
            return (1,)
        raise ValueError(f'{where}: {colours} bands; choose the bands for R, G, B '
                         '(bands=..., --bands)')
    bands = tuple(bands)
    if len(bands) not in (1, 3):
        raise ValueError(f'{where}: give 3 bands (R, G, B) or 1 (grey), got {bands}')
    for band in bands:
        if isinstance(band, bool) or int(band) != band or not 1 <= band <= count:
            raise ValueError(f'{where}: band {band} does not exist (the raster has '
                             f'bands 1 to {count})')
    return tuple(int(b) for b in bands)


def to_model_image(values: np.ndarray, valid: np.ndarray, stretch: str,
                   percentiles: Sequence[float], where: str
                   ) -> Tuple[np.ndarray, Optional[List[Tuple[float, float]]]]:
    """Selected bands -> ``((H, W, 3) uint8 RGB, stretch limits)``: stretched, grey repeated.

    Args:
        values: ``(C, H, W)`` (C = 1 or 3) of any numeric dtype.
        valid: ``(H, W)`` bool.
        stretch, percentiles: See :func:`stretch_to_uint8`.
        where: The source, for error messages.
    """
    if stretch not in STRETCH_MODES:
        raise ValueError(f'stretch must be one of {STRETCH_MODES}, got {stretch!r}')
    _check_percentiles(percentiles)
    if not valid.any():
        raise ValueError(f'{where}: no valid pixel (all nodata)')
    if values.dtype == np.uint8 and stretch in ('auto', 'none') and valid.all():
        image, limits = values, None  # what the stretch gives, without the float copy
    else:
        try:
            image, limits = stretch_to_uint8(values, valid, stretch, percentiles)
        except ValueError as err:
            raise ValueError(f'{where}: {err}') from err
    if image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
        limits = limits * 3 if limits else None
    return np.ascontiguousarray(image.transpose(1, 2, 0)), limits


def read_raster(src: Any, where: str, bands: Optional[Sequence[int]] = None,
                window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
                stretch: str = 'auto',
                percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """GDAL's reading of an open rasterio dataset: a window of it as the model's image.

    The pixels and the masks (nodata value, mask bands, alpha) are GDAL's.
    :func:`read_image` uses it for windows and for
    the rasters that Pillow and OpenCV cannot decode.

    Args:
        src: An open ``rasterio`` dataset.
        where: The source (file name) for messages and ``GeoImage.path``.
        bands, window, bbox, stretch, percentiles: As in :func:`read_geotiff`.
    """
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window as RioWindow

    _check_percentiles(percentiles)
    count = src.count
    colours = count - int(count > 1 and src.colorinterp[-1] == ColorInterp.alpha)
    bands = check_bands(bands, count, colours, where)
    col, row, width, height = _pixel_window(src, window, bbox, where)
    rio_window = RioWindow(col, row, width, height)
    data = src.read(list(bands), window=rio_window, masked=True)
    transform = src.window_transform(rio_window)
    invalid = np.ma.getmaskarray(data).any(axis=0)
    values = np.ma.getdata(data)
    if bands == (1,) and src.colorinterp[0] == ColorInterp.palette:  # colours, as Pillow
        colormap = src.colormap(1)
        lut = np.zeros((max(256, max(colormap) + 1), 3), np.uint8)
        for index, colour in colormap.items():
            lut[index] = colour[:3]
        values = np.ascontiguousarray(lut[values[0]].transpose(2, 0, 1))
        bands = (1, 1, 1)
    if np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating):
        invalid |= ~np.isfinite(values).all(axis=0)
    valid = ~invalid
    if not valid.any():
        raise ValueError(f'{where}: the window (col_off={col}, row_off={row}, width={width}, '
                         f'height={height}) has no valid pixel (all nodata)')
    image, limits = to_model_image(values, valid, stretch, percentiles, where)
    return GeoImage(image=image, valid=valid, transform=transform, crs=src.crs, path=where,
                    bands=bands, window=(col, row, width, height), stretch=limits)


# ----------------------------------------------------------------- decoding
#: Pillow modes of 8-bit images and the samples per pixel of each.
PILLOW_8BIT_MODES = {'1': 1, 'L': 1, 'P': 1, 'LA': 2, 'PA': 2, 'RGB': 3, 'YCbCr': 3, 'LAB': 3,
                     'HSV': 3, 'RGBA': 4, 'RGBX': 4, 'CMYK': 4}
#: One-band Pillow modes of more than 8 bits, decoded as they are.
PILLOW_DEEP_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F')
#: Modes converted to RGB first (``convert('RGB')``, as the reference decodes them).
_TO_RGB = ('P', 'YCbCr', 'LAB', 'HSV', 'CMYK')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: PNG colour type -> (channels, index of the alpha channel).
_PNG_CHANNELS = {0: (1, None), 2: (3, None), 3: (3, None), 4: (2, 1), 6: (4, 3)}
_TIFF_PREFIXES = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
#: TIFF tags that say what a decoder must return.
BITS_PER_SAMPLE, SAMPLES_PER_PIXEL, EXTRA_SAMPLES, SAMPLE_FORMAT = 258, 277, 338, 339
GDAL_NODATA = 42113
_SAMPLE_KINDS = {1: 'u', 2: 'i', 3: 'f'}  # TIFF SampleFormat -> numpy dtype kind


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


# ------------------------------------------------------------------- headers
def png_header(content: bytes) -> Optional[Tuple[int, int]]:
    """``(bit depth, colour type)`` of a PNG (its IHDR chunk); None for other files."""
    if content[:8] != _PNG_SIGNATURE or content[12:16] != b'IHDR' or len(content) < 26:
        return None
    return content[24], content[25]


def tiff_tags(content: bytes) -> Optional[dict]:
    """The tags of a TIFF's first image that say what it holds; None for other files.

    Keys: the tag numbers ``BITS_PER_SAMPLE`` (tuple), ``SAMPLES_PER_PIXEL``,
    ``EXTRA_SAMPLES`` (tuple), ``SAMPLE_FORMAT`` (tuple), ``GDAL_NODATA``
    (str); absent tags are None. ``{}`` when the header cannot be parsed.
    """
    if content[:4] not in _TIFF_PREFIXES:
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


def _nodata(tags: Optional[dict]) -> Optional[float]:
    text = (tags or {}).get(GDAL_NODATA)
    if not text:
        return None
    try:
        return float(str(text).strip('\x00 '))
    except ValueError:
        return None


def _tiff_alpha(tags: dict, count: int) -> Optional[int]:
    """Index of a TIFF's alpha channel: its first extra sample, when that is alpha."""
    extra = tags.get(EXTRA_SAMPLES) or ()
    if extra and extra[0] in (1, 2):  # associated / unassociated alpha
        return count - len(extra)
    return None


def _describe_tiff(tags: dict) -> str:
    bits = tags.get(BITS_PER_SAMPLE) or ('?',)
    kind = {'u': 'unsigned', 'i': 'signed', 'f': 'float'}.get(
        _SAMPLE_KINDS.get((tags.get(SAMPLE_FORMAT) or (1,))[0]), '')
    return (f'a TIFF of {tags.get(SAMPLES_PER_PIXEL) or "?"} band(s) of {bits[0]}-bit '
            f'{kind} samples').replace('  ', ' ')


# ------------------------------------------------------------------ decoders
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
        alpha = _tiff_alpha(tags, data.shape[2])
    else:
        alpha = {'LA': 1, 'PA': 3, 'RGBA': 3}.get(mode)
    return DecodedChannels(data, alpha, _nodata(tags), 'pillow')


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
        channels, alpha = _PNG_CHANNELS.get(colour_type, (None, None))
        if colour_type == 4 and count == 4:  # grey + alpha, given as BGRA
            data, count = data[..., [0, 3]], 2
        if count != channels or (depth >= 8 and data.dtype.itemsize * 8 != depth):
            return None
    elif tags is not None:
        bits = tags.get(BITS_PER_SAMPLE) or ()
        kind = _SAMPLE_KINDS.get((tags.get(SAMPLE_FORMAT) or (1,))[0])
        if count != (tags.get(SAMPLES_PER_PIXEL) or 1) or not bits \
                or any(b != data.dtype.itemsize * 8 for b in bits) or data.dtype.kind != kind:
            return None
        alpha = _tiff_alpha(tags, count)
    elif count == 4:
        alpha = 3
    return DecodedChannels(np.ascontiguousarray(data), alpha, _nodata(tags), 'opencv')


def decode_channels(content: bytes, where: str) -> Optional[DecodedChannels]:
    """Pillow, else OpenCV (see the module's conventions); None when neither can.

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


# ---------------------------------------------------------------------- GDAL
class RasterOpenError(ValueError):
    """GDAL cannot open a file (the message names it)."""


@contextmanager
def open_raster(source: Union[str, bytes], where: str) -> Iterator[Any]:
    """A rasterio dataset of a file or of bytes; :class:`RasterOpenError` if GDAL cannot."""
    rasterio = require_rasterio()
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        memory = MemoryFile(source) if isinstance(source, bytes) else None
        try:
            src = memory.open() if memory is not None else rasterio.open(source)
        except RasterioIOError as err:
            if memory is not None:
                memory.close()
            raise RasterOpenError(f'{where}: cannot read the raster ({err})') from err
        try:
            with src:
                yield src
        finally:
            if memory is not None:
                memory.close()


def _georeferencing(path: str, shape: Tuple[int, int]) -> Tuple[Any, Any]:
    """``(transform, crs)`` of a file as GDAL sees it; ``(None, None)`` when it cannot."""
    try:
        with open_raster(path, path) as src:
            if (src.height, src.width) != tuple(shape):
                return None, None
            return src.transform, src.crs
    except RasterOpenError:
        return None, None


def _undecodable(content: bytes, where: str) -> Exception:
    """The error for a file neither Pillow nor OpenCV decodes (rasterio missing)."""
    tags = tiff_tags(content)
    if tags:
        return ImportError(f'{where}: {_describe_tiff(tags)}, which Pillow and OpenCV cannot '
                           f'read faithfully; reading it needs rasterio: {GEO_INSTALL_HINT}')
    return ValueError(f'cannot read image {where}: Pillow and OpenCV cannot decode it (a PNG, '
                      'JPEG, TIFF, BMP or WebP image expected)')


def _read_with_gdal(source: Union[str, bytes], content: bytes, where: str,
                    bands: Optional[Sequence[int]], stretch: str,
                    percentiles: Sequence[float]) -> GeoImage:
    """A file Pillow and OpenCV cannot decode: GDAL's reading, else an error naming the file."""
    if not rasterio_available():
        raise _undecodable(content, where)
    try:
        with open_raster(source, where) as src:
            return read_raster(src, where, bands, None, None, stretch, percentiles)
    except RasterOpenError as err:
        raise ValueError(f'cannot read image {where}: Pillow, OpenCV and GDAL cannot decode '
                         f'it ({err})') from err


# ---------------------------------------------------------------------- API
def decode_image(content: bytes, where: str, bands: Optional[Sequence[int]] = None,
                 stretch: str = 'auto',
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """The model's image of a file's bytes (see the module's conventions).

    What the data sets' loader uses (the bytes come from ``mmengine.fileio``).
    Without georeferencing unless GDAL had to read the pixels.

    Args:
        content: The file's bytes.
        where: The file, for messages and ``GeoImage.path``.
        bands, stretch, percentiles: As in :func:`read_image`.

    Raises:
        ImportError: A raster only GDAL reads, without rasterio.
        ValueError: Not an image, bad bands, no valid pixel; messages name
            ``where``.
        OSError: Pillow's decoding errors of a broken file (truncated...).
    """
    decoded = decode_channels(content, where)
    if decoded is not None:
        return to_geo_image(decoded, where, bands, stretch, percentiles)
    return _read_with_gdal(content, content, where, bands, stretch, percentiles)


def read_image(path: PathType, bands: Optional[Sequence[int]] = None,
               window: Optional[Sequence[int]] = None, bbox: Optional[Sequence[float]] = None,
               stretch: str = 'auto',
               percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> GeoImage:
    """The model's image of an image file: the one reader of every entry point.

    Args:
        path: PNG, JPEG, TIFF / GeoTIFF, BMP, WebP... of any bit depth.
        bands: Source bands (from 1) for R, G, B, or one (grey). Default: the
            first three colour bands, or the only one.
        window: ``(col_off, row_off, width, height)`` to read (GDAL; needs
            rasterio).
        bbox: ``(left, bottom, right, top)`` in the raster's CRS (GDAL; needs
            rasterio).
        stretch, percentiles: See :func:`stretch_to_uint8`.

    Returns:
        GeoImage: ``image`` (H, W, 3) uint8 RGB, ``valid``, the georeferencing
        (``transform`` None without rasterio), ``bands``, ``stretch``.

    Raises:
        FileNotFoundError: No such file.
        ImportError: A window / bbox, or a raster only GDAL reads, without
            rasterio (the message names the file and the extra).
        ValueError: Not an image, bad bands / window / bbox, no valid pixel;
            messages name the file.
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file {path} does not exist')
    if window is not None or bbox is not None:
        if not rasterio_available():
            raise ImportError(f'{path}: reading a window or bbox needs rasterio: '
                              f'{GEO_INSTALL_HINT}')
        with open_raster(path, path) as src:
            return read_raster(src, path, bands, window, bbox, stretch, percentiles)
    with open(path, 'rb') as file:
        content = file.read()
    decoded = decode_channels(content, path)
    if decoded is None:
        return _read_with_gdal(path, content, path, bands, stretch, percentiles)
    transform = crs = None
    if rasterio_available():
        transform, crs = _georeferencing(path, decoded.data.shape[:2])
    return to_geo_image(decoded, path, bands, stretch, percentiles, transform, crs)
