"""Referring segmentation over a whole scene (a GeoTIFF / COG of any size).

    python demo/rs_image_inference.py SCENE.tif "the storage tank on the lower left" \\
        CONFIG CHECKPOINT --out-dir DIR [--gsd 0.5] [--stride N] [--batch-size 8] \\
        [--position scene|window|ignore] [--bands 3 2 1] [--dst-crs EPSG:4326|source] \\
        [--simplify 1.0] [--min-area 20] [--resume] [--overwrite] [--device cuda]

Writes ``DIR/mask.tif`` (1 object, 0 background, 255 no data) and
``DIR/probability.tif`` (uint8, 255 = probability 1; an internal mask where the
scene has no data), Cloud-Optimised GeoTIFFs on the scene's grid with its CRS
and transform; ``DIR/polygons.gpkg`` (the scene's CRS) and
``DIR/polygons.geojson`` (EPSG:4326, RFC 7946), one feature per object with
the expression, its object and position phrases, the category, the mean
probability and the area in m^2; and ``DIR/summary.json`` (windows, seconds,
windows/s, km^2/min, the GSD used, the phrases and where each was applied,
peak memory, warnings).

The scene is read window by window through rasterio at the model's scale
(``--gsd`` metres per pixel, default the config's ``gsd``), never whole; the
windows overlap (``--stride``, model pixels) and are blended smoothly; windows
without data are skipped. ``--position scene`` (the default for scenes of more
than one window) conditions every window on the expression without its
position phrases and applies those to the scene's objects ("on the lower left"
of the scene, not of each window); see docs/inference.md for the rules.

Interrupted? Run the same command with ``--resume``: finished windows are
kept, the outputs come out byte-identical. Several processes::

    torchrun --nproc-per-node 2 demo/rs_image_inference.py SCENE EXPRESSION CONFIG CHECKPOINT \\
        --out-dir DIR

(gloo on CPU, NCCL with ``--device cuda``: process i uses GPU i) split the
windows and give the same outputs as one process.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from datetime import timedelta
from typing import Optional, Sequence

from mmengine.config import DictAction

from fianet_mmseg.apis import add_precision_argument, init_model
from fianet_mmseg.apis.raster_input import DEFAULT_PERCENTILES, STRETCH_MODES
from fianet_mmseg.apis.scene import POSITION_MODES, SceneInferencer, SceneWarning


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FIANet over a whole scene: streamed windows at the model\'s scale, '
                    'blended, as COG rasters and GeoPackage / GeoJSON polygons')
    parser.add_argument('scene', help='the raster (GeoTIFF, COG or any GDAL format)')
    parser.add_argument('expression', help='the referring expression')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', required=True, help='output folder (new or empty)')
    parser.add_argument('--gsd', type=float, help='metres per pixel of the windows (default: '
                        "the config's gsd, else the scene's own pixels)")
    parser.add_argument('--source-gsd', type=float,
                        help="the scene's metres per pixel, for a raster without CRS")
    parser.add_argument('--stride', type=int, help='step between windows, model pixels '
                        '(default 3/4 of the window)')
    parser.add_argument('--batch-size', type=int, default=4, help='windows per forward pass')
    parser.add_argument('--position', choices=POSITION_MODES,
                        help='where position phrases apply (default: scene for scenes of '
                        'more than one window, else window)')
    parser.add_argument('--bands', type=int, nargs='+', help='source bands (from 1) for R G B, '
                        'or one for grey')
    parser.add_argument('--stretch', choices=STRETCH_MODES, default='auto',
                        help='8-bit stretch (auto: uint8 as is, other data by percentiles)')
    parser.add_argument('--percentiles', type=float, nargs=2, default=list(DEFAULT_PERCENTILES),
                        metavar=('LOW', 'HIGH'), help='percentiles of the stretch')
    parser.add_argument('--dst-crs', help="CRS of both vector files ('source' for the scene's); "
                        "default: GeoPackage in the scene's CRS, GeoJSON in EPSG:4326")
    parser.add_argument('--simplify', type=float, default=0.0,
                        help='polygon simplification tolerance in map units (0: pixel edges)')
    parser.add_argument('--min-area', type=float, default=0.0,
                        help='drop objects smaller than this, m^2 (pixels without a GSD)')
    parser.add_argument('--resume', action='store_true', help='continue an interrupted run')
    parser.add_argument('--overwrite', action='store_true',
                        help="replace this tool's outputs in an existing --out-dir")
    parser.add_argument('--keep-work', action='store_true',
                        help='keep DIR/work (the windows\' probabilities) after success')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    add_precision_argument(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.resume and args.overwrite:
        parser.error('--resume and --overwrite exclude each other')
    return args


def init_distributed(device: str) -> str:
    """Join the ``torchrun`` process group (WORLD_SIZE > 1); the device of this process."""
    if int(os.environ.get('WORLD_SIZE', '1')) <= 1:
        return device
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if device.startswith('cuda'):
        torch.cuda.set_device(local_rank)
        device, backend = f'cuda:{local_rank}', 'nccl'
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, timeout=timedelta(hours=24))
    return device


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    show = warnings.formatwarning

    def formatwarning(message, category, *rest) -> str:
        if issubclass(category, SceneWarning):
            return f'warning: {message}\n'
        return show(message, category, *rest)

    warnings.formatwarning = formatwarning
    try:
        device = init_distributed(args.device)
        model = init_model(args.config, args.checkpoint, device=device,
                           cfg_options=args.cfg_options, precision=args.precision,
                           onnx=args.onnx)
        inferencer = SceneInferencer(
            model, gsd=args.gsd, source_gsd=args.source_gsd, stride=args.stride,
            batch_size=args.batch_size, position=args.position, bands=args.bands,
            stretch=args.stretch, percentiles=args.percentiles, dst_crs=args.dst_crs,
            simplify=args.simplify, min_area=args.min_area, keep_work=args.keep_work,
            show_progress=not args.no_progress)
        summary = inferencer(args.scene, args.expression, args.out_dir, resume=args.resume,
                             overwrite=args.overwrite)
    except (ValueError, OSError, ImportError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if summary is not None:
        windows, objects = summary['windows'], summary['objects']
        print(f'{windows["inferred_this_run"]} windows inferred ({windows["skipped_no_data"]} '
              f'without data skipped, {windows["batches_reused"]} batches reused) in '
              f'{summary["seconds"]} s ({summary["windows_per_second"]} windows/s); '
              f'{objects["found"]} objects found, {objects["selected"]} selected; outputs in '
              f'{args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
