"""Raster output: predicted masks (and probabilities) as georeferenced GeoTIFFs.

* Mask GeoTIFF: one uint8 band, 1 = referred object, 0 = background,
  :data:`MASK_NODATA` (declared as the band's nodata) = no data in the source.
* A mask is written on the source's grid: its CRS and (window) transform.
* Whole scenes (:mod:`~fianet_mmseg.apis.scene`) are written block by block to
  a tiled GeoTIFF, then copied to a Cloud-Optimised GeoTIFF with overviews
  (:func:`copy_to_cog`). Neither writer stores a date, so the same pixels give
  the same bytes.

rasterio is optional: ``pip install "fianet-mmseg[geo]"``.
"""
from __future__ import annotations

import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..utils.arrays import as_hw_array
from .raster_input import GeoImage, require_rasterio

PathType = Union[str, Path]

#: Mask value of pixels without data in the source (the mask GeoTIFF's nodata).
MASK_NODATA = 255
#: Block (tile) side of the scene outputs and of their COG copies.
COG_BLOCK = 512


def check_destination(path: PathType, geo: Optional[GeoImage] = None) -> str:
    """``path`` as a string, its folder created; never the source image ``geo.path``."""
    path = str(path)
    if geo is not None and geo.path and osp.abspath(path) == osp.abspath(geo.path):
        raise ValueError(f'refusing to overwrite the input image {path}')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return path


def mask_with_nodata(mask: Any, geo: Optional[GeoImage] = None) -> np.ndarray:
    """``(H, W)`` uint8: 1 object, 0 background, :data:`MASK_NODATA` where ``geo`` has no data."""
    mask = as_hw_array(mask)
    out = (mask > 0).astype(np.uint8)
    if geo is not None:
        if geo.shape != out.shape:
            raise ValueError(f'the mask is {out.shape[1]}x{out.shape[0]} pixels, the image '
                             f'{geo.shape[1]}x{geo.shape[0]}')
        out[~geo.valid] = MASK_NODATA
    return out


def _string_tags(tags: Optional[Dict[str, Any]]) -> Dict[str, str]:
    return {key: '' if value is None else str(value) for key, value in (tags or {}).items()}


def write_mask_geotiff(path: PathType, mask: Any, geo: Optional[GeoImage] = None,
                       tags: Optional[Dict[str, Any]] = None) -> str:
    """Write a mask as a single-band uint8 GeoTIFF with the source's CRS and transform.

    Args:
        path: Output ``.tif`` (never the source image).
        mask: ``(H, W)`` or ``(1, H, W)`` array / tensor, non-zero = object.
        geo: The :class:`GeoImage` the mask is of (its window's transform and
            CRS, nodata pixels set to :data:`MASK_NODATA`); None: a plain TIFF.
        tags: Dataset tags to store (e.g. the expression); values become strings.

    Returns:
        str: ``path``.
    """
    rasterio = require_rasterio()
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    path = check_destination(path, geo)
    values = mask_with_nodata(mask, geo)
    profile = dict(driver='GTiff', width=values.shape[1], height=values.shape[0], count=1,
                   dtype='uint8', nodata=MASK_NODATA, compress='deflate')
    if geo is not None and geo.georeferenced:
        profile.update(crs=geo.crs, transform=geo.transform)
    else:
        profile.update(transform=Affine.identity())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        with rasterio.open(path, 'w', **profile) as dst:
            dst.write(values, 1)
            if tags:
                dst.update_tags(**_string_tags(tags))
    return path


def open_tiled_geotiff(path: PathType, width: int, height: int, crs: Any, transform: Any,
                       nodata: Optional[float] = None,
                       tags: Optional[Dict[str, Any]] = None) -> Any:
    """A new single-band uint8 GeoTIFF, tiled in :data:`COG_BLOCK` blocks, to write block-wise.

    Returns:
        rasterio.io.DatasetWriter: Open for writing (a context manager).
    """
    rasterio = require_rasterio()
    from rasterio.errors import NotGeoreferencedWarning

    profile = dict(driver='GTiff', width=width, height=height, count=1, dtype='uint8',
                   transform=transform, tiled=True, blockxsize=COG_BLOCK,
                   blockysize=COG_BLOCK, compress='deflate')
    if crs is not None:
        profile['crs'] = crs
    if nodata is not None:
        profile['nodata'] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        dst = rasterio.open(str(path), 'w', **profile)
    if tags:
        dst.update_tags(**_string_tags(tags))
    return dst


def copy_to_cog(src_path: PathType, dst_path: PathType, resampling: str = 'nearest') -> str:
    """Copy a GeoTIFF to a Cloud-Optimised GeoTIFF (GDAL's ``COG`` driver) with overviews.

    DEFLATE-compressed :data:`COG_BLOCK`-pixel tiles, overviews halving the
    size until they fit one tile, made with ``resampling`` (``'nearest'`` for
    masks, ``'average'`` for probabilities); nodata, internal masks and tags
    are kept. Written to ``dst_path + '.tmp'`` first, then renamed.
    """
    require_rasterio()
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.shutil import copy as rio_copy

    dst_path = str(dst_path)
    partial = dst_path + '.tmp'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        rio_copy(str(src_path), partial, driver='COG', COMPRESS='DEFLATE',
                 BLOCKSIZE=str(COG_BLOCK), OVERVIEWS='AUTO',
                 OVERVIEW_RESAMPLING=resampling.upper(), RESAMPLING=resampling.upper())
    os.replace(partial, dst_path)
    return dst_path
