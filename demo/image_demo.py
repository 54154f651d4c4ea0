"""Segment what an expression refers to: overlays, masks (GeoTIFF) and polygons (GeoJSON).

    python demo/image_demo.py IMAGE "the gray storage tank on the lower left" \\
        CONFIG CHECKPOINT [--out overlay.png | --out mask.tif] [--geojson tanks.geojson]
    python demo/image_demo.py scene.tif "the storage tank on the lower left" CONFIG CHECKPOINT \\
        --bands 3 2 1 --window 2048 1024 512 512 --out mask.tif --overlay overlay.png
    python demo/image_demo.py --pairs pairs.csv CONFIG CHECKPOINT --out-dir out/
    python demo/image_demo.py --folder scenes/ --expression "the ship" CONFIG CHECKPOINT \\
        --out-dir out/ [--save overlay mask geojson] [--summary out/summary.json]

The files: :mod:`fianet_mmseg.apis.prediction_files`; pairs files:
:mod:`fianet_mmseg.apis.pairs`; batches and their summary:
:mod:`fianet_mmseg.apis.batch_inference`; how images are read:
:mod:`fianet_mmseg.utils.image_io` (docs/inference.md). The exit status is 1
when a pair of a batch failed.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

from mmengine.config import DictAction

from fianet_mmseg.apis import add_precision_argument, init_model
from fianet_mmseg.apis.batch_inference import (
    BatchRun,
    RasterOptions,
    predict_image,
    run_batch,
    single_image_targets,
)
from fianet_mmseg.apis.pairs import folder_jobs, read_pairs
from fianet_mmseg.apis.prediction_files import OUTPUT_KINDS, OutputOptions
from fianet_mmseg.utils.image_io import DEFAULT_PERCENTILES, STRETCH_MODES, is_tiff


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FIANet demo: overlay, mask and polygons of the referred object',
        usage='%(prog)s IMAGE EXPRESSION CONFIG CHECKPOINT [--out FILE] [--geojson FILE]\n'
              '       %(prog)s --pairs FILE CONFIG CHECKPOINT --out-dir DIR\n'
              '       %(prog)s --folder DIR --expression TEXT CONFIG CHECKPOINT --out-dir DIR')
    add = parser.add_argument
    add('positional', nargs='+', metavar='ARG', help='IMAGE EXPRESSION CONFIG CHECKPOINT, or '
        'CONFIG CHECKPOINT with --pairs / --folder')
    add('--pairs', help='CSV (columns image,expression) or JSONL (keys image/img_path, '
        "expression); relative image paths are resolved against the file's folder")
    add('--folder', help='segment every image of this folder (with --expression)')
    add('--expression', help='the expression for the images of --folder')
    add('--out-dir', help='folder for the outputs of --pairs / --folder')
    add('--save', nargs='+', choices=OUTPUT_KINDS, default=['overlay'], help='outputs per pair')
    add('--summary', help='summary table, .csv or .json (default: <out-dir>/summary.csv)')
    add('--batch-size', type=int, default=8, help='pairs per forward pass')
    add('--out', help='overlay image, or the mask when it ends in .tif / .tiff (default: '
        '<image name>_overlay.png in the current folder)')
    add('--overlay', help='also write the overlay here (with a .tif --out)')
    add('--geojson', help="the mask's polygons as GeoJSON")
    add('--bands', nargs='+', type=int, metavar='BAND',
        help='source bands (from 1) for R G B, or one for grey (default: 1 2 3)')
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--window', nargs=4, type=int, help='read this pixel window',
                       metavar=('COL_OFF', 'ROW_OFF', 'WIDTH', 'HEIGHT'))
    where.add_argument('--bbox', nargs=4, type=float, metavar=('LEFT', 'BOTTOM', 'RIGHT', 'TOP'),
                       help="read the pixels this box (in the scene's CRS) touches")
    add('--stretch', choices=STRETCH_MODES, default='auto',
        help='to 8 bit: auto (uint8 as is, else percentile), percentile, none (clip)')
    add('--percentiles', nargs=2, type=float, default=list(DEFAULT_PERCENTILES),
        metavar=('LOW', 'HIGH'), help='percentile stretch limits (default 2 98)')
    add('--geojson-crs', help="reproject the polygons, e.g. EPSG:4326 (default: the source's)")
    add('--simplify', type=float, default=0.0, metavar='PIXELS',
        help='simplify the polygons with this tolerance in pixels (default: none)')
    add('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    add_precision_argument(parser)
    add('--alpha', type=float, default=0.5, help='mask opacity (0-1)')
    add('--overlay-scale', type=int, default=1, metavar='N',
        help='enlarge the overlay N times (nearest neighbour), for small images')
    add('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    args = parser.parse_args(argv)
    args.image = None
    if args.pairs or args.folder:
        problems = [(args.pairs and args.folder, 'give --pairs or --folder, not both'),
                    (len(args.positional) != 2, 'with --pairs / --folder give CONFIG '
                     'CHECKPOINT only'),
                    (not args.out_dir, '--pairs / --folder need --out-dir'),
                    (args.out or args.overlay or args.geojson, '--out, --overlay and --geojson '
                     'are for one image; use --out-dir (and --save) with --pairs / --folder'),
                    (args.folder and not (args.expression or '').strip(),
                     '--folder needs a non-empty --expression'),
                    (args.pairs and args.expression, '--expression is for --folder'),
                    (args.summary and osp.splitext(args.summary)[1].lower() not in
                     ('.csv', '.json'), f'--summary must end in .csv or .json, got {args.summary}')]
    else:
        problems = [(len(args.positional) != 4, 'give IMAGE EXPRESSION CONFIG CHECKPOINT (or '
                     '--pairs FILE / --folder DIR CONFIG CHECKPOINT)'),
                    (args.expression, '--expression is for --folder; give it after IMAGE'),
                    (args.overlay and args.out and not is_tiff(args.out),
                     '--out is the overlay already; --overlay goes with a mask --out (.tif)')]
    problems += [(not 0.0 <= args.alpha <= 1.0, f'--alpha must be in [0, 1], got {args.alpha}'),
                 (args.overlay_scale < 1,
                  f'--overlay-scale must be >= 1, got {args.overlay_scale}'),
                 (args.batch_size < 1, f'--batch-size must be positive, got {args.batch_size}'),
                 (args.bands is not None and len(args.bands) not in (1, 3),
                  '--bands takes 3 bands (R G B) or 1 (grey)'),
                 (args.simplify < 0, f'--simplify must be >= 0, got {args.simplify}')]
    for problem, message in problems:
        if problem:
            parser.error(message)
    if len(args.positional) == 4:
        args.image, args.expression, args.config, args.checkpoint = args.positional
    else:
        args.config, args.checkpoint = args.positional
    return args


def run_demo(argv: Optional[Sequence[str]] = None) -> BatchRun:
    """Parse ``argv``, load the model and run one image or a batch."""
    args = parse_args(argv)
    if args.image is None:
        jobs = read_pairs(args.pairs) if args.pairs else folder_jobs(args.folder, args.expression)
    elif not osp.isfile(args.image):
        raise FileNotFoundError(f'image file {args.image} does not exist')
    model = init_model(args.config, args.checkpoint, device=args.device,
                       cfg_options=args.cfg_options, precision=args.precision, onnx=args.onnx)
    raster = RasterOptions(args.bands, args.window, args.bbox, args.stretch, args.percentiles)
    output = OutputOptions(args.alpha, args.overlay_scale, args.geojson_crs, args.simplify)
    if args.image is None:
        return run_batch(model, jobs, args.out_dir, args.save, args.summary, args.batch_size,
                         raster, output)
    targets = single_image_targets(args.image, args.out, args.overlay, args.geojson)
    return predict_image(model, args.image, args.expression, targets, raster, output)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the demo; returns the written files (in pair order for a batch)."""
    return run_demo(argv).written


if __name__ == '__main__':
    sys.exit(1 if run_demo().failed else 0)
