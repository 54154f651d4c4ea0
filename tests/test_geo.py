"""GeoTIFF input and georeferenced outputs (fianet_mmseg.apis.raster_input, .raster_output,
.vector_output; demo/image_demo.py).

Scenes are synthetic GeoTIFFs written here with a known CRS and a transform
whose origin and pixel size (2 m wide, 3 m high) are not trivial. Expected map
coordinates are computed by hand from pixel indices:
``x = X0 + column * 2``, ``y = Y0 - row * 3``; longitudes / latitudes from
the spherical Web Mercator formulas.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import BASE_CONFIG as CONFIG
from conftest import REPO, load_script, options_dict, require, tiny_test_options
from conftest import write_raster as _write_raster

rasterio = require('rasterio', 'pip install "fianet-mmseg[geo]"')
from affine import Affine  # noqa: E402  (installed with rasterio)

from fianet_mmseg.apis import (  # noqa: E402
    GeoImage,
    foreground_probability,
    inference_model,
    init_model,
    mask_polygons,
    mask_to_geojson,
    raster_input,
    read_geotiff,
    wordpiece_masks,
    write_mask_geotiff,
)

X0, Y0, PX, PY = 1113194.9, 5000000.0, 2.0, 3.0  # EPSG:3857 origin (about 10 E, 41 N)
TRANSFORM = Affine(PX, 0.0, X0, 0.0, -PY, Y0)
R_EARTH = 6378137.0
EXPRESSION = 'the gray storage tank on the lower left'


def write_raster(path, data: np.ndarray, transform=TRANSFORM, crs='EPSG:3857', nodata=None):
    """A (C, H, W) array as a GeoTIFF in this file's EPSG:3857 grid by default."""
    return _write_raster(path, data, transform, crs=crs, nodata=nodata)


def map_xy(col: float, row: float):
    return X0 + col * PX, Y0 - row * PY


def mercator_to_lonlat(x: float, y: float):
    return (math.degrees(x / R_EARTH),
            math.degrees(2.0 * math.atan(math.exp(y / R_EARTH)) - math.pi / 2.0))


def ring_bounds(geometry) -> tuple:
    points = np.array(geometry['coordinates'][0], dtype=np.float64)
    return points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()


# ----------------------------------------------------------------- reading
def test_percentile_stretch_per_band_without_nodata(tmp_path):
    # 4 bands, 12 x 10 pixels; the first 101 pixels of band b hold 1000 b + 10 i
    # (i = 0..100), the other 19 are nodata (65535, which would move the 98th
    # percentile if counted). Over 0..100 the 2nd / 98th percentiles are 2 / 98,
    # so band b maps 1000 b + 20 -> 0 and 1000 b + 980 -> 255.
    data = np.full((4, 10, 12), 65535, np.uint16)
    flat = data.reshape(4, -1)
    for band in range(4):
        flat[band, :101] = 1000 * (band + 1) + 10 * np.arange(101)
    path = write_raster(tmp_path / 'scene16.tif', data, nodata=65535)
    geo = read_geotiff(path, bands=(3, 2, 1))
    assert geo.bands == (3, 2, 1) and geo.window == (0, 0, 12, 10)
    assert geo.stretch == [(3020.0, 3980.0), (2020.0, 2980.0), (1020.0, 1980.0)]
    valid = np.zeros(120, bool)
    valid[:101] = True
    assert np.array_equal(geo.valid.ravel(), valid)
    image = geo.image.reshape(-1, 3)
    i = np.arange(101, dtype=np.float64)
    expected = np.clip(np.rint((10 * i - 20) * 255.0 / 960.0), 0, 255).astype(np.uint8)
    for channel in range(3):  # the same ramp in every band, one offset per band
        assert np.array_equal(image[:101, channel], expected)
    assert (image[101:] == 0).all()  # nodata is black
    assert expected[2] == 0 and expected[98] == 255 and expected[50] == 128
    # other limits, and the BGR view the inference pipeline takes
    wide = read_geotiff(path, bands=(1, 1, 1), percentiles=(0, 100))
    assert wide.stretch == [(1000.0, 2000.0)] * 3
    assert wide.image[0, 1, 0] == round(10 * 255 / 1000)
    assert np.array_equal(geo.bgr[..., 0], geo.image[..., 2])


def test_uint8_kept_grey_repeated_float_nan_is_nodata(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 6, 7), dtype=np.uint8)
    path = write_raster(tmp_path / 'rgb8.tif', rgb, crs=None, transform=Affine.identity())
    geo = read_geotiff(path)
    assert np.array_equal(geo.image, rgb.transpose(1, 2, 0)) and geo.stretch is None
    assert not geo.georeferenced and geo.crs is None
    stretched = read_geotiff(path, stretch='percentile', percentiles=(0, 100))
    low, high = float(rgb[0].min()), float(rgb[0].max())
    assert stretched.stretch[0] == (low, high)
    assert stretched.image[..., 0].min() == 0 and stretched.image[..., 0].max() == 255
    # one float band: grey in all three channels, NaN out of the statistics
    grey = np.linspace(0.0, 1.0, 42, dtype=np.float32).reshape(1, 6, 7)
    grey[0, 0, 0] = np.nan
    geo = read_geotiff(write_raster(tmp_path / 'grey.tif', grey), percentiles=(0, 100))
    assert not geo.valid[0, 0] and geo.valid.sum() == 41
    assert geo.stretch == [(float(grey[0].ravel()[1]), 1.0)] * 3
    assert np.array_equal(geo.image[..., 0], geo.image[..., 2])
    assert geo.image[0, 1, 0] == 0 and geo.image[-1, -1, 0] == 255


def test_window_and_bbox_transform(tmp_path):
    data = np.arange(2 * 40 * 50, dtype=np.uint16).reshape(2, 40, 50)
    data = np.concatenate([data, data[:1]])  # 3 bands
    path = write_raster(tmp_path / 'scene.tif', data)
    geo = read_geotiff(path, window=(7, 5, 20, 11), stretch='none')
    assert geo.image.shape == (11, 20, 3)
    assert tuple(geo.transform)[:6] == (PX, 0.0, X0 + 7 * PX, 0.0, -PY, Y0 - 5 * PY)
    assert geo.crs.to_epsg() == 3857
    # a box from the middle of pixel (col 10, row 4) to that of (col 14, row 8)
    # touches columns 10..14 and rows 4..8
    left, top = map_xy(10.5, 4.5)
    right, bottom = map_xy(14.5, 8.5)
    geo = read_geotiff(path, bbox=(left, bottom, right, top))
    assert geo.window == (10, 4, 5, 5)
    assert tuple(geo.transform)[:6] == (PX, 0.0, X0 + 10 * PX, 0.0, -PY, Y0 - 4 * PY)
    # a box over the edge is cut to the raster
    left, top = map_xy(45.0, -3.0)
    right, bottom = map_xy(60.0, 2.0)
    assert read_geotiff(path, bbox=(left, bottom, right, top)).window == (45, 0, 5, 2)


def test_read_errors_name_the_file(tmp_path):
    data = np.ones((4, 8, 8), np.uint16)
    path = write_raster(tmp_path / 'four.tif', data)
    with pytest.raises(ValueError, match=r'four.tif: band 5 does not exist .*1 to 4'):
        read_geotiff(path, bands=(5, 2, 1))
    with pytest.raises(ValueError, match=r'four.tif: give 3 bands'):
        read_geotiff(path, bands=(1, 2))
    with pytest.raises(ValueError, match=r'four.tif: window .* not inside the raster of 8x8'):
        read_geotiff(path, window=(4, 0, 5, 8))
    with pytest.raises(ValueError, match=r'four.tif: bbox .* does not overlap'):
        read_geotiff(path, bbox=(0.0, 0.0, 10.0, 10.0))
    with pytest.raises(ValueError, match='window or a bbox, not both'):
        read_geotiff(path, window=(0, 0, 2, 2), bbox=(0.0, 0.0, 1.0, 1.0))
    two = write_raster(tmp_path / 'two.tif', data[:2])
    with pytest.raises(ValueError, match=r'two.tif: 2 bands; choose the bands'):
        read_geotiff(two)
    empty = write_raster(tmp_path / 'empty.tif', np.zeros((3, 4, 4), np.uint16), nodata=0)
    with pytest.raises(ValueError, match=r'empty.tif: the window .* no valid pixel'):
        read_geotiff(empty)
    with pytest.raises(ValueError, match='percentiles'):
        read_geotiff(path, percentiles=(98, 2))
    with pytest.raises(FileNotFoundError, match='nope.tif'):
        read_geotiff(tmp_path / 'nope.tif')
    broken = tmp_path / 'broken.tif'
    broken.write_text('not a raster')
    with pytest.raises(ValueError, match=r'cannot read image .*broken.tif: Pillow, OpenCV '
                                          r'and GDAL cannot decode it'):
        read_geotiff(broken)


def test_missing_rasterio_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'rasterio', None)  # import rasterio -> ImportError
    with pytest.raises(ImportError, match=r'pip install "fianet-mmseg\[geo\]"'):
        read_geotiff(tmp_path / 'scene.tif')
    assert not raster_input.rasterio_available()


@pytest.mark.slow
def test_package_and_demos_import_without_the_extras():
    """rasterio, shapely and gradio blocked: imports work, use names the extra."""
    code = (
        'import sys\n'
        'for name in ("rasterio", "shapely", "gradio"):\n'
        '    sys.modules[name] = None\n'
        'import fianet_mmseg.apis\n'
        'import fianet_mmseg.apis.web as web\n'
        'sys.path.insert(0, "tests")\n'
        'from conftest import load_script\n'
        'load_script("demo/image_demo.py")\n'
        'load_script("demo/web_demo.py")\n'
        'for call in (web.require_gradio,\n'
        '             lambda: fianet_mmseg.apis.read_geotiff("scene.tif")):\n'
        '    try:\n'
        '        call()\n'
        '    except ImportError as err:\n'
        '        print(err)\n')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines == ['the web demo needs gradio: pip install "fianet-mmseg[web]"',
                     'GeoTIFF input and georeferenced outputs need rasterio: '
                     'pip install "fianet-mmseg[geo]"']


# ------------------------------------------------------------------ outputs
def test_polygons_in_map_coordinates_with_probability_and_nodata():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 3:10] = 1  # region A: 28 pixels
    mask[10:18, 15:25] = 1  # region B: 80 pixels, with a 2x2 hole
    mask[13:15, 18:20] = 0
    mask[0, 29] = 1  # a nodata pixel: never in a polygon
    valid = np.ones_like(mask, bool)
    valid[0, 29] = False
    probability = np.full(mask.shape, 0.2)
    probability[2:6, 3:10] = 0.7
    probability[10:18, 15:25] = 0.9
    probability[10, 15:25] = 0.6  # B's mean: (10 * 0.6 + 66 * 0.9) / 76
    polygons = mask_polygons(mask, TRANSFORM, valid, probability)
    assert [pixels for _, pixels, _ in polygons] == [76, 28]
    (geom_b, _, mean_b), (geom_a, _, mean_a) = polygons
    assert mean_a == pytest.approx(0.7) and mean_b == pytest.approx((6 + 66 * 0.9) / 76)
    left, top = map_xy(3, 2)
    right, bottom = map_xy(10, 6)
    assert ring_bounds(geom_a) == pytest.approx((left, bottom, right, top))
    assert len(geom_b['coordinates']) == 2  # outer ring and the hole
    hole = np.array(geom_b['coordinates'][1])
    left, top = map_xy(18, 13)
    right, bottom = map_xy(20, 15)
    assert (hole[:, 0].min(), hole[:, 1].min(), hole[:, 0].max(), hole[:, 1].max()) == \
        pytest.approx((left, bottom, right, top))
    # pixel coordinates without a transform; simplification keeps a rectangle exact
    (geom, _, _), _ = mask_polygons(mask, None, valid)
    assert ring_bounds(geom) == (15, 10, 25, 18)
    staircase = np.tril(np.ones((12, 12), np.uint8))
    exact = mask_polygons(staircase, TRANSFORM)[0][0]
    simple = mask_polygons(staircase, TRANSFORM, simplify=1.5)[0][0]
    assert len(simple['coordinates'][0]) < len(exact['coordinates'][0])
    assert ring_bounds(simple) == pytest.approx(ring_bounds(exact))
    assert mask_polygons(np.zeros((4, 4), np.uint8), TRANSFORM) == []


def test_geojson_properties_and_wgs84():
    mask = np.zeros((10, 12), np.uint8)
    mask[4:7, 2:5] = 1
    props = dict(expression='the ship', object_phrase='ship')
    native = mask_to_geojson(mask, TRANSFORM, 'EPSG:3857', properties=props)
    assert native['crs']['properties']['name'] == 'urn:ogc:def:crs:EPSG::3857'
    (feature,) = native['features']
    assert feature['properties'] == dict(props, region=1, pixels=9, mean_probability=None)
    wgs84 = mask_to_geojson(mask, TRANSFORM, 'EPSG:3857', dst_crs='EPSG:4326')
    assert 'crs' not in wgs84  # RFC 7946: longitude, latitude on WGS 84
    ring = wgs84['features'][0]['geometry']['coordinates'][0]
    corners = [mercator_to_lonlat(*map_xy(col, row)) for col in (2, 5) for row in (4, 7)]
    for point in ring:
        assert any(tuple(point) == pytest.approx(corner, abs=1e-9) for corner in corners)
    for corner in corners:
        assert any(tuple(point) == pytest.approx(corner, abs=1e-9) for point in ring)
    with pytest.raises(ValueError, match='no CRS'):
        mask_to_geojson(mask, dst_crs='EPSG:4326')


def test_mask_geotiff_is_georeferenced_with_nodata(tmp_path):
    data = np.full((3, 6, 8), 500, np.uint16)
    data[:, :, 0] = 0
    source = write_raster(tmp_path / 'scene.tif', data, nodata=0)
    geo = read_geotiff(source, window=(0, 1, 8, 4))
    mask = np.zeros((4, 8), np.int64)
    mask[1:3, 3:6] = 1
    mask[:, 0] = 1  # predicted where the source has no data
    out = write_mask_geotiff(tmp_path / 'out' / 'mask.tif', torch.from_numpy(mask)[None], geo,
                             tags=dict(expression='the ship'))
    with rasterio.open(out) as src:
        assert src.count == 1 and src.dtypes == ('uint8',) and src.nodata == 255
        assert src.crs.to_epsg() == 3857
        assert tuple(src.transform)[:6] == (PX, 0.0, X0, 0.0, -PY, Y0 - PY)
        assert src.tags()['expression'] == 'the ship'
        values = src.read(1)
    expected = np.zeros((4, 8), np.uint8)
    expected[1:3, 3:6] = 1
    expected[:, 0] = 255
    assert np.array_equal(values, expected)
    with pytest.raises(ValueError, match='refusing to overwrite the input image'):
        write_mask_geotiff(source, mask, geo)
    with pytest.raises(ValueError, match='the mask is 3x2 pixels, the image 8x4'):
        write_mask_geotiff(tmp_path / 'small.tif', np.zeros((2, 3)), geo)


# ------------------------------------------------------------- with a model
@pytest.fixture(scope='module')
def tiny_model(rrsisd_root):
    """The tiny random FIANet of the inference tests (no checkpoint needed here)."""
    torch.manual_seed(0)
    return init_model(CONFIG, None, cfg_options=options_dict(tiny_test_options(rrsisd_root)))


@pytest.mark.slow
def test_inference_reads_tiffs_and_geo_images(tiny_model, tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (3, 40, 56), dtype=np.uint8)
    plain = write_raster(tmp_path / 'plain.tif', rgb, crs=None, transform=Affine.identity())
    expression = 'the storage tank on the left'
    by_path = inference_model(tiny_model, plain, expression)
    as_array = inference_model(tiny_model, np.ascontiguousarray(rgb[::-1].transpose(1, 2, 0)),
                               expression)  # BGR
    assert torch.equal(by_path.pred_sem_seg.data, as_array.pred_sem_seg.data)
    assert by_path.img_path == plain and by_path.pred_sem_seg.data.shape == (1, 40, 56)
    # a 16-bit 4-band window: the model sees the hand-stretched bands 4, 3, 2
    wide = rng.integers(100, 4100, (4, 50, 60)).astype(np.uint16)
    scene = write_raster(tmp_path / 'scene.tif', wide)
    geo = read_geotiff(scene, bands=(4, 3, 2), window=(5, 6, 48, 36), percentiles=(0, 100))
    window = wide[:, 6:42, 5:53].astype(np.float64)
    expected = np.empty((36, 48, 3), np.uint8)
    for channel, band in enumerate((4, 3, 2)):  # RGB
        values = window[band - 1]
        expected[..., channel] = np.rint((values - values.min()) * 255.0 /
                                         (values.max() - values.min()))
    assert np.array_equal(geo.image, expected)
    from_geo = inference_model(tiny_model, geo, expression)
    from_array = inference_model(tiny_model, np.ascontiguousarray(expected[..., ::-1]),
                                 expression)
    assert torch.equal(from_geo.seg_logits.data, from_array.seg_logits.data)
    assert from_geo.img_path == scene and from_geo.pred_sem_seg.data.shape == (1, 36, 48)
    # the decoupler's category, the probability and the text as the model got it
    assert from_geo.decoupled_category == 'storage tank'
    assert from_geo.object_phrase == 'storage tank'
    logits = from_geo.seg_logits.data.double()
    probability = foreground_probability(from_geo)
    assert probability.shape == (36, 48) and probability.dtype == np.float32
    by_hand = 1.0 / (1.0 + torch.exp(logits[0] - logits[1]))
    np.testing.assert_allclose(probability, by_hand.numpy(), atol=1e-6, rtol=0)
    rows = wordpiece_masks(tiny_model, from_geo)
    assert len(rows) == 22  # the config's max_length
    words = ['[CLS]', 'the', 'storage', 'tank', 'on', 'the', 'left', '[SEP]']
    assert [row['wordpiece'] for row in rows] == words + ['[PAD]'] * 14
    assert [row['attention_mask'] for row in rows] == [1] * 8 + [0] * 14
    assert [row['object_mask'] for row in rows] == [0, 0, 1, 1] + [0] * 18
    assert [row['position_mask'] for row in rows] == [0] * 4 + [1, 1, 1] + [0] * 15
    assert rows[2]['input_id'] == from_geo.input_ids[2].item()


def test_inference_without_rasterio_reads_what_pillow_and_opencv_read(tiny_model, tmp_path,
                                                                     monkeypatch):
    """Without rasterio: 8-bit and 16-bit RGB TIFFs read as with it (Pillow, OpenCV); a
    4-band minimum-is-black TIFF, which OpenCV folds into one channel, names the extra.
    (Before, every TIFF but 8-bit RGB / grey was refused without rasterio.)"""
    import cv2

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    plain = str(tmp_path / 'plain.tif')
    cv2.imwrite(plain, rgb)
    deep_rgb = str(tmp_path / 'deep_rgb.tif')  # 16-bit RGB, photometric RGB
    cv2.imwrite(deep_rgb, rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16))
    deep = write_raster(tmp_path / 'deep.tif', np.ones((4, 24, 32), np.uint16))
    with_rasterio = [inference_model(tiny_model, path, 'the ship').seg_logits.data
                     for path in (plain, deep_rgb)]
    monkeypatch.setitem(sys.modules, 'rasterio', None)
    for path, expected in zip((plain, deep_rgb), with_rasterio):
        result = inference_model(tiny_model, path, 'the ship')
        assert result.pred_sem_seg.data.shape == (1, 24, 32)
        assert torch.equal(result.seg_logits.data, expected)
    with pytest.raises(ImportError, match=r'deep.tif: a TIFF of 4 band\(s\) of 16-bit '
                                          r'unsigned samples.*\[geo\]'):
        inference_model(tiny_model, deep, 'the ship')


def bright_square_scene(path) -> str:
    """A 16-bit, 4-band EPSG:3857 scene (64 x 48): dark noise, a bright square in bands 2-4.

    The square covers rows 20-29 and columns 30-44; columns 0-17 are nodata (0).
    """
    data = 1000 + np.random.default_rng(0).integers(0, 50, (4, 48, 64)).astype(np.uint16)
    data[1:, 20:30, 30:45] = 9000
    data[:, :, :18] = 0
    return write_raster(path, data, nodata=0)


class BrightIsObject:
    """Replaces FIANet.encode_decode: the object logit is the image's brightness.

    Its inputs are the normalised images the data preprocessor made of the
    pipeline's output, so the mask it gives went through the whole real
    pipeline (stretch, resize, postprocessing back to the window's size).
    """

    def __call__(self, inputs, batch_img_metas, text=None):
        brightness = inputs.mean(dim=1, keepdim=True)
        return torch.cat([-brightness, brightness], dim=1)


def test_demo_polygon_lands_on_the_map(tiny_model, tmp_path, monkeypatch):
    demo = load_script('demo/image_demo.py')
    monkeypatch.setattr(tiny_model, 'encode_decode', BrightIsObject())
    monkeypatch.setattr(demo, 'init_model', lambda *args, **kwargs: tiny_model)
    scene = bright_square_scene(tmp_path / 'scene.tif')
    out, polygons, wgs84 = (tmp_path / name for name in ('mask.tif', 'tanks.geojson',
                                                         'tanks_wgs84.geojson'))
    common = [scene, EXPRESSION, CONFIG, 'unused.pth', '--bands', '4', '3', '2', '--window',
              '16', '8', '40', '32']
    written = demo.main(common + ['--out', str(out), '--geojson', str(polygons)])
    assert written == [str(out), str(polygons)]
    demo.main(common + ['--geojson', str(wgs84), '--geojson-crs', 'EPSG:4326'])
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 3857 and src.nodata == 255
        assert tuple(src.transform)[:6] == pytest.approx(
            (PX, 0.0, X0 + 16 * PX, 0.0, -PY, Y0 - 8 * PY))
        mask = src.read(1)
    assert mask.shape == (32, 40) and (mask[:, :2] == 255).all()  # scene columns 16, 17
    rows, cols = np.nonzero(mask == 1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 21, 14, 28)
    # the square (scene rows 20-29, columns 30-44) on the map, within one pixel
    left, top = map_xy(30, 20)
    right, bottom = map_xy(45, 30)
    collection = json.loads(polygons.read_text())
    assert collection['crs']['properties']['name'].endswith('EPSG::3857')
    (feature,) = collection['features']
    bounds = ring_bounds(feature['geometry'])
    assert bounds == pytest.approx((left, bottom, right, top), abs=max(PX, PY))
    assert feature['properties']['expression'] == EXPRESSION
    assert feature['properties']['object_phrase'] == 'gray storage tank'
    assert feature['properties']['position_phrases'] == 'on the lower left'
    assert feature['properties']['category'] == 'storage tank'
    assert feature['properties']['pixels'] == 150
    assert 0.5 < feature['properties']['mean_probability'] <= 1.0
    (feature,) = json.loads(wgs84.read_text())['features']
    ring = np.array(feature['geometry']['coordinates'][0])
    west, south = mercator_to_lonlat(left, bottom)
    east, north = mercator_to_lonlat(right, top)
    pixel_deg = math.degrees(max(PX, PY) / R_EARTH)  # one pixel, in degrees of longitude
    assert (ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()) == \
        pytest.approx((west, south, east, north), abs=pixel_deg)
    assert 9.9 < west < 10.1 and 40.8 < south < 41.0  # the scene is near 10 E, 41 N


@pytest.mark.slow
def test_demo_cli_geotiff_to_mask_and_polygons(rrsisd_root, tmp_path):
    """The command line, a random tiny checkpoint: polygons trace the mask it wrote."""
    torch.manual_seed(0)
    model = init_model(CONFIG, None, cfg_options=options_dict(tiny_test_options(rrsisd_root)))
    scene = bright_square_scene(tmp_path / 'scene.tif')
    # shift the object logit by the median margin on the window: a mask of about half of it
    logits = inference_model(model, read_geotiff(scene, window=(16, 8, 40, 32)),
                             EXPRESSION).seg_logits.data
    with torch.no_grad():
        model.decode_head.conv_seg.bias[1] -= (logits[1] - logits[0]).median()
    checkpoint = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    out, polygons, overlay = tmp_path / 'mask.tif', tmp_path / 'p.geojson', tmp_path / 'o.png'
    left, top = map_xy(16, 8)
    right, bottom = map_xy(56, 40)
    done = subprocess.run(
        [sys.executable, str(REPO / 'demo' / 'image_demo.py'), scene, EXPRESSION, CONFIG,
         str(checkpoint), '--bbox', str(left + 0.5), str(bottom + 0.5), str(right - 0.5),
         str(top - 0.5), '--out', str(out), '--geojson', str(polygons), '--overlay',
         str(overlay), '--cfg-options', *tiny_test_options(rrsisd_root)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with rasterio.open(out) as src:
        assert tuple(src.transform)[:6] == pytest.approx(
            (PX, 0.0, X0 + 16 * PX, 0.0, -PY, Y0 - 8 * PY))
        mask = src.read(1)
    assert mask.shape == (32, 40) and (mask[:, :2] == 255).all()
    assert 0.2 < (mask[:, 2:] == 1).mean() < 0.8
    import cv2

    assert cv2.imread(str(overlay)).shape == (32, 40, 3)
    features = json.loads(polygons.read_text())['features']
    assert sum(f['properties']['pixels'] for f in features) == int((mask == 1).sum())
    # every object pixel's centre is inside the polygons, and no other pixel's
    from shapely.geometry import Point, shape

    shapes = [shape(f['geometry']) for f in features]
    for row in range(0, 32, 3):
        for col in range(0, 40, 3):
            centre = Point(*map_xy(16 + col + 0.5, 8 + row + 0.5))
            assert any(s.contains(centre) for s in shapes) == (mask[row, col] == 1)


def test_geo_image_checks_its_arrays():
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        GeoImage(np.zeros((4, 4), np.uint8), np.ones((4, 4), bool), Affine.identity())
    with pytest.raises(ValueError, match='valid has shape'):
        GeoImage(np.zeros((4, 4, 3), np.uint8), np.ones((3, 4), bool), Affine.identity())
