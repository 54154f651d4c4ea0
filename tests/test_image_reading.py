"""The one image reader (fianet_mmseg.utils.image_io) at every entry point.

The same pixels saved as a 16-bit PNG, as two 16-bit GeoTIFFs (one that OpenCV
decodes, one that only GDAL decodes) and as their 8-bit stretch must give the
model the same image, hence the same logits, through the Python API, the image
demo (one image and a batch), the web demo's ``Segmenter``, the data sets'
loader (``LoadRefSegImage``) and the test loop with ``--out`` masks. The 8-bit
stretch is computed here by hand from its definition (per band, 2nd and 98th
percentile of the valid pixels, linear, rounded, clipped). Channels, floats,
alpha, nodata, EXIF orientation and the saved mask encoding are pinned too.
"""
from __future__ import annotations

import csv
import json
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import BASE_CONFIG as CONFIG
from conftest import (
    CaptureOutputs,
    load_config,
    load_script,
    options_dict,
    require,
    tiny_test_options,
)
from mmengine.runner import Runner
from mmseg.registry import TRANSFORMS
from PIL import Image

from fianet_mmseg.apis import decode_image, inference_model, init_model, read_image
from fianet_mmseg.apis.web import DISPLAY_SIDE, Segmenter
from fianet_mmseg.utils.image_io import decode_channels

rasterio = require('rasterio', 'pip install "fianet-mmseg[geo]"')
from affine import Affine  # noqa: E402  (installed with rasterio)

HEIGHT, WIDTH = 48, 64
EXPRESSION = 'the bright building on the left'
CRS = 'EPSG:32633'
TRANSFORM = Affine(0.5, 0.0, 400000.0, 0.0, -0.5, 4500000.0)


# ----------------------------------------------------------------------- data
def scene16() -> np.ndarray:
    """(H, W, 3) uint16: texture, a bright block, and outliers the stretch cuts off."""
    rng = np.random.default_rng(5)
    coarse = rng.integers(800, 3000, (HEIGHT // 8, WIDTH // 8, 3)).astype(np.float32)
    base = cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    data = base + rng.normal(0, 120, base.shape)
    data[10:30, 8:28] += 6000
    data[0, :20] = 65535  # < 2 % of the pixels: above the 98th percentile
    data[-1, :20] = 0
    return np.clip(np.rint(data), 0, 65535).astype(np.uint16)


def stretch_by_hand(data: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) -> uint8: per band (low, high) = percentiles 2, 98 of the valid pixels."""
    valid = np.ones(data.shape[:2], bool) if valid is None else valid
    out = np.zeros(data.shape, np.uint8)
    for channel in range(data.shape[2]):
        values = data[..., channel][valid].astype(np.float64)
        low, high = np.percentile(values, [2, 98])
        out[..., channel][valid] = np.clip(np.rint((values - low) * 255 / (high - low)), 0, 255)
    return out


def write_geotiff(path, data: np.ndarray, **profile) -> str:
    """(H, W, C) as a GeoTIFF with CRS and transform (rasterio's defaults, or ``profile``)."""
    with rasterio.open(path, 'w', driver='GTiff', width=data.shape[1], height=data.shape[0],
                       count=data.shape[2], dtype=data.dtype.name, crs=CRS,
                       transform=TRANSFORM, **profile) as dst:
        dst.write(data.transpose(2, 0, 1))
    return str(path)


def exif_rotated(rgb: np.ndarray, path: Path) -> str:
    """A JPEG whose EXIF orientation 6 says "turn 90 degrees clockwise to display"."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)
    return str(path)


def add_png_exif(path: Path, orientation: int = 6) -> str:
    """Insert an eXIf chunk (orientation tag) after a PNG's IHDR chunk."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()[6:]  # without the JPEG "Exif\0\0" prefix
    chunk = (len(payload).to_bytes(4, 'big') + b'eXIf' + payload
             + zlib.crc32(b'eXIf' + payload).to_bytes(4, 'big'))
    data = path.read_bytes()
    path.write_bytes(data[:33] + chunk + data[33:])  # signature (8) + IHDR (25)
    return str(path)


@pytest.fixture(scope='module')
def scene_files(tmp_path_factory):
    """The same pixels four ways, and the 8-bit image each must become."""
    root = tmp_path_factory.mktemp('scene')
    data = scene16()
    expected = stretch_by_hand(data)
    files = dict(png16=str(root / 'scene16.png'), png8=str(root / 'scene8.png'),
                 tif16=write_geotiff(root / 'scene16_gdal.tif', data),  # minimum-is-black
                 tif16_rgb=write_geotiff(root / 'scene16_rgb.tif', data, photometric='RGB'))
    assert cv2.imwrite(files['png16'], data[..., ::-1])
    assert cv2.imwrite(files['png8'], expected[..., ::-1])
    return files, data, expected


@pytest.fixture(scope='module')
def model_and_checkpoint(rrsisd_root, scene_files, tmp_path_factory):
    """A tiny random FIANet whose mask of the scene is about half of it, and its checkpoint."""
    files, _, _ = scene_files
    torch.manual_seed(0)
    model = init_model(CONFIG, None, cfg_options=options_dict(tiny_test_options(rrsisd_root)))
    logits = inference_model(model, files['png8'], EXPRESSION).seg_logits.data
    with torch.no_grad():
        model.decode_head.conv_seg.bias[1] -= (logits[1] - logits[0]).median()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model, path


def load_image_step(path: str) -> np.ndarray:
    """What the configs' loader (``LoadRefSegImage``) gives: BGR."""
    return TRANSFORMS.build(dict(type='LoadRefSegImage'))(dict(img_path=path))['img']


def read_mask(path: str) -> np.ndarray:
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


# --------------------------------------------------------------- the reader
def test_every_file_and_decoder_gives_the_hand_stretch(scene_files):
    files, _, expected = scene_files
    with open(files['tif16'], 'rb') as file:  # three samples OpenCV folds into one
        assert decode_channels(file.read(), files['tif16']) is None  # GDAL decodes it
    for name in ('png16', 'tif16_rgb'):
        with open(files[name], 'rb') as file:
            assert decode_channels(file.read(), name).decoder == 'opencv'
    for name, path in files.items():
        geo = read_image(path)
        assert np.array_equal(geo.image, expected), name
        assert geo.valid.all()
        with open(path, 'rb') as file:
            assert np.array_equal(decode_image(file.read(), path).image, expected), name
        assert np.array_equal(load_image_step(path), expected[..., ::-1]), name
    limits = read_image(files['png16']).stretch
    assert limits[0] == tuple(np.percentile(scene16()[..., 0], [2, 98]))
    assert read_image(files['tif16']).crs.to_string() == CRS  # GeoTIFFs keep their georeference
    assert read_image(files['tif16_rgb']).transform == TRANSFORM
    assert read_image(files['png16']).transform == Affine.identity()
    # what the loaders did before: mmcv's Pillow decoding kept the high bytes of the 16-bit
    # PNG, OpenCV's default flag shifts them (both far from the stretch)
    import mmcv

    before = mmcv.imread(files['png16'], flag='color_ignore_orientation', backend='pillow',
                         channel_order='rgb')
    assert (before != expected).mean() > 0.5


@pytest.mark.slow
def test_same_prediction_through_every_entry_point(scene_files, model_and_checkpoint,
                                                   rrsisd_root, tmp_path):
    files, _, _ = scene_files
    model, checkpoint = model_and_checkpoint
    options = ['--cfg-options', *tiny_test_options(rrsisd_root)]
    # the Python API: the same logits for the four files
    results = {name: inference_model(model, path, EXPRESSION) for name, path in files.items()}
    reference = results['png8']
    mask = reference.pred_sem_seg.data[0].numpy().astype(np.uint8)
    assert 0.2 < mask.mean() < 0.8  # not a trivial mask
    for name, result in results.items():
        assert torch.equal(result.seg_logits.data, reference.seg_logits.data), name
    demo = load_script('demo/image_demo.py')
    # the image demo, one image: the mask GeoTIFF (georeferenced for a GeoTIFF source)
    for name in ('png16', 'tif16'):
        out = tmp_path / f'single_{name}.tif'
        demo.run_demo([files[name], EXPRESSION, CONFIG, str(checkpoint), '--out', str(out),
                       *options])
        with rasterio.open(out) as src:
            assert np.array_equal(src.read(1), mask), name
            assert (src.crs is not None) == (name == 'tif16')
    # the image demo, a batch: masks as GeoTIFF (TIFF sources) or 0/1 PNG
    pairs = tmp_path / 'pairs.csv'
    pairs.write_text('image,expression\n' + ''.join(f'{files[name]},{EXPRESSION}\n'
                                                    for name in files))
    run = demo.run_demo(['--pairs', str(pairs), CONFIG, str(checkpoint), '--out-dir',
                         str(tmp_path / 'batch'), '--save', 'mask', '--batch-size', '2',
                         *options])
    assert [Path(p).name for p in run.written] == [
        '0_scene16_mask.png', '1_scene8_mask.png', '2_scene16_gdal_mask.tif',
        '3_scene16_rgb_mask.tif']
    # batches of two: float noise of another batch shape may flip a pixel whose logit margin
    # is within it (logits of about 0.5; as in test_inference's batched-equals-one-by-one)
    logits = reference.seg_logits.data.numpy()
    clear = np.abs(logits[1] - logits[0]) > 1e-3
    assert clear.mean() > 0.9
    for path in run.written:
        assert np.array_equal(read_mask(path)[clear], mask[clear]), path
    with open(run.summary, newline='') as file:
        assert {row['status'] for row in csv.DictReader(file)} == {'ok'}
    # the web demo's work, without a browser
    segmenter = Segmenter(model, str(tmp_path / 'web'))
    overlays = []
    for name, path in files.items():
        out = segmenter(path, EXPRESSION)
        assert out['mask_file'].endswith('.tif' if name.startswith('tif') else '.png')
        assert np.array_equal(read_mask(out['mask_file']), mask), name
        overlays.append(out['overlay'])
    assert all(np.array_equal(overlay, overlays[0]) for overlay in overlays)


@pytest.mark.slow
def test_test_loop_and_its_out_masks_see_the_same_images(scene_files, model_and_checkpoint,
                                                         tmp_path):
    """tools/test.py's runner: the config's pipeline (LoadRefSegImage) and --out masks."""
    files, _, _ = scene_files
    model, checkpoint = model_and_checkpoint
    ground_truth = tmp_path / 'gt.png'
    assert cv2.imwrite(str(ground_truth), np.zeros((HEIGHT, WIDTH), np.uint8))
    (tmp_path / 'test.jsonl').write_text(''.join(
        json.dumps(dict(img_path=path, seg_map_path=str(ground_truth), expression=EXPRESSION,
                        ref_id=index, sent_id=index)) + '\n'
        for index, path in enumerate(files.values())))
    cfg = load_config('fianet_swin-b_rrsisd.py', options_dict(tiny_test_options(tmp_path)))
    assert cfg.test_dataloader.dataset.pipeline[0].type == 'LoadRefSegImage'
    cfg.update(work_dir=str(tmp_path / 'work'), load_from=str(checkpoint), launcher='none')
    cfg.test_evaluator[0]['output_dir'] = str(tmp_path / 'out')  # what tools/test.py --out sets
    cfg.default_hooks.visualization.update(draw=False)
    runner = Runner.from_cfg(cfg)
    capture = CaptureOutputs()
    runner.register_hook(capture, priority='LOWEST')
    runner.test()
    api = inference_model(model, list(files.values()), EXPRESSION, batch_size=2)  # as batched
    mask = api[1].pred_sem_seg.data  # the 8-bit file
    assert 0.2 < mask.float().mean() < 0.8
    for index, (sample, result) in enumerate(zip(capture.samples, api)):
        assert torch.equal(sample.pred_sem_seg.data, mask), index
        assert torch.equal(result.pred_sem_seg.data, mask), index
        saved = read_mask(str(tmp_path / 'out' / f'{index:06d}_{Path(sample.img_path).stem}.png'))
        assert np.array_equal(saved, mask[0].numpy().astype(np.uint8))  # 1 object, 0 background


# ---------------------------------------------------- channels, floats, nodata
def test_grey_rgba_and_la_images(tmp_path):
    rng = np.random.default_rng(7)
    grey16 = scene16()[..., :1]
    assert cv2.imwrite(str(tmp_path / 'grey16.png'), grey16[..., 0])
    geo = read_image(tmp_path / 'grey16.png')
    assert np.array_equal(geo.image, np.repeat(stretch_by_hand(grey16), 3, axis=2))
    # 16-bit RGBA: alpha is not a colour; alpha-0 pixels (here the brightest part) are no
    # data, out of the statistics and black
    rgba = np.concatenate([scene16(), np.full((HEIGHT, WIDTH, 1), 65535, np.uint16)], axis=2)
    rgba[5:25, 30:60, :3] = 60000
    rgba[5:25, 30:60, 3] = 0
    assert cv2.imwrite(str(tmp_path / 'rgba16.png'), rgba[..., [2, 1, 0, 3]])
    valid = rgba[..., 3] > 0
    geo = read_image(tmp_path / 'rgba16.png')
    expected = stretch_by_hand(rgba[..., :3], valid)
    assert np.array_equal(geo.valid, valid) and np.array_equal(geo.image, expected)
    assert not np.array_equal(expected, stretch_by_hand(rgba[..., :3]))  # the mask mattered
    # 8-bit RGBA and grey + alpha (Pillow): the colours as they are, black where alpha is 0
    rgba8 = rng.integers(1, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba8[:10, :10, 3] = 0
    Image.fromarray(rgba8, 'RGBA').save(tmp_path / 'rgba8.png')
    expected = rgba8[..., :3].copy()
    expected[:10, :10] = 0
    assert np.array_equal(read_image(tmp_path / 'rgba8.png').image, expected)
    Image.fromarray(rgba8[..., [0, 3]], 'LA').save(tmp_path / 'la8.png')
    expected = np.repeat(rgba8[..., :1], 3, axis=2)
    expected[:10, :10] = 0
    assert np.array_equal(read_image(tmp_path / 'la8.png').image, expected)


def test_float_and_four_band_geotiffs_and_nodata(tmp_path):
    rng = np.random.default_rng(8)
    reflectance = rng.random((HEIGHT, WIDTH, 3)).astype(np.float32) * 0.4
    reflectance[3, 4] = np.nan
    valid = np.isfinite(reflectance).all(axis=2)
    for name, profile in (('float_gdal.tif', {}), ('float_rgb.tif', dict(photometric='RGB'))):
        geo = read_image(write_geotiff(tmp_path / name, reflectance, **profile))
        assert np.array_equal(geo.valid, valid), name
        assert np.array_equal(geo.image, stretch_by_hand(reflectance, valid)), name
    grey = reflectance[..., :1]
    Image.fromarray(grey[..., 0]).save(tmp_path / 'grey_float.tif')  # Pillow's mode F
    geo = read_image(tmp_path / 'grey_float.tif')
    assert np.array_equal(geo.image, np.repeat(stretch_by_hand(grey, valid), 3, axis=2))
    # four bands (R, G, B, near infrared; no alpha): the first three, or the chosen ones
    four = np.concatenate([scene16(), rng.integers(0, 9000, (HEIGHT, WIDTH, 1))
                           .astype(np.uint16)], axis=2)
    path = write_geotiff(tmp_path / 'four.tif', four, photometric='RGB')
    assert np.array_equal(read_image(path).image, stretch_by_hand(four[..., :3]))
    assert np.array_equal(read_image(path, bands=(4, 3, 2)).image,
                          stretch_by_hand(four[..., [3, 2, 1]]))
    # a nodata value: the pixels that hold it in a selected band are out
    data = scene16()
    data[40:, 40:, 1] = 7
    path = write_geotiff(tmp_path / 'nodata.tif', data, photometric='RGB', nodata=7)
    valid = (data != 7).all(axis=2)
    geo = read_image(path)
    assert np.array_equal(geo.valid, valid)
    assert np.array_equal(geo.image, stretch_by_hand(data, valid))


def test_without_rasterio_the_same_pixels_or_an_error_naming_the_extra(scene_files, tmp_path,
                                                                       monkeypatch):
    files, _, expected = scene_files
    nodata = scene16()
    nodata[:8, :8, 2] = 7
    nodata_tif = write_geotiff(tmp_path / 'nodata.tif', nodata, photometric='RGB', nodata=7)
    with_rasterio = read_image(nodata_tif)
    five = write_geotiff(tmp_path / 'five.tif', np.ones((8, 8, 5), np.uint16))
    monkeypatch.setitem(sys.modules, 'rasterio', None)
    for name in ('png16', 'png8', 'tif16_rgb'):
        geo = read_image(files[name])
        assert np.array_equal(geo.image, expected) and geo.transform is None, name
    without = read_image(nodata_tif)  # the GDAL_NODATA tag, read without GDAL
    assert np.array_equal(without.image, with_rasterio.image)
    assert np.array_equal(without.valid, with_rasterio.valid) and not without.valid.all()
    for path in (files['tif16'], five):
        with pytest.raises(ImportError, match=rf'{Path(path).name}: a TIFF of \d band\(s\) of '
                                              r'16-bit .*pip install "fianet-mmseg\[geo\]"'):
            read_image(path)
    with pytest.raises(ImportError, match=r'window or bbox needs rasterio'):
        read_image(files['png16'], window=(0, 0, 8, 8))


# ----------------------------------------------------------------------- EXIF
@pytest.mark.slow
def test_exif_orientation_is_ignored_everywhere(model_and_checkpoint, rrsisd_root, tmp_path):
    """Stored pixel order at every entry point (the reference, GDAL and the training data
    use it); OpenCV's and mmcv's default readers would turn the image."""
    model, checkpoint = model_and_checkpoint
    rgb = stretch_by_hand(scene16())
    path = exif_rotated(rgb, tmp_path / 'rotated.jpg')
    assert cv2.imread(path).shape == (WIDTH, HEIGHT, 3)  # the tag is there and OpenCV obeys it
    with Image.open(path) as image:
        stored = np.asarray(image.convert('RGB'))  # the reference's decoding
    assert np.array_equal(read_image(path).image, stored)
    assert np.array_equal(load_image_step(path), stored[..., ::-1])
    result = inference_model(model, path, EXPRESSION)
    from_array = inference_model(model, np.ascontiguousarray(stored[..., ::-1]), EXPRESSION)
    assert torch.equal(result.seg_logits.data, from_array.seg_logits.data)
    mask = result.pred_sem_seg.data[0].numpy().astype(np.uint8)
    assert mask.shape == (HEIGHT, WIDTH) and 0 < mask.mean() < 1
    out = Segmenter(model, str(tmp_path / 'web'))(path, EXPRESSION)
    # the page shows the stored pixels enlarged by a whole factor, the caption below them
    factor = DISPLAY_SIDE // WIDTH
    shown = out['overlay'][:HEIGHT * factor]
    assert out['overlay'].shape[1:] == (WIDTH * factor, 3)
    assert out['overlay'].shape[0] > HEIGHT * factor
    enlarged = np.repeat(np.repeat(stored, factor, 0), factor, 1)
    near_mask = cv2.dilate(np.repeat(np.repeat(mask, factor, 0), factor, 1),
                           np.ones((5, 5), np.uint8)) > 0
    assert np.array_equal(shown[~near_mask], enlarged[~near_mask])
    assert np.array_equal(read_mask(out['mask_file']), mask)
    demo = load_script('demo/image_demo.py')
    written = demo.main([path, EXPRESSION, CONFIG, str(checkpoint), '--out',
                         str(tmp_path / 'overlay.png'), '--cfg-options',
                         *tiny_test_options(rrsisd_root)])
    assert cv2.imread(written[0]).shape == (HEIGHT, WIDTH, 3)
    # a 16-bit PNG with an eXIf chunk, decoded by OpenCV (IMREAD_UNCHANGED ignores the tag)
    png = tmp_path / 'rotated16.png'
    assert cv2.imwrite(str(png), scene16()[..., ::-1])
    add_png_exif(png)
    assert cv2.imread(str(png)).shape == (WIDTH, HEIGHT, 3)
    assert np.array_equal(read_image(png).image, rgb)


# ---------------------------------------------------------------- masks
def test_a_mask_of_another_size_is_an_error_where_masks_meet_images(scene_files, tmp_path):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    files, _, _ = scene_files
    from fianet_mmseg.apis.prediction_files import OutputOptions, write_outputs

    geo = read_image(files['png8'])
    result = SegDataSample(metainfo=dict(expression='the ship'))
    result.pred_sem_seg = PixelData(data=torch.ones(1, HEIGHT - 8, WIDTH, dtype=torch.long))
    with pytest.raises(ValueError, match=rf'the mask is {WIDTH}x{HEIGHT - 8} pixels, the image '
                                         rf'{WIDTH}x{HEIGHT}'):
        write_outputs(result, geo, OutputOptions(), dict(mask=str(tmp_path / 'm.png')), [])
    with pytest.raises(ValueError, match=rf'the mask is {HEIGHT - 8}x{WIDTH} \(HxW\), its '
                                         rf'image {HEIGHT}x{WIDTH}'):
        write_outputs(result, geo, OutputOptions(), dict(overlay=str(tmp_path / 'o.png')), [])
    assert not list(tmp_path.glob('*.png'))
