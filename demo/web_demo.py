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

The page loads no resource from outside the server (system fonts). The page's work is
:mod:`fianet_mmseg.apis.web` (``Segmenter``, ``build_app``).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mmengine.config import DictAction

from fianet_mmseg.apis import add_precision_argument, init_model
from fianet_mmseg.apis.web import MAX_UPLOAD_MB, build_app, launch, require_gradio


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
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
