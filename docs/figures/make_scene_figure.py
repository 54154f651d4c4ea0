"""The picture of a whole scene for the README: a mosaic, its windows and its polygons.

    python docs/figures/make_scene_figure.py [--checkpoint CKPT] [--config CONFIG] \\
        [--out docs/figures/scene_polygons.png]

A 1024 x 640 mosaic (UTM 33N, 0.5 m pixels) of textured ground, six "storage
tanks" (bright discs) and dark buildings, written as a GeoTIFF, goes through
the scene path twice: ``--position scene`` with "the storage tank on the lower
left" (the selection) and ``--position ignore`` (every tank). The picture is
the scene in map coordinates with the windows' grid (dashed), every tank's
polygon (thin) and the selected one (thick), the caption below it.

With ``--checkpoint`` the runs are ``demo/rs_image_inference.py SCENE TEXT CONFIG
CKPT --out-dir ...`` (printed; default config: the demo's,
configs/fianet_tiny_synthetic.py, trained by ``make demo`` on 64x64 synthetic
tiles). Without one, a deterministic stand-in replaces FIANet behind the same
:class:`~fianet_mmseg.apis.scene.SceneInferencer` (same pipeline, windows,
blending and position rules): a pixel is "object" where the grey level after
an opening with a 9-pixel disc exceeds 170 (bright blobs at least 9 pixels
wide), whatever the text; the caption says so.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import tempfile
from typing import Optional, Sequence

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEXT = 'the storage tank on the lower left'
TANKS = [(150, 140, 26), (520, 110, 22), (880, 170, 28), (480, 360, 24), (170, 520, 25),
         (860, 500, 23)]
BUILDINGS = [(300, 250, 90, 50), (650, 450, 70, 110), (700, 60, 60, 40)]
GSD, ORIGIN = 0.5, (500000.0, 4650000.0)
WINDOW = 128  # the stand-in's input


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='the README picture of a scene')
    parser.add_argument('--checkpoint', help='a FIANet checkpoint (default: the stand-in)')
    parser.add_argument('--config', default=osp.join(REPO, 'configs',
                                                     'fianet_tiny_synthetic.py'))
    parser.add_argument('--out', default=osp.join(REPO, 'docs', 'figures',
                                                  'scene_polygons.png'))
    return parser.parse_args(argv)


def make_scene(path: str) -> str:
    import rasterio
    from affine import Affine

    height, width = 640, 1024
    rng = np.random.default_rng(7)
    ground = cv2.GaussianBlur(rng.uniform(60, 120, (height, width)).astype(np.float32),
                              (0, 0), 2.0)
    rgb = np.stack([ground * 0.9, ground, ground * 0.8], axis=2)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    for x, y, w, h in BUILDINGS:
        rgb[y:y + h, x:x + w] = (70, 60, 55)
    for x, y, r in TANKS:
        rgb[(cols - x) ** 2 + (rows - y) ** 2 <= r * r] = (232, 232, 226)
    data = np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    with rasterio.open(path, 'w', driver='GTiff', width=width, height=height, count=3,
                       dtype='uint8', crs='EPSG:32633', tiled=True, compress='deflate',
                       transform=Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])) as dst:
        dst.write(data)
    return path


def stand_in(config: str):
    """A module with the config's pipeline (input WINDOW x WINDOW) and the bright-blob rule."""
    import torch
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from torch import nn

    cfg = Config.fromfile(config)
    steps = cfg.test_dataloader.dataset.pipeline
    next(step for step in steps if step['type'] == 'Resize')['scale'] = (WINDOW, WINDOW)

    class BrightBlobs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cfg = cfg

        @torch.no_grad()
        def test_step(self, data):
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
            for image, sample in zip(data['inputs'], data['data_samples']):
                grey = cv2.cvtColor(image.permute(1, 2, 0).numpy().astype(np.uint8),
                                    cv2.COLOR_BGR2GRAY)
                opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, kernel).astype(np.float32)
                logit = torch.from_numpy((opened - 170.0) / 10.0)
                sample.seg_logits = PixelData(data=torch.stack([torch.zeros_like(logit), logit]))
                sample.pred_sem_seg = PixelData(data=(logit > 0).long()[None])
            return data['data_samples']

    return BrightBlobs()


def run_scene(args: argparse.Namespace, scene: str, out_dir: str, position: str) -> dict:
    if args.checkpoint:
        command = [sys.executable, osp.join(REPO, 'demo', 'rs_image_inference.py'), scene, TEXT,
                   args.config, args.checkpoint, '--out-dir', out_dir, '--position', position,
                   '--no-progress']
        print('$ ' + ' '.join(shlex.quote(part) for part in command), flush=True)
        subprocess.run(command, check=True, cwd=REPO)
    else:
        from fianet_mmseg.apis.scene import SceneInferencer

        SceneInferencer(stand_in(args.config), position=position, show_progress=False)(
            scene, TEXT, out_dir)
    with open(osp.join(out_dir, 'summary.json'), encoding='utf-8') as file:
        return json.load(file)


def render(scene: str, every: str, chosen: str, summary: dict, note: str, out: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import rasterio
    import shapely
    from PIL import Image
    from pyogrio.raw import read as ogr_read

    with rasterio.open(scene) as src:
        image = src.read().transpose(1, 2, 0)
        left, bottom, right, top = src.bounds
    figure = plt.figure(figsize=(8.0, 5.6), dpi=100)
    axes = figure.add_axes([0.09, 0.2, 0.88, 0.77])
    axes.imshow(image, extent=(left, right, bottom, top))
    windows = summary['windows']
    side, stride = windows['size'][0] * GSD, windows['stride'][0] * GSD
    for start in np.arange(left, right - side + 1e-6, stride):
        axes.axvline(start, color='white', lw=0.4, ls='--', alpha=0.5)
    for start in np.arange(top, bottom + side - 1e-6, -stride):
        axes.axhline(start, color='white', lw=0.4, ls='--', alpha=0.5)
    for path, colour, width in ((every, '#00c8ff', 1.0), (chosen, '#ffa000', 2.6)):
        _, _, geometries, _ = ogr_read(path)
        for geometry in geometries:
            for polygon in shapely.from_wkb(geometry).geoms:
                xs, ys = polygon.exterior.xy
                axes.plot(xs, ys, color=colour, lw=width)
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.ticklabel_format(useOffset=False, style='plain')
    axes.tick_params(labelsize=7)
    axes.set_xlabel('UTM 33N easting (m)', fontsize=8)
    axes.set_ylabel('northing (m)', fontsize=8)
    text = summary['text']
    caption = (f'"{TEXT}": {windows["total"]} windows ({windows["size"][0]} px, stride '
               f'{windows["stride"][0]} px, corners dashed) read "{text["window_expression"]}";'
               f'\n"{text["position_applied"]}" is applied to the '
               f'scene\'s {summary["objects"]["found"]} objects (thin blue: every tank, '
               f'--position ignore) -> thick orange.\n{note}')
    figure.text(0.07, 0.02, caption, fontsize=8, va='bottom', wrap=True)
    figure.savefig(out + '.tmp.png')
    plt.close(figure)
    Image.open(out + '.tmp.png').convert('RGB').quantize(96).save(out, optimize=True)
    os.remove(out + '.tmp.png')


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    import fianet_mmseg

    fianet_mmseg.register_all_modules()
    with tempfile.TemporaryDirectory(prefix='fianet_scene_figure_') as work:
        scene = make_scene(osp.join(work, 'scene.tif'))
        summary = run_scene(args, scene, osp.join(work, 'scene'), 'scene')
        run_scene(args, scene, osp.join(work, 'ignore'), 'ignore')
        note = (f'FIANet checkpoint {osp.basename(args.checkpoint)}' if args.checkpoint else
                'Stand-in model, not FIANet: "object" = bright blobs at least 9 pixels wide '
                '(whatever the text), behind the same scene path.')
        render(scene, osp.join(work, 'ignore', 'polygons.gpkg'),
               osp.join(work, 'scene', 'polygons.gpkg'), summary, note, args.out)
    print(f'wrote {args.out} ({osp.getsize(args.out) // 1024} KB)')
    return args.out


if __name__ == '__main__':
    main()
