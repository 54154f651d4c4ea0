"""Bands to the model's 8-bit RGB: band choice and the percentile stretch."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

STRETCH_MODES = ('auto', 'percentile', 'none')
DEFAULT_PERCENTILES = (2.0, 98.0)


def check_percentiles(percentiles: Sequence[float]) -> Tuple[float, float]:
    if len(percentiles) != 2:
        raise ValueError(f'percentiles must be (low, high), got {percentiles!r}')
    low, high = (float(p) for p in percentiles)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f'percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}')
    return low, high


def stretch_to_uint8(data: np.ndarray, valid: np.ndarray, mode: str = 'auto',
                     percentiles: Sequence[float] = DEFAULT_PERCENTILES
                     ) -> Tuple[np.ndarray, Optional[List[Tuple[float, float]]]]:
    """Map bands to 8 bit (see :mod:`fianet_mmseg.utils.image_io`).

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
    low_p, high_p = check_percentiles(percentiles)
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
    check_percentiles(percentiles)
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
