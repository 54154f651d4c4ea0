"""The files of one prediction: overlay image, mask (PNG or GeoTIFF) and polygons (GeoJSON).

Kinds of :func:`write_outputs`:

* ``overlay``: the image's size (times ``overlay_scale``), the mask filled
  semi-transparently and outlined, the expression on a band at the bottom
  with the decoupled object phrase (orange) and spatial phrases (cyan)
  underlined (:func:`~fianet_mmseg.visualization.render_prediction`).
* ``mask``: a ``.tif`` / ``.tiff`` path is a single-band uint8 GeoTIFF (1
  object, 0 background, 255 no data in the source), georeferenced like the
  input window (needs rasterio); any other path a PNG of 1 object, 0 background.
* ``geojson``: the mask's polygons, each with the expression, the object and
  position phrases, the category, its pixel count and its mean foreground
  probability, in the source's CRS (``geojson_crs`` reprojects; images without
  georeferencing give pixel coordinates).

No output replaces an input image.
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import cv2
import mmcv
import numpy as np

from ..utils.image_io import GeoImage, is_tiff, read_image
from ..visualization import as_image_mask, render_prediction
from .raster_output import mask_with_nodata, write_mask_geotiff
from .vector_output import prediction_to_geojson, write_geojson

OUTPUT_KINDS = ('overlay', 'mask', 'geojson')


@dataclass
class OutputOptions:
    """How the files of a prediction are drawn and written.

    Attributes:
        alpha: Mask opacity of the overlay, in [0, 1].
        overlay_scale: Enlarge the overlay this many times (nearest neighbour).
        geojson_crs: Reproject the polygons to this CRS (e.g. ``'EPSG:4326'``);
            None: the source's.
        simplify: Simplify the polygons with this tolerance in pixels (0: none).
    """

    alpha: float = 0.5
    overlay_scale: int = 1
    geojson_crs: Optional[str] = None
    simplify: float = 0.0


def overlay_for(result, alpha: float, rgb: Optional[np.ndarray] = None,
                valid: Optional[np.ndarray] = None, scale: int = 1) -> np.ndarray:
    """The ``(scale * H, scale * W, 3)`` uint8 BGR overlay of one inference result.

    Args:
        result: The ``SegDataSample``.
        alpha: Mask opacity.
        rgb: The RGB image predicted on (default: ``result.img_path`` read
            with :func:`~fianet_mmseg.utils.image_io.read_image`).
        valid: ``(H, W)`` bool, pixels with data; the mask is drawn only there.
        scale: Enlargement of the overlay (see :func:`render_prediction`).
    """
    image = read_image(result.img_path).image if rgb is None else rgb
    mask = as_image_mask(result.pred_sem_seg.data, image.shape[:2])  # same size or an error
    if valid is not None:
        mask &= valid
    phrases = result.metainfo
    overlay = render_prediction(image, mask, phrases.get('expression'),
                                phrases.get('object_phrase'), phrases.get('spatial_phrases'),
                                alpha=alpha, scale=scale)
    return mmcv.rgb2bgr(overlay)


def check_not_source(path: str, sources: Sequence[Optional[str]]) -> None:
    """Raise ValueError when ``path`` is one of the input images ``sources``."""
    if any(osp.abspath(path) == osp.abspath(source) for source in sources if source):
        raise ValueError(f'refusing to overwrite the input image {path}')


def _write(path: str, image: np.ndarray, sources: Sequence[Optional[str]]) -> None:
    check_not_source(path, sources)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, image):
        raise OSError(f'cannot write {path}')


def mask_tags(result) -> Dict[str, Any]:
    """GeoTIFF tags of a mask: the expression and its decoupling."""
    meta = result.metainfo
    return dict(expression=meta.get('expression'), object_phrase=meta.get('object_phrase'),
                position_phrases='; '.join(meta.get('spatial_phrases') or []),
                category=meta.get('decoupled_category'), values='1 object, 0 background, '
                '255 no data')


def write_outputs(result, geo: Optional[GeoImage], options: OutputOptions,
                  targets: Dict[str, str], sources: Sequence[Optional[str]]) -> List[str]:
    """Write the files ``targets`` names (``overlay`` / ``mask`` / ``geojson`` -> path).

    Args:
        result: The ``SegDataSample`` of the prediction.
        geo: The image predicted on (its pixels, valid mask and georeferencing);
            None: read ``result.img_path`` again, no georeferencing.
        options: Drawing and polygon options.
        targets: Kind -> path, for the kinds in :data:`OUTPUT_KINDS`.
        sources: The input images, never overwritten.

    Returns:
        The written paths, in ``targets`` order.
    """
    written = []
    for kind, path in targets.items():
        check_not_source(path, sources)
        if kind == 'overlay':
            _write(path, overlay_for(result, options.alpha, None if geo is None else geo.image,
                                     None if geo is None else geo.valid, options.overlay_scale),
                   sources)
        elif kind == 'mask':
            mask = result.pred_sem_seg.data[0].cpu().numpy()
            if is_tiff(path):
                write_mask_geotiff(path, mask, geo, tags=mask_tags(result))
            else:  # 1 object, 0 background (and no data)
                _write(path, (mask_with_nodata(mask, geo) == 1).astype(np.uint8), sources)
        elif kind == 'geojson':
            collection = prediction_to_geojson(result, geo, dst_crs=options.geojson_crs,
                                               simplify=options.simplify)
            write_geojson(path, collection, geo)
        else:
            raise ValueError(f'unknown output kind {kind!r} (one of {OUTPUT_KINDS})')
        written.append(path)
    return written
