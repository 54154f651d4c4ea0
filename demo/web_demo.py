"""Browser demo: upload an image, type an expression, see what FIANet segments.

    python demo/web_demo.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 7860] [--device cpu] \
        [--cfg-options KEY=VALUE ...]

then open http://127.0.0.1:7860. Needs gradio (``pip install "fianet-mmseg[web]"``);
georeferenced outputs and windows need rasterio too (``[geo]``).

The page takes a PNG, JPEG or (Geo)TIFF of any bit depth, read by
:func:`fianet_mmseg.apis.read_image` as by the API and the image demo (bands, a
pixel window and the percentile stretch are under "Raster options"), and an
expression. A georeferenced scene larger than one model window (and no window
chosen) goes through the scene path of ``demo/rs_image_inference.py``
(:class:`~fianet_mmseg.apis.scene.SceneInferencer`: windows at the model's
scale, blended, the position phrases applied to the scene; a progress bar),
and its downloads are that path's COG mask and GeoJSON. Uploads above
``--max-upload-mb`` are refused. The page shows:

* the overlay at display size (at most :data:`DISPLAY_SIDE` pixels a side;
  small images enlarged by a whole factor, pixels kept sharp), the mask filled
  and outlined, the expression with its phrases on a band below the image;
* the expression with the decoupled object phrase and position phrases
  highlighted;
* the text as the model receives it: one row per wordpiece position (padding
  included) with its attention, object and position mask values;
* downloads: the mask (1 object, 0 background, as every mask this project
  saves: a georeferenced GeoTIFF, 255 = no data, for a TIFF upload or a raster
  option when rasterio is installed; else a PNG) and the mask's polygons as
  GeoJSON (the source's CRS or EPSG:4326; pixel coordinates for plain images).

The page loads no resource from outside the server (system fonts).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import re
import shutil
import tempfile
from typing import Any, Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.config import DictAction

from fianet_mmseg.apis import (
    inference_model,
    init_model,
    prediction_to_geojson,
    read_image,
    wordpiece_masks,
    write_geojson,
    write_mask_geotiff,
)
from fianet_mmseg.apis.raster_input import (
    DEFAULT_PERCENTILES,
    GeoImage,
    is_tiff,
    rasterio_available,
)
from fianet_mmseg.apis.scene import SceneInferencer
from fianet_mmseg.apis.scene.plan import model_input_size
from fianet_mmseg.apis.scene.preview import display_shape, scene_preview
from fianet_mmseg.visualization import draw_caption, draw_mask, locate_phrases

WEB_INSTALL_HINT = 'pip install "fianet-mmseg[web]"'
UPLOAD_TYPES = ['.png', '.jpg', '.jpeg', '.tif', '.tiff']
SOURCE_CRS = 'source CRS'
GEOJSON_CRS_CHOICES = [SOURCE_CRS, 'EPSG:4326']
PHRASE_COLORS = {'object': '#ffa000', 'position': '#00c8ff', 'object + position': '#9be15d'}
TABLE_HEADERS = ['#', 'wordpiece', 'attention', 'object', 'position']
#: Small images (64-pixel tiles) are drawn enlarged, pixels kept sharp.
PAGE_CSS = ('#overlay img { width: 100%; height: 100%; object-fit: contain; '
            'image-rendering: pixelated; }')
#: Longest side of the overlay's image (the caption goes below it).
DISPLAY_SIDE = 512
#: Default upload limit, MiB (``--max-upload-mb``).
MAX_UPLOAD_MB = 512


def require_gradio() -> Any:
    """Import gradio (analytics off), or raise an ImportError naming the extra."""
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError as err:
        raise ImportError(f'the web demo needs gradio: {WEB_INSTALL_HINT}') from err
    return gradio


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


def build_app(model, work_dir: Optional[str] = None, alpha: float = 0.5,
              max_upload_mb: float = MAX_UPLOAD_MB) -> Any:
    """The gradio ``Blocks`` of the page (not launched)."""
    gr = require_gradio()
    segmenter = Segmenter(model, work_dir, alpha, max_upload_mb=max_upload_mb)

    def run(path, expression, bands, window, low, high, geojson_crs,
            progress=gr.Progress()):
        try:
            out = segmenter(path, expression, bands, window, low, high, geojson_crs,
                            progress=lambda fraction, text: progress(fraction, desc=text))
        except (ValueError, OSError, ImportError) as err:
            raise gr.Error(str(err)) from err
        return (out['overlay'], out['phrases'], out['table'], out['mask_file'],
                out['geojson_file'], out['info'])

    # gradio's copies of uploads and downloads: removed after an hour
    with gr.Blocks(title='FIANet referring segmentation', delete_cache=(3600, 3600)) as app:
        gr.Markdown('## FIANet: segment what an expression refers to\n'
                    'Upload a PNG, JPEG or GeoTIFF, type an expression such as '
                    '*the gray storage tank on the lower left*, press **Segment**.')
        with gr.Row():
            with gr.Column():
                upload = gr.File(label='Image (PNG, JPEG, GeoTIFF)', file_types=UPLOAD_TYPES,
                                 type='filepath', elem_id='upload')
                expression = gr.Textbox(label='Expression', elem_id='expression',
                                        placeholder='the gray storage tank on the lower left')
                with gr.Accordion('Raster options (GeoTIFF)', open=False):
                    bands = gr.Textbox(label='Bands for R G B (from 1; empty: 1 2 3)',
                                       elem_id='bands')
                    window = gr.Textbox(label='Window: col_off row_off width height (empty: '
                                        'the whole scene)', elem_id='window')
                    with gr.Row():
                        low = gr.Number(DEFAULT_PERCENTILES[0], label='Stretch: low percentile')
                        high = gr.Number(DEFAULT_PERCENTILES[1],
                                         label='Stretch: high percentile')
                    geojson_crs = gr.Dropdown(GEOJSON_CRS_CHOICES, value=SOURCE_CRS,
                                              label='GeoJSON coordinates')
                button = gr.Button('Segment', variant='primary', elem_id='segment')
            with gr.Column():
                overlay = gr.Image(label='Overlay', format='png', type='numpy', height=420,
                                   interactive=False, elem_id='overlay')
                info = gr.Markdown(elem_id='info')
        phrases = gr.HighlightedText(label='Decoupled phrases', color_map=PHRASE_COLORS,
                                     show_legend=True, elem_id='phrases')
        table = gr.Dataframe(headers=TABLE_HEADERS, label='Text masks as the model receives '
                             'them (1 = wordpiece in the view)', interactive=False,
                             elem_id='masks')
        with gr.Row():
            mask_file = gr.File(label='Mask', interactive=False, elem_id='mask-file')
            geojson_file = gr.File(label='Polygons (GeoJSON)', interactive=False,
                                   elem_id='geojson-file')
        inputs = [upload, expression, bands, window, low, high, geojson_crs]
        outputs = [overlay, phrases, table, mask_file, geojson_file, info]
        button.click(run, inputs, outputs)
        expression.submit(run, inputs, outputs)
    app.fianet_work_dir = segmenter.work_dir
    app.fianet_max_upload_mb = max_upload_mb
    return app


def launch(app: Any, host: str = '127.0.0.1', port: Optional[int] = None,
           block: bool = True) -> Any:
    """Serve ``app``; ``block=False`` returns at once (the server runs in a thread)."""
    gr = require_gradio()
    theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                              font_mono=['ui-monospace', 'monospace'])
    return app.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                      quiet=True, theme=theme, css=PAGE_CSS,
                      allowed_paths=[app.fianet_work_dir],
                      max_file_size=f'{app.fianet_max_upload_mb}mb', footer_links=[])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fianet_mmseg.apis import add_precision_argument

    parser = argparse.ArgumentParser(description='FIANet browser demo')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (default 127.0.0.1: this machine only)')
    parser.add_argument('--port', type=int, default=7860, help='port (default 7860)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    add_precision_argument(parser)
    parser.add_argument('--alpha', type=float, default=0.5, help='mask opacity (0-1)')
    parser.add_argument('--max-upload-mb', type=float, default=MAX_UPLOAD_MB,
                        help=f'largest upload, MiB (default {MAX_UPLOAD_MB})')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.test_cfg.mode=whole')
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f'--alpha must be in [0, 1], got {args.alpha}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    require_gradio()  # before the model, so a missing extra fails fast
    model = init_model(args.config, args.checkpoint, device=args.device,
                       cfg_options=args.cfg_options, precision=args.precision, onnx=args.onnx)
    app = build_app(model, alpha=args.alpha, max_upload_mb=args.max_upload_mb)
    print(f'serving on http://{args.host}:{args.port}')
    launch(app, args.host, args.port, block=True)


if __name__ == '__main__':
    main()
