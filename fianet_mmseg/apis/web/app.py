"""The browser demo's page: gradio ``Blocks`` over :class:`~.segmenter.Segmenter`.

gradio is imported when the page is built (:func:`require_gradio`), so the package
imports without it (``pip install "fianet-mmseg[web]"``).
"""
from __future__ import annotations

import os
from typing import Any, Optional

from ..raster_input import DEFAULT_PERCENTILES
from .segmenter import MAX_UPLOAD_MB, SOURCE_CRS, Segmenter

WEB_INSTALL_HINT = 'pip install "fianet-mmseg[web]"'
UPLOAD_TYPES = ['.png', '.jpg', '.jpeg', '.tif', '.tiff']
GEOJSON_CRS_CHOICES = [SOURCE_CRS, 'EPSG:4326']
PHRASE_COLORS = {'object': '#ffa000', 'position': '#00c8ff', 'object + position': '#9be15d'}
TABLE_HEADERS = ['#', 'wordpiece', 'attention', 'object', 'position']
#: Small images (64-pixel tiles) are drawn enlarged, pixels kept sharp.
PAGE_CSS = ('#overlay img { width: 100%; height: 100%; object-fit: contain; '
            'image-rendering: pixelated; }')


def require_gradio() -> Any:
    """Import gradio (analytics off), or raise an ImportError naming the extra."""
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError as err:
        raise ImportError(f'the web demo needs gradio: {WEB_INSTALL_HINT}') from err
    return gradio


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
