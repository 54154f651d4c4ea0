"""Pictures of the three demo commands, for the README.

    python docs/figures/make_geo_figures.py CONFIG CHECKPOINT [--image IMAGE] \\
        [--expression TEXT] [--out-dir docs/figures] [--cfg-options KEY=VALUE ...]

Writes to ``--out-dir``:

* ``overlay.png``: ``demo/image_demo.py IMAGE TEXT CONFIG CHECKPOINT --overlay-scale 4
  --out overlay.png``;
* ``geotiff_polygons.png``: the image made into a 16-bit, 4-band GeoTIFF scene
  (EPSG:32633, 0.5 m pixels, a nodata margin around it), segmented with
  ``demo/image_demo.py scene.tif TEXT ... --bands 1 2 3 --window ... --out mask.tif
  --geojson polygons.geojson``; the picture is the stretched window with the mask
  GeoTIFF filled and the GeoJSON polygons outlined, in map coordinates;
* ``web_demo.png``: a headless-Chromium screenshot of ``demo/web_demo.py CONFIG
  CHECKPOINT`` after uploading IMAGE and submitting TEXT.

Every command runs as a user would run it (a subprocess each); the commands are
printed. Needs the extras ``geo`` and ``web``, Playwright and Debian's Chromium at
``/usr/bin/chromium``. Defaults: the synthetic test image the README's demo
overlays use (``make demo`` generates it) and "the storage tank on the left".
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import List, Optional, Sequence

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
CRS = 'EPSG:32633'
ORIGIN = (500000.0, 4650000.0)  # UTM 33N: about 15 E, 42 N
PIXEL = 0.5  # metres
MARGIN = (40, 24)  # nodata columns / rows around the image in the scene


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='figures of the demo commands')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--image', default='data/synthetic_raw/images/rrsisd/JPEGImages/'
                        '02888.jpg', help='an RGB image (PNG / JPEG)')
    parser.add_argument('--expression', default='the storage tank on the left')
    parser.add_argument('--overlay-scale', type=int, default=4,
                        help="image_demo.py's --overlay-scale for overlay.png")
    parser.add_argument('--out-dir', default=osp.join('docs', 'figures'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='passed on to the demos')
    parser.add_argument('--timeout', type=float, default=300.0,
                        help='seconds to wait for each demo / the web page')
    args = parser.parse_args(argv)
    for name in ('config', 'checkpoint', 'image'):
        if not osp.isfile(getattr(args, name)):
            hint = ' (run `make demo`, or give --image)' if name == 'image' else ''
            parser.error(f'{name} {getattr(args, name)} does not exist{hint}')
    return args


def run(command: List[str], timeout: float) -> None:
    print('$ ' + shlex.join(command), flush=True)
    subprocess.run(command, check=True, timeout=timeout, cwd=REPO)


def demo_command(args: argparse.Namespace, *extra: str) -> List[str]:
    command = [sys.executable, osp.join(REPO, 'demo', 'image_demo.py'), *extra,
               '--device', args.device]
    if args.cfg_options:
        command += ['--cfg-options', *args.cfg_options]
    return command


def make_scene(image_path: str, path: str) -> tuple:
    """The image as a 16-bit, 4-band GeoTIFF with a nodata margin; returns its window."""
    import cv2
    import rasterio
    from affine import Affine

    rgb = cv2.imread(image_path, cv2.IMREAD_COLOR)[..., ::-1].astype(np.uint16)
    height, width = rgb.shape[:2]
    cols, rows = MARGIN
    scene = np.zeros((4, height + 2 * rows, width + 2 * cols), np.uint16)  # 0 = nodata
    inner = scene[:, rows:rows + height, cols:cols + width]
    inner[:3] = rgb.transpose(2, 0, 1) * 40 + 200  # 12-bit-like sensor values, never 0
    inner[3] = rgb.mean(axis=2) * 30 + 300  # a fourth band, unused here
    transform = Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1])
    with rasterio.open(path, 'w', driver='GTiff', width=scene.shape[2], height=scene.shape[1],
                       count=4, dtype='uint16', crs=CRS, transform=transform,
                       nodata=0) as dst:
        dst.write(scene)
    return cols, rows, width, height


def render_geo(scene: str, window: tuple, mask_path: str, geojson_path: str, expression: str,
               out: str) -> None:
    """The stretched window, the mask GeoTIFF and the polygons, on map axes."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import rasterio

    from fianet_mmseg.apis import read_geotiff

    geo = read_geotiff(scene, bands=(1, 2, 3), window=window)
    with rasterio.open(mask_path) as src:
        mask = src.read(1)
        left, bottom, right, top = src.bounds
        crs = src.crs
    with open(geojson_path, encoding='utf-8') as file:
        features = json.load(file)['features']
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * (top - bottom) / (right - left) + 0.8), dpi=120)
    extent = (left, right, bottom, top)
    ax.imshow(geo.image, extent=extent, interpolation='nearest')
    fill = np.zeros(mask.shape + (4,), np.float32)
    fill[mask == 1] = (1.0, 0.25, 0.25, 0.45)
    ax.imshow(fill, extent=extent, interpolation='nearest')
    for feature in features:
        geometry = feature['geometry']
        polygons = [geometry['coordinates']] if geometry['type'] == 'Polygon' \
            else geometry['coordinates']
        for polygon in polygons:
            for ring in polygon:
                points = np.asarray(ring)
                ax.plot(points[:, 0], points[:, 1], color='yellow', linewidth=1.2)
    ax.set_xlabel(f'easting (m, {crs})')
    ax.set_ylabel('northing (m)')
    ax.ticklabel_format(useOffset=False, style='plain')
    ax.tick_params(labelsize=7)
    ax.set_title(f'"{expression}": mask.tif (red), polygons.geojson (yellow)', fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def screenshot_web(args: argparse.Namespace, out: str) -> None:
    """Serve the web demo, upload the image, submit the expression, screenshot the page."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    command = [sys.executable, osp.join(REPO, 'demo', 'web_demo.py'), args.config,
               args.checkpoint, '--port', str(port), '--device', args.device]
    if args.cfg_options:
        command += ['--cfg-options', *args.cfg_options]
    print('$ ' + shlex.join(command), flush=True)
    server = subprocess.Popen(command, cwd=REPO)
    try:
        url = f'http://127.0.0.1:{port}/'
        deadline = time.monotonic() + args.timeout
        while True:  # until the server answers
            if server.poll() is not None:
                raise RuntimeError(f'the web demo exited with status {server.returncode}')
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f'the web demo did not answer on {url}') from None
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={'width': 1280, 'height': 900})
                page.set_default_timeout(args.timeout * 1000)
                page.goto(url)
                page.locator('#upload input[type=file]').set_input_files(
                    osp.abspath(args.image))
                page.locator('#upload').get_by_text(
                    osp.splitext(osp.basename(args.image))[0]).first.wait_for()
                page.locator('#expression textarea, #expression input').first.fill(
                    args.expression)
                page.locator('#segment').click()
                page.wait_for_function(
                    "() => { const i = document.querySelector('#overlay img');"
                    ' return i !== null && i.complete && i.naturalWidth > 0; }')
                page.locator('#mask-file a[download]').wait_for()
                page.screenshot(path=out, full_page=True)
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    outputs = [osp.join(args.out_dir, name) for name in
               ('overlay.png', 'geotiff_polygons.png', 'web_demo.png')]
    # 1. one image -> overlay
    run(demo_command(args, args.image, args.expression, args.config, args.checkpoint,
                     '--overlay-scale', str(args.overlay_scale), '--out', outputs[0]),
        args.timeout)
    # 2. a GeoTIFF window -> mask GeoTIFF + GeoJSON polygons
    with tempfile.TemporaryDirectory(prefix='fianet_geo_figure_') as work:
        scene = osp.join(work, 'scene.tif')
        window = make_scene(args.image, scene)
        mask, polygons = osp.join(work, 'mask.tif'), osp.join(work, 'polygons.geojson')
        run(demo_command(args, scene, args.expression, args.config, args.checkpoint,
                         '--bands', '1', '2', '3', '--window', *map(str, window),
                         '--out', mask, '--geojson', polygons), args.timeout)
        render_geo(scene, window, mask, polygons, args.expression, outputs[1])
    # 3. the web page
    screenshot_web(args, outputs[2])
    for path in outputs:
        print(f'written {path}')
    return outputs


if __name__ == '__main__':
    main()
