"""The browser demo's work for one upload and expression, without gradio.

:class:`Segmenter` reads the upload with :func:`~fianet_mmseg.utils.image_io.read_image`
(bands, a pixel window and the percentile stretch as options), runs
:func:`~fianet_mmseg.apis.inference_model`, or the scene path
(:class:`~fianet_mmseg.apis.scene.SceneInferencer`) for a georeferenced raster larger
than one model window, and returns what the page shows: the overlay at display size
(:func:`display_overlay`), the expression's phrases (:func:`highlight_phrases`), the
text masks (:func:`text_table`), the mask and GeoJSON downloads and a Markdown summary.
"""
from __future__ import annotations

import os
import os.path as osp
import re
import shutil
import tempfile
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...utils.image_io import read_image
from ...visualization import draw_caption, draw_mask, locate_phrases
from ..inference import inference_model, wordpiece_masks
from ..raster_input import DEFAULT_PERCENTILES, GeoImage, is_tiff, rasterio_available
from ..raster_output import write_mask_geotiff
from ..scene import SceneInferencer
from ..scene.plan import model_input_size
from ..scene.preview import display_shape, scene_preview
from ..vector_output import prediction_to_geojson, write_geojson

SOURCE_CRS = 'source CRS'
#: Longest side of the overlay's image (the caption goes below it).
DISPLAY_SIDE = 512
#: Default upload limit, MiB (``--max-upload-mb``).
MAX_UPLOAD_MB = 512


def parse_ints(text: Optional[str], name: str, counts: Sequence[int]) -> Optional[List[int]]:
    """Integers separated by spaces or commas; None for an empty field.

    Raises:
        ValueError: Not integers, or not one of ``counts`` of them.
    """
    if text is None or not str(text).strip():
        return None
    parts = [part for part in re.split(r'[\s,]+', str(text).strip()) if part]
    try:
        values = [int(part) for part in parts]
    except ValueError as err:
        raise ValueError(f'{name}: expected integers, got {text!r}') from err
    if len(values) not in counts:
        raise ValueError(f'{name}: expected {" or ".join(map(str, counts))} integers, got '
                         f'{len(values)}')
    return values


def highlight_phrases(expression: str, object_phrase: Optional[str],
                      spatial_phrases: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """The expression as ``(text, label)`` runs; labels ``object`` / ``position`` / None."""
    object_span, spatial_spans = locate_phrases(expression, object_phrase, spatial_phrases)
    labels: List[Optional[str]] = [None] * len(expression)
    for start, end in spatial_spans:
        labels[start:end] = ['position'] * (end - start)
    if object_span is not None:
        start, end = object_span
        labels[start:end] = ['object + position' if label else 'object'
                             for label in labels[start:end]]
    runs: List[Tuple[str, Optional[str]]] = []
    for char, label in zip(expression, labels):
        if runs and runs[-1][1] == label:
            runs[-1] = (runs[-1][0] + char, label)
        else:
            runs.append((char, label))
    return runs


def display_overlay(image: np.ndarray, mask: np.ndarray, expression: str,
                    object_phrase: Optional[str], spatial_phrases: Sequence[str],
                    alpha: float = 0.5) -> np.ndarray:
    """The page's overlay: image and mask at :func:`display_shape`, the caption below.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, at its own size or already at display size.
        mask: ``(H, W)`` bool of ``image``'s size.
    """
    height, width = display_shape(*image.shape[:2], DISPLAY_SIDE)
    if (height, width) != image.shape[:2]:
        enlarge = height > image.shape[0]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST
                           if enlarge else cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), (width, height),
                          interpolation=cv2.INTER_NEAREST) > 0
    return draw_caption(draw_mask(image, mask, alpha=alpha), expression, object_phrase,
                        spatial_phrases, inside=False)


def text_table(model, result) -> List[list]:
    """The rows of the text table: :func:`wordpiece_masks` of a result or an expression."""
    return [[row['index'], row['wordpiece'], row['attention_mask'], row['object_mask'],
             row['position_mask']] for row in wordpiece_masks(model, result)]


class Segmenter:
    """What the page does for one upload and expression, without gradio.

    Args:
        model: A model from :func:`~fianet_mmseg.apis.init_model`.
        work_dir: Where the downloads are written (one ``request_*`` sub-folder
            per request; only the newest ``keep`` are kept).
        alpha: Mask opacity of the overlay.
        keep: Request folders to keep.
        max_upload_mb: Largest upload, MiB.
        batch_size: Windows per forward pass on the scene path.
    """

    def __init__(self, model, work_dir: Optional[str] = None, alpha: float = 0.5,
                 keep: int = 16, max_upload_mb: float = MAX_UPLOAD_MB,
                 batch_size: int = 4) -> None:
        self.model = model
        self.max_upload_mb = max_upload_mb
        self.batch_size = batch_size
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='fianet_web_')
        os.makedirs(self.work_dir, exist_ok=True)
        self.alpha = alpha
        self.keep = keep

    def _request_dir(self) -> str:
        """A new folder for one request's downloads; the oldest beyond ``keep`` go."""
        folder = tempfile.mkdtemp(prefix='request_', dir=self.work_dir)
        ours = [osp.join(self.work_dir, name) for name in os.listdir(self.work_dir)
                if name.startswith('request_')]
        ours.sort(key=osp.getmtime)
        for old in ours[:-self.keep]:
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def load(self, path: str, bands: Optional[str] = None, window: Optional[str] = None,
             low: float = DEFAULT_PERCENTILES[0], high: float = DEFAULT_PERCENTILES[1]
             ) -> Tuple[GeoImage, bool]:
        """``(the model's image, whether the mask download is a GeoTIFF)``.

        The upload is read by :func:`read_image`; the mask is a GeoTIFF for a
        TIFF or raster options when rasterio is installed.
        """
        band_list = parse_ints(bands, 'bands', (1, 3))
        window_list = parse_ints(window, 'window', (4,))
        percentiles = (float(low), float(high))
        try:
            geo = read_image(path, bands=band_list, window=window_list,
                             percentiles=percentiles)
        except ValueError as err:
            if 'cannot read' not in str(err):
                raise
            raise ValueError(f'cannot read the image {osp.basename(path)} (PNG, JPEG or '
                             f'(Geo)TIFF expected): {err}') from err
        raster_options = (band_list is not None or window_list is not None
                          or percentiles != tuple(DEFAULT_PERCENTILES))
        return geo, rasterio_available() and (is_tiff(path) or raster_options)

    def __call__(self, path: Optional[str], expression: Optional[str],
                 bands: Optional[str] = None, window: Optional[str] = None,
                 low: float = DEFAULT_PERCENTILES[0], high: float = DEFAULT_PERCENTILES[1],
                 geojson_crs: str = SOURCE_CRS,
                 progress: Optional[Callable[[float, str], None]] = None) -> dict:
        """Segment; returns ``overlay`` (RGB), ``phrases``, ``table``, ``mask_file``,
        ``geojson_file`` and ``info`` (Markdown).

        ``progress(fraction, description)`` is called on the scene path.

        Raises:
            ValueError: No upload, empty expression, an upload above the limit,
                unreadable image, bad options.
        """
        if not path:
            raise ValueError('upload an image first')
        if not expression or not expression.strip():
            raise ValueError('type an expression')
        size_mb = osp.getsize(path) / 2**20
        if size_mb > self.max_upload_mb:
            raise ValueError(f'the upload is {size_mb:.1f} MiB, more than the limit of '
                             f'{self.max_upload_mb:g} MiB (--max-upload-mb)')
        if self.is_scene(path, window):
            return self.segment_scene(path, expression.strip(), bands, low, high, geojson_crs,
                                      progress)
        geo, geotiff_mask = self.load(path, bands, window, low, high)
        result = inference_model(self.model, geo, expression.strip())
        meta = result.metainfo
        mask = result.pred_sem_seg.data[0].cpu().numpy() > 0
        mask &= geo.valid
        rgb = geo.image
        overlay = display_overlay(rgb, mask, meta['expression'], meta.get('object_phrase'),
                                  meta.get('spatial_phrases') or [], alpha=self.alpha)
        out_dir = self._request_dir()
        if geotiff_mask:
            mask_file = write_mask_geotiff(osp.join(out_dir, 'mask.tif'), mask, geo,
                                           tags=dict(expression=meta['expression']))
        else:  # 1 object, 0 background: the one encoding of saved masks
            mask_file = osp.join(out_dir, 'mask.png')
            if not cv2.imwrite(mask_file, mask.astype(np.uint8)):
                raise OSError(f'cannot write {mask_file}')
        dst_crs = None
        note = ''
        if geojson_crs and geojson_crs != SOURCE_CRS:
            if geo.crs is not None:
                dst_crs = geojson_crs
            else:
                note = f' (no CRS in the upload: pixel coordinates, not {geojson_crs})'
        collection = prediction_to_geojson(result, geo, dst_crs=dst_crs)
        geojson_file = write_geojson(osp.join(out_dir, 'mask.geojson'), collection)
        table = text_table(self.model, result)
        spatial = meta.get('spatial_phrases') or []
        crs = 'none (pixel coordinates)' if geo.crs is None else str(geo.crs)
        info = '\n'.join([
            f'**object phrase:** {meta.get("object_phrase") or "-"}  ',
            f'**position phrases:** {"; ".join(spatial) or "-"}  ',
            f'**category:** {meta.get("decoupled_category") or "-"}  ',
            f'**image:** {rgb.shape[1]}x{rgb.shape[0]} pixels, CRS {crs}  ',
            f'**object pixels:** {int(mask.sum())}, polygons: '
            f'{len(collection["features"])}{note}'])
        return dict(overlay=overlay,
                    phrases=highlight_phrases(meta['expression'], meta.get('object_phrase'),
                                              spatial),
                    table=table, mask_file=mask_file, geojson_file=geojson_file, info=info)

    def is_scene(self, path: str, window: Optional[str]) -> bool:
        """A georeferenced raster larger than one model window, no window chosen."""
        if parse_ints(window, 'window', (4,)) is not None or not rasterio_available():
            return False
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(path) as src:
                width, height, crs = src.width, src.height, src.crs
        except RasterioIOError:
            return False
        model_w, model_h = model_input_size(self.model)
        return crs is not None and (width > model_w or height > model_h)

    def segment_scene(self, path: str, expression: str, bands: Optional[str], low: float,
                      high: float, geojson_crs: str,
                      progress: Optional[Callable[[float, str], None]]) -> dict:
        """The scene path (``demo/rs_image_inference.py``'s); outputs as :meth:`__call__`."""
        band_list = parse_ints(bands, 'bands', (1, 3))
        percentiles = (float(low), float(high))
        out_dir = osp.join(self._request_dir(), 'scene')

        def report(stage: str, fraction: float) -> None:
            if progress is not None:
                progress(0.9 * fraction if stage == 'windows' else 0.9 + 0.1 * fraction,
                         f'scene: {stage}')

        inferencer = SceneInferencer(
            self.model, batch_size=self.batch_size, bands=band_list, percentiles=percentiles,
            dst_crs='source' if geojson_crs == SOURCE_CRS else None, show_progress=False)
        summary = inferencer(path, expression, out_dir, progress=report)
        rgb, mask = scene_preview(path, osp.join(out_dir, 'mask.tif'), DISPLAY_SIDE, band_list,
                                  percentiles)
        text = summary['text']
        overlay = display_overlay(rgb, mask, expression, text['object_phrase'],
                                  text['position_phrases'], alpha=self.alpha)
        windows, objects, scene = summary['windows'], summary['objects'], summary['scene']
        gsd = summary['gsd']['used_m']
        scale = 'the scene\'s own pixels' if gsd is None else f'{gsd:g} m/pixel'
        info = '\n'.join([
            f'**object phrase:** {text["object_phrase"] or "-"}  ',
            f'**position phrases:** {"; ".join(text["position_phrases"]) or "-"} '
            f'(applied to the scene: {text["position_applied"] or "none"})  ',
            f'**category:** {text["category"] or "-"}  ',
            f'**scene:** {scene["width"]}x{scene["height"]} pixels, CRS {scene["crs"]}; '
            f'{windows["total"]} windows of {windows["size"][0]}x{windows["size"][1]} at '
            f'{scale}, {windows["skipped_no_data"]} without data skipped  ',
            f'**objects:** {objects["found"]} found, {objects["selected"]} selected; '
            f'{summary["seconds"]} s'] + [f'  \n*{w}*' for w in summary['warnings']])
        return dict(overlay=overlay,
                    phrases=highlight_phrases(expression, text['object_phrase'],
                                              text['position_phrases']),
                    table=text_table(self.model, text['window_expression']),
                    mask_file=osp.join(out_dir, 'mask.tif'),
                    geojson_file=osp.join(out_dir, 'polygons.geojson'), info=info)
