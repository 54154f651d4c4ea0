"""Browser demo (demo/web_demo.py over fianet_mmseg.apis.web): its command line, the page's
work, then the page in headless Chromium.

The browser test needs Debian's Chromium at /usr/bin/chromium, Playwright and
gradio; it skips without them, except under CI (``CI`` set), where it fails.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import BASE_CONFIG as CONFIG
from conftest import REPO, options_dict, require, tiny_test_options

from fianet_mmseg.apis import inference_model, init_model

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
EXPRESSION = 'the gray storage tank on the lower left'
WIDTH, HEIGHT = 70, 50
#: (wordpiece, attention, object, position) of EXPRESSION, by hand from the
#: decoupling (object "gray storage tank", position "on the lower left").
TEXT_ROWS = [('[CLS]', 1, 0, 0), ('the', 1, 0, 0), ('gray', 1, 1, 0), ('storage', 1, 1, 0),
             ('tank', 1, 1, 0), ('on', 1, 0, 1), ('the', 1, 0, 1), ('lower', 1, 0, 1),
             ('left', 1, 0, 1), ('[SEP]', 1, 0, 0)]
MAX_LENGTH = 22


def require_browser() -> None:
    """Skip (fail under CI) when Chromium, Playwright or gradio is missing."""
    require(f'Chromium ({CHROMIUM})', 'apt-get install chromium; .ci/run installs it',
            available=os.path.isfile(CHROMIUM))
    require('playwright', 'pip install "fianet-mmseg[dev]"')
    require('gradio', 'pip install "fianet-mmseg[web]"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def scene_bgr() -> np.ndarray:
    """A 70 x 50 synthetic image: noise with a bright block."""
    image = np.random.default_rng(0).integers(0, 120, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[30:45, 5:25] = 230
    return image


@pytest.fixture(scope='module')
def model(rrsisd_root):
    """A tiny random FIANet whose mask of the scene is about half the image.

    A random model predicts one class nearly everywhere; shifting the object
    logit by the median margin makes the mask (and the overlay) non-trivial.
    """
    torch.manual_seed(0)
    model = init_model(CONFIG, None, cfg_options=options_dict(tiny_test_options(rrsisd_root)))
    logits = inference_model(model, scene_bgr(), EXPRESSION).seg_logits.data
    with torch.no_grad():
        model.decode_head.conv_seg.bias[1] -= (logits[1] - logits[0]).median()
    return model


@pytest.fixture(scope='module')
def web():
    import fianet_mmseg.apis.web as web

    return web


def expected_mask(model, image_bgr: np.ndarray) -> np.ndarray:
    return inference_model(model, image_bgr, EXPRESSION).pred_sem_seg.data[0].numpy() > 0


def test_cli_checks_its_options_before_loading_a_model():
    """The script parses its options and stops on a bad one (the config is never read)."""
    done = subprocess.run([sys.executable, str(REPO / 'demo' / 'web_demo.py'), 'missing.py',
                           'missing.pth', '--alpha', '2'], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 2
    assert '--alpha must be in [0, 1], got 2.0' in done.stderr


def test_highlight_phrases_runs(web):
    assert web.highlight_phrases(EXPRESSION, 'gray storage tank', ['on the lower left']) == [
        ('the ', None), ('gray storage tank', 'object'), (' ', None),
        ('on the lower left', 'position')]
    assert web.highlight_phrases('the left tank', 'left tank', ['left']) == [
        ('the ', None), ('left', 'object + position'), (' tank', 'object')]
    assert web.highlight_phrases('a ship', None, []) == [('a ship', None)]
    assert web.parse_ints(' 3, 2 1 ', 'bands', (1, 3)) == [3, 2, 1]
    assert web.parse_ints('', 'bands', (1, 3)) is None
    with pytest.raises(ValueError, match='bands: expected 1 or 3 integers, got 2'):
        web.parse_ints('3 2', 'bands', (1, 3))
    with pytest.raises(ValueError, match="window: expected integers, got 'a b'"):
        web.parse_ints('a b', 'window', (4,))


def assert_overlay_at_display_size(web, overlay, image_rgb, mask, factor):
    """The overlay: image and mask enlarged ``factor`` times, untouched by the caption, which
    is a band below them."""
    from fianet_mmseg.visualization import draw_mask

    height, width = image_rgb.shape[0] * factor, image_rgb.shape[1] * factor
    # the largest whole factor that fits
    assert max(height, width) <= web.DISPLAY_SIDE < max(height, width) + max(image_rgb.shape)
    assert overlay.shape[1] == width and overlay.shape[0] > height + 10
    enlarged = np.repeat(np.repeat(image_rgb, factor, axis=0), factor, axis=1)
    big_mask = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
    assert np.array_equal(overlay[:height], draw_mask(enlarged, big_mask))


def test_segmenter_outputs(web, model, tmp_path):
    """What the page shows, without a browser: PNG and GeoTIFF uploads."""
    segmenter = web.Segmenter(model, str(tmp_path / 'work'))
    png = str(tmp_path / 'scene.png')
    cv2.imwrite(png, scene_bgr())
    out = segmenter(png, EXPRESSION)
    mask = expected_mask(model, scene_bgr())
    assert 0.2 < mask.mean() < 0.8
    assert out['overlay'].dtype == np.uint8  # 70 x 50 shown 7 times larger (490 x 350)
    assert_overlay_at_display_size(web, out['overlay'], scene_bgr()[..., ::-1], mask, 7)
    assert out['phrases'] == [('the ', None), ('gray storage tank', 'object'), (' ', None),
                              ('on the lower left', 'position')]
    assert [tuple(row[1:]) for row in out['table'][:10]] == TEXT_ROWS
    assert [row[0] for row in out['table']] == list(range(MAX_LENGTH))
    assert all(row[1:] == ['[PAD]', 0, 0, 0] for row in out['table'][10:])
    saved = cv2.imread(out['mask_file'], cv2.IMREAD_UNCHANGED)
    assert out['mask_file'].endswith('mask.png')
    assert np.array_equal(saved, mask.astype(np.uint8))  # 1 object, 0 background
    collection = json.loads(Path(out['geojson_file']).read_text())
    assert sum(f['properties']['pixels'] for f in collection['features']) == int(mask.sum())
    assert '**category:** storage tank' in out['info']
    # a plain image cannot be reprojected: pixel coordinates, and the page says so
    assert 'pixel coordinates, not EPSG:4326' in segmenter(png, EXPRESSION,
                                                           geojson_crs='EPSG:4326')['info']
    # downloads of old requests go; those of the newest stay
    segmenter.keep = 2
    newest = segmenter(png, EXPRESSION)['mask_file']
    requests = sorted((tmp_path / 'work').iterdir())
    assert len(requests) == 2 and Path(newest).parent in requests and Path(newest).is_file()
    # a GeoTIFF window with chosen bands: the mask is georeferenced
    rasterio = require('rasterio', 'pip install "fianet-mmseg[geo]"')
    from affine import Affine

    data = np.random.default_rng(3).integers(0, 4000, (4, 40, 60)).astype(np.uint16)
    scene = str(tmp_path / 'scene.tif')
    with rasterio.open(scene, 'w', driver='GTiff', width=60, height=40, count=4,
                       dtype='uint16', crs='EPSG:32633',
                       transform=Affine(0.5, 0, 400000.0, 0, -0.5, 4500000.0)) as dst:
        dst.write(data)
    out = segmenter(scene, EXPRESSION, bands='4 3 2', window='10 5 30 20',
                    geojson_crs='EPSG:4326')
    assert out['overlay'].shape[1] == 30 * 17  # a window: one model input, shown 17x
    with rasterio.open(out['mask_file']) as src:
        assert src.crs.to_epsg() == 32633 and src.shape == (20, 30)
        assert tuple(src.transform)[:6] == (0.5, 0.0, 400005.0, 0.0, -0.5, 4499997.5)
    collection = json.loads(Path(out['geojson_file']).read_text())
    assert 'crs' not in collection  # EPSG:4326 (UTM 33N, 400 km east: about 13.8 E, 40.6 N)
    for feature in collection['features']:
        lon, lat = feature['geometry']['coordinates'][0][0]
        assert 13.5 < lon < 14.0 and 40.4 < lat < 40.9
    with pytest.raises(ValueError, match='upload an image'):
        segmenter(None, EXPRESSION)
    with pytest.raises(ValueError, match='type an expression'):
        segmenter(png, '  ')
    broken = tmp_path / 'broken.png'
    broken.write_text('not an image')
    with pytest.raises(ValueError, match='cannot read the image broken.png'):
        segmenter(str(broken), EXPRESSION)
    small = web.Segmenter(model, str(tmp_path / 'work'), max_upload_mb=0.001)
    with pytest.raises(ValueError, match=r'the upload is 0.0 MiB, more than the limit of '
                                         r'0.001 MiB \(--max-upload-mb\)'):
        small(png, EXPRESSION)


def test_a_scene_larger_than_a_window_goes_through_the_scene_path(web, model, tmp_path):
    """A georeferenced upload of 4 x 3 windows: the scene path's outputs, with progress."""
    rasterio = require('rasterio', 'pip install "fianet-mmseg[geo]"')
    from scene_helpers import mosaic, write_scene

    from fianet_mmseg.apis.scene import SceneInferencer

    image, _ = mosaic(200, 250, [(60, 150, 14), (180, 60, 16)], seed=5)
    scene = write_scene(tmp_path / 'big.tif', image, gsd=0.5)
    steps = []
    out = web.Segmenter(model, str(tmp_path / 'work'))(
        scene, EXPRESSION, progress=lambda fraction, text: steps.append((fraction, text)))
    assert steps[-1] == (1.0, 'scene: outputs') and [f for f, _ in steps] == sorted(
        f for f, _ in steps)
    assert any(text == 'scene: windows' for _, text in steps)
    assert out['mask_file'].endswith('mask.tif') and out['geojson_file'].endswith('.geojson')
    assert '12 windows of 96x96' in out['info'] and 'applied to the scene: on the lower left' \
        in out['info']
    summary = SceneInferencer(model, show_progress=False)(scene, EXPRESSION, tmp_path / 'api')
    with rasterio.open(out['mask_file']) as page, rasterio.open(tmp_path / 'api' / 'mask.tif') \
            as api:
        assert np.array_equal(page.read(1), api.read(1))  # the same path as the CLI / API
    # the text as the windows receive it: without the position phrase (a text without one
    # gets the attention mask as its position mask, never all zero: docs/reference.md 6)
    assert summary['text']['window_expression'] == 'the gray storage tank'
    assert [tuple(row[1:]) for row in out['table'][:7]] == [
        ('[CLS]', 1, 0, 1), ('the', 1, 0, 1), ('gray', 1, 1, 1), ('storage', 1, 1, 1),
        ('tank', 1, 1, 1), ('[SEP]', 1, 0, 1), ('[PAD]', 0, 0, 0)]
    # shown at display size: 250 x 200 enlarged twice, the caption below
    assert out['overlay'].shape[1] == 500 and out['overlay'].shape[0] > 400 + 10


@pytest.mark.slow
def test_page_in_headless_chromium(web, model, tmp_path, monkeypatch):
    """Upload, type, submit; the overlay, the phrases, the mask table and the downloads."""
    require_browser()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv('GRADIO_TEMP_DIR', str(tmp_path / 'gradio'))

    png = str(tmp_path / 'scene.png')
    cv2.imwrite(png, scene_bgr())
    mask = expected_mask(model, scene_bgr())
    app = web.build_app(model, work_dir=str(tmp_path / 'work'))
    port = free_port()
    web.launch(app, '127.0.0.1', port, block=False)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(30_000)
                page.goto(f'http://127.0.0.1:{port}/')
                page.locator('#upload input[type=file]').set_input_files(png)
                page.locator('#upload').get_by_text('scene', exact=False).first.wait_for()
                page.locator('#expression textarea, #expression input').first.fill(EXPRESSION)
                page.locator('#segment').click()
                # the overlay: shown, decoded, the uploaded image's size
                page.wait_for_function(
                    "() => { const i = document.querySelector('#overlay img');"
                    ' return i !== null && i.complete && i.naturalWidth > 0; }')
                size = page.locator('#overlay img').evaluate(
                    'i => [i.naturalWidth, i.naturalHeight]')
                assert size[0] == 7 * WIDTH and size[1] > 7 * HEIGHT  # the caption below
                # the decoupled phrases, highlighted in the phrase colours
                highlighted = page.locator('#phrases .token.highlighted')
                highlighted.first.wait_for()
                assert highlighted.all_inner_texts() == ['gray storage tank',
                                                         'on the lower left']
                colours = highlighted.evaluate_all(
                    'nodes => nodes.map(n => getComputedStyle(n).backgroundColor)')
                assert colours == ['rgba(255, 160, 0, 0.5)', 'rgba(0, 200, 255, 0.5)']
                # the text masks as the model received them (gradio's grid cells
                # "cell-<row>-<column>"; the table renders the rows in view)
                table = page.locator('#masks')
                table.get_by_test_id('cell-9-4').wait_for()
                rows = [tuple(table.get_by_test_id(f'cell-{row}-{column}').inner_text().strip()
                              for column in range(5)) for row in range(10)]
                assert rows == [(str(index), word, str(a), str(o), str(p))
                                for index, (word, a, o, p) in enumerate(TEXT_ROWS)]
                # the downloads: the mask PNG is the model's mask
                link = page.locator('#mask-file a[download]')
                assert link.get_attribute('download') == 'mask.png'
                body = page.request.get(link.get_attribute('href')).body()
                saved = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
                assert np.array_equal(saved, mask.astype(np.uint8))  # 1 object, 0 background
                link = page.locator('#geojson-file a[download]')
                collection = json.loads(page.request.get(link.get_attribute('href')).body())
                assert collection['features'][0]['properties']['expression'] == EXPRESSION
                page.locator('#info').get_by_text('storage tank').first.wait_for()
            finally:
                browser.close()
    finally:
        app.close()


def test_missing_browser_skips_but_fails_under_ci(monkeypatch):
    monkeypatch.setitem(globals(), 'CHROMIUM', '/nonexistent/chromium')
    monkeypatch.setenv('CI', 'true')
    with pytest.raises(pytest.fail.Exception, match=r'nonexistent/chromium.*CI must run every'):
        require_browser()
    monkeypatch.delenv('CI')
    with pytest.raises(pytest.skip.Exception, match=r'/nonexistent/chromium.*apt-get install'):
        require_browser()
