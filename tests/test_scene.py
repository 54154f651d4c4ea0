"""Whole scenes (fianet_mmseg.apis.scene): tiling at the model's scale, blending, vectors,
position rules, nodata, resuming, bad input.

These tests use :class:`scene_helpers.BrightBlobModel`, a stand-in for FIANet
whose logits are a known function of the pixels (bright blobs of a minimum
size, lost near a window's border), on mosaics of known discs: their subject
is the tiling, blending, vector and position logic, which needs a model that
finds the objects. FIANet itself runs end to end through the CLI in
tests/test_scene_cli.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from conftest import require
from scene_helpers import (
    ORIGIN,
    BrightBlobModel,
    mosaic,
    stand_in_config,
    write_scene,
)

rasterio = require('rasterio', 'pip install "fianet-mmseg[geo]"')

from fianet_mmseg.apis import inference_model  # noqa: E402
from fianet_mmseg.apis.scene import SceneInferencer, SceneWarning  # noqa: E402
from fianet_mmseg.apis.scene import assemble as assemble_module  # noqa: E402
from fianet_mmseg.apis.scene import store as store_module  # noqa: E402
from fianet_mmseg.apis.scene import vectors as vectors_module  # noqa: E402

TEXT = 'the storage tank on the lower left'
WINDOW = 96  # the stand-in's input (the test pipeline's Resize)
OUTPUTS = ('mask.tif', 'probability.tif', 'polygons.gpkg', 'polygons.geojson')


def require_gdal_cli(tool: str) -> str:
    """The path of ``gdalinfo`` / ``ogrinfo`` (Debian's gdal-bin, GDAL's own clients); skip
    without it, fail under CI (.ci/run installs it)."""
    path = shutil.which(tool)
    require(f'{tool} (Debian\'s gdal-bin)', 'apt-get install gdal-bin', path is not None)
    return path


@pytest.fixture(scope='module')
def model():
    return BrightBlobModel(stand_in_config(WINDOW))


def components(mask: np.ndarray) -> list:
    """Boolean masks of the 4-connected components of ``mask == 1``."""
    count, labels = cv2.connectedComponents((mask == 1).astype(np.uint8), connectivity=4)
    return [labels == index for index in range(1, count)]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def matching(footprints: list, found: list) -> list:
    """For each footprint, the found component overlapping it most (None: none)."""
    return [max(found, key=lambda c: (c & f).sum(), default=None) for f in footprints]


def read_outputs(folder) -> dict:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def read_mask(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


# ---------------------------------------------------------------- seamless
# discs (x, y, radius) on window borders (windows every 72 pixels, 96 wide) and
# on the 512-pixel block borders of the outputs
STRADDLING = [(96, 100, 15), (300, 168, 18), (512, 300, 16), (200, 512, 14), (450, 450, 20)]


def single_window_iou(model, image: np.ndarray, footprint: np.ndarray) -> float:
    """IoU the model reaches on one window centred on the object."""
    rows, cols = np.nonzero(footprint)
    top = int(np.clip(rows.mean() - WINDOW / 2, 0, image.shape[0] - WINDOW))
    left = int(np.clip(cols.mean() - WINDOW / 2, 0, image.shape[1] - WINDOW))
    crop = image[top:top + WINDOW, left:left + WINDOW]
    result = inference_model(model, np.ascontiguousarray(crop[..., ::-1]), 'the storage tank')
    predicted = result.pred_sem_seg.data[0].numpy() > 0
    return iou(predicted, footprint[top:top + WINDOW, left:left + WINDOW])


def test_objects_across_windows_and_blocks_are_one_polygon_each(model, tmp_path):
    image, footprints = mosaic(560, 620, STRADDLING)
    scene = write_scene(tmp_path / 'scene.tif', image, gsd=0.5)
    summary = SceneInferencer(model, batch_size=8, show_progress=False)(
        scene, 'the storage tank', tmp_path / 'out')
    out = tmp_path / 'out'
    assert summary['windows']['total'] == 9 * 8 and summary['text']['position_mode'] == 'scene'
    mask = read_mask(out / 'mask.tif')
    found = components(mask)
    assert len(found) == len(STRADDLING) == summary['objects']['selected']  # no seam splits one
    for footprint, component in zip(footprints, matching(footprints, found)):
        assert iou(component, footprint) >= single_window_iou(model, image, footprint)
    with rasterio.open(out / 'mask.tif') as src, rasterio.open(scene) as source:
        assert src.crs == source.crs and src.transform == source.transform
        assert src.shape == source.shape and src.nodata == 255
    # the polygons: one per object, at the object's map coordinates, area from its pixels
    collection = json.loads((out / 'polygons.geojson').read_text())
    assert len(collection['features']) == len(STRADDLING) and 'crs' not in collection
    import shapely
    from pyogrio.raw import read as ogr_read

    meta, _, geometries, fields = ogr_read(out / 'polygons.gpkg')
    assert meta['crs'] == 'EPSG:32633' and len(geometries) == len(STRADDLING)
    columns = dict(zip(meta['fields'], fields))
    for geometry, pixels, area in zip(geometries, columns['pixels'], columns['area_m2']):
        polygon = shapely.from_wkb(geometry)
        [component] = [c for c in found if c.sum() == pixels]  # the discs differ in size
        rows, cols = np.nonzero(component)
        left, bottom, right, top = polygon.bounds  # pixel edges, 0.5 m pixels
        assert (left, top) == (ORIGIN[0] + 0.5 * cols.min(), ORIGIN[1] - 0.5 * rows.min())
        assert (right, bottom) == (ORIGIN[0] + 0.5 * (cols.max() + 1),
                                   ORIGIN[1] - 0.5 * (rows.max() + 1))
        assert area == pytest.approx(0.25 * pixels) and polygon.area == pytest.approx(area)
    assert set(columns['expression']) == {'the storage tank'}
    assert set(columns['category']) == {'storage tank'}


@pytest.mark.slow
def test_outputs_pass_gdalinfo_as_cog_and_ogrinfo(model, tmp_path):
    gdalinfo, ogrinfo = require_gdal_cli('gdalinfo'), require_gdal_cli('ogrinfo')
    image, _ = mosaic(560, 620, STRADDLING)
    scene = write_scene(tmp_path / 'scene.tif', image, gsd=0.5)
    SceneInferencer(model, batch_size=8, show_progress=False)(scene, 'the storage tank',
                                                              tmp_path / 'out')
    for name in ('mask.tif', 'probability.tif'):
        info = subprocess.run([gdalinfo, str(tmp_path / 'out' / name)], capture_output=True,
                              text=True, check=True).stdout
        assert 'LAYOUT=COG' in info and 'Overviews: 310x280' in info
        assert 'Block=512x512' in info and 'UTM zone 33N' in info
        assert 'Origin = (500000.000000000000000,4650000.000000000000000)' in info
        assert 'Pixel Size = (0.500000000000000,-0.500000000000000)' in info
    assert 'NoData Value=255' in subprocess.run(
        [gdalinfo, str(tmp_path / 'out' / 'mask.tif')], capture_output=True, text=True).stdout
    info = subprocess.run([ogrinfo, '-so', '-al', str(tmp_path / 'out' / 'polygons.gpkg')],
                          capture_output=True, text=True, check=True)
    assert 'Feature Count: 5' in info.stdout and 'Warning' not in info.stderr
    # the extent: from the leftmost disc's left edge (x = 96 - 15 px) to the lowest's bottom
    left, top = ORIGIN[0] + 0.5 * (96 - 15), ORIGIN[1] - 0.5 * (100 - 15)
    right, bottom = ORIGIN[0] + 0.5 * (512 + 16), ORIGIN[1] - 0.5 * (512 + 14)
    line = next(line for line in info.stdout.splitlines() if line.startswith('Extent:'))
    numbers = [float(v) for v in re.findall(r'[0-9]+\.[0-9]+', line)]
    assert numbers == pytest.approx([left, bottom, right, top], abs=1.01)  # within 2 pixels


# --------------------------------------------------------------------- GSD
def test_the_same_objects_at_twice_the_gsd_with_gsd_set(tmp_path):
    """The stand-in finds blobs of at least 25 model pixels across (its scale): at 1 m the
    discs are 20 pixels wide and only resampling the windows to 0.5 m finds them."""
    model = BrightBlobModel(stand_in_config(WINDOW), min_size=25)
    discs = [(100, 80, 20), (300, 200, 20), (220, 100, 22)]
    image, _ = mosaic(300, 400, discs)
    fine = write_scene(tmp_path / 'fine.tif', image, gsd=0.5)
    coarse_image = cv2.resize(image, (200, 150), interpolation=cv2.INTER_AREA)
    coarse = write_scene(tmp_path / 'coarse.tif', coarse_image, gsd=1.0)
    run = SceneInferencer(model, gsd=0.5, batch_size=8, show_progress=False)
    fine_summary = run(fine, 'the storage tank', tmp_path / 'fine')
    coarse_summary = run(coarse, 'the storage tank', tmp_path / 'coarse')
    assert coarse_summary['gsd']['used_m'] == 0.5  # half a source pixel per model pixel:
    assert coarse_summary['gsd']['scale'] == [0.5, 0.5]
    assert coarse_summary['windows']['total'] == fine_summary['windows']['total']

    def polygons(folder):
        import shapely

        collection = json.loads((folder / 'polygons.geojson').read_text())
        return [shapely.geometry.shape(f['geometry']) for f in collection['features']]

    found_fine, found_coarse = polygons(tmp_path / 'fine'), polygons(tmp_path / 'coarse')
    assert len(found_fine) == len(found_coarse) == len(discs)
    for polygon in found_fine:  # the same objects, in the same places (EPSG:4326)
        match = max(found_coarse, key=lambda other: other.intersection(polygon).area)
        assert match.intersection(polygon).area / match.union(polygon).area > 0.8
    # the control: at the scene's own pixels the stand-in sees no object of its size
    native = SceneInferencer(model, batch_size=8, show_progress=False)(
        coarse, 'the storage tank', tmp_path / 'native')
    assert native['gsd']['scale'] == [1, 1] and native['objects']['found'] == 0
    # the config's gsd is the default
    model.cfg.gsd = 0.5
    try:
        default = SceneInferencer(model, batch_size=8, show_progress=False)(
            coarse, 'the storage tank', tmp_path / 'default')
    finally:
        model.cfg.gsd = None
    assert default['gsd'] == dict(used_m=0.5, source='config gsd', model_m=0.5, scale=[0.5, 0.5])
    assert default['objects']['found'] == len(discs)


# ---------------------------------------------------------------- positions
TANKS = [(60, 60, 14), (330, 70, 14), (200, 150, 14), (60, 250, 14), (330, 240, 14)]


@pytest.fixture(scope='module')
def tanks(tmp_path_factory):
    image, footprints = mosaic(300, 400, TANKS, seed=3)
    return write_scene(tmp_path_factory.mktemp('tanks') / 'tanks.tif', image), footprints


@pytest.mark.parametrize('expression, expected', [
    ('the storage tank on the lower left', [3]),
    ('the storage tank in the upper right corner', [1]),
    ('the storage tank in the middle', [2]),
    ('the rightmost storage tank', [1, 4]),  # both right tanks: within the 2% tie
])
def test_position_scene_selects_by_the_scene(model, tanks, tmp_path, expression, expected):
    scene, footprints = tanks
    model.texts.clear()
    summary = SceneInferencer(model, batch_size=8, show_progress=False)(
        scene, expression, tmp_path / 'out')
    assert set(model.texts) == {summary['text']['window_expression']}
    assert 'on the' not in summary['text']['window_expression']
    assert summary['objects']['found'] == len(TANKS)
    found = components(read_mask(tmp_path / 'out' / 'mask.tif'))
    picked = [index for index, footprint in enumerate(footprints)
              if any((c & footprint).any() for c in found)]
    assert picked == expected
    collection = json.loads((tmp_path / 'out' / 'polygons.geojson').read_text())
    assert len(collection['features']) == len(expected)
    properties = collection['features'][0]['properties']
    assert properties['position_mode'] == 'scene' and properties['expression'] == expression
    assert properties['position_applied'] == summary['text']['position_applied'] is not None


def test_position_window_and_ignore(model, tanks, tmp_path):
    """window: every window reads the whole expression, nothing is selected afterwards;
    ignore: windows read it without the position phrase, nothing is selected."""
    scene, _ = tanks
    for mode, window_text in (('window', TEXT), ('ignore', 'the storage tank')):
        model.texts.clear()
        summary = SceneInferencer(model, batch_size=8, position=mode, show_progress=False)(
            scene, TEXT, tmp_path / mode)
        assert set(model.texts) == {window_text}
        assert summary['text']['position_applied'] is None
        assert summary['objects']['selected'] == len(TANKS)
        features = json.loads((tmp_path / mode / 'polygons.geojson').read_text())['features']
        assert {f['properties']['position_mode'] for f in features} == {mode}
        assert {f['properties']['position_applied'] for f in features} == {None}
    assert summary['text']['position_not_applied'] == ['on the lower left']


# ------------------------------------------------------------------- nodata
def test_nodata_margin_and_empty_windows_are_skipped_and_masked(model, tmp_path):
    image, footprints = mosaic(300, 400, [(250, 150, 16), (128, 150, 16)])
    valid = np.ones((300, 400), bool)
    valid[:, :120] = False  # a margin holding the first column of windows, cutting one tank
    scene = write_scene(tmp_path / 'scene.tif', image, nodata=0, valid=valid)
    model.texts.clear()
    summary = SceneInferencer(model, batch_size=4, show_progress=False)(
        scene, 'the storage tank', tmp_path / 'out')
    windows = summary['windows']
    assert windows['total'] == 6 * 4 and windows['skipped_no_data'] == 4  # the column x = 0
    assert len(model.texts) == windows['with_data'] == 20  # no inference on empty windows
    mask = read_mask(tmp_path / 'out' / 'mask.tif')
    assert np.array_equal(mask == 255, ~valid)
    with rasterio.open(tmp_path / 'out' / 'probability.tif') as src:
        assert np.array_equal(src.read_masks(1) == 0, ~valid)
        assert (src.read(1)[~valid] == 0).all()
    found = components(mask)
    assert len(found) == 2 and all(not (c & ~valid).any() for c in found)
    assert iou(matching(footprints, found)[0], footprints[0]) > 0.95


# -------------------------------------------------------------- resumable
class Killed(BaseException):
    """What SIGKILL does to the run, in-process: it stops here, nothing cleans up."""


def kill_on_call(monkeypatch, owner, name: str, call: int, before=None) -> None:
    """Make ``owner.name`` raise :class:`Killed` on its ``call``-th call (from 1)."""
    real = getattr(owner, name)
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            if before is not None:
                before(*args, **kwargs)
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)


def half_written_batch(self, batch, *args):
    """A batch file half written when the process dies."""
    with open(self._name(batch) + '.npy.tmp', 'wb') as file:
        file.write(b'\x93NUMPY half')


@pytest.mark.parametrize('point', ['third batch, half written', 'between the rasters',
                                   'writing the GeoPackage'])
def test_killed_then_resumed_gives_byte_identical_outputs(model, tanks, tmp_path, monkeypatch,
                                                          point):
    scene, _ = tanks

    def run(folder, **kwargs):
        return SceneInferencer(model, batch_size=4, show_progress=False)(
            scene, TEXT, tmp_path / folder, **kwargs)

    run('reference')
    with monkeypatch.context() as patch:
        if point.startswith('third batch'):
            kill_on_call(patch, store_module.WindowStore, 'save', 3, half_written_batch)
        elif point == 'between the rasters':
            kill_on_call(patch, assemble_module, 'copy_to_cog', 2)
        else:
            kill_on_call(patch, vectors_module.VectorSink, '_flush', 1)
        with pytest.raises(Killed):
            run('killed')
    work = tmp_path / 'killed' / 'work'
    finished = sorted(p.name for p in (work / 'batches').glob('*.json'))
    assert finished == (['b000000.json', 'b000001.json'] if point.startswith('third')
                        else [f'b{i:06d}.json' for i in range(6)])  # 24 windows, batches of 4
    with pytest.raises(FileExistsError, match='--overwrite .* or --resume'):
        run('killed')
    summary = run('killed', resume=True)
    assert summary['windows']['batches_reused'] == len(finished)
    assert summary['windows']['inferred_this_run'] == 24 - 4 * len(finished)
    assert read_outputs(tmp_path / 'killed') == read_outputs(tmp_path / 'reference')
    assert not work.exists()  # removed after success
    with pytest.raises(FileNotFoundError, match='nothing to resume.*complete'):
        run('killed', resume=True)


def test_resume_refuses_another_run(model, tanks, tmp_path, monkeypatch):
    scene, _ = tanks
    with monkeypatch.context() as patch:
        kill_on_call(patch, store_module.WindowStore, 'save', 2)
        with pytest.raises(Killed):
            SceneInferencer(model, batch_size=4, show_progress=False)(scene, TEXT, tmp_path)
    with pytest.raises(ValueError, match='--resume of another run: batch_size, expression'):
        SceneInferencer(model, batch_size=8, show_progress=False)(
            scene, 'the storage tank in the middle', tmp_path, resume=True)


# ---------------------------------------------------------------- bad input
def test_raster_without_crs_gives_pixel_coordinates_and_says_so(model, tmp_path):
    from affine import Affine

    image, _ = mosaic(150, 200, [(60, 70, 15)])
    scene = str(tmp_path / 'plain.tif')
    with rasterio.open(scene, 'w', driver='GTiff', width=200, height=150, count=3,
                       dtype='uint8', transform=Affine.identity()) as dst:
        dst.write(image.transpose(2, 0, 1))
    with pytest.warns(SceneWarning, match=r'plain.tif: the raster has no CRS: outputs are in '
                                          r'pixel coordinates \(x = column, y = row\)'):
        summary = SceneInferencer(model, show_progress=False)(scene, 'the tank', tmp_path / 'o')
    assert summary['scene']['crs'] is None and summary['vectors']['crs']['geojson'] is None
    assert summary['km2_per_minute'] is None and summary['scene']['gsd_m'] is None
    [feature] = json.loads((tmp_path / 'o' / 'polygons.geojson').read_text())['features']
    xs, ys = zip(*feature['geometry']['coordinates'][0])
    assert (min(xs), min(ys), max(xs), max(ys)) == (45, 55, 75, 85)  # the disc's pixel box
    assert feature['properties']['area_m2'] is None
    with rasterio.open(tmp_path / 'o' / 'mask.tif') as src:
        assert src.crs is None and src.transform.is_identity


def test_gsd_far_from_the_model_warns_with_both_numbers(model, tmp_path):
    image, _ = mosaic(150, 200, [(60, 70, 15)])
    scene = write_scene(tmp_path / 'scene.tif', image, gsd=1.0)
    model.cfg.gsd = 0.14
    try:
        plan = SceneInferencer(model, gsd=1.0, show_progress=False).plan(scene, 'the tank')
        plan.reader.close()
    finally:
        model.cfg.gsd = None
    assert any("the scene's GSD is 1 m/pixel, the model's 0.14 m/pixel (config gsd): 7.1x "
               'coarser' in message for message in plan.warnings)
    assert any("--gsd 1 m/pixel is 7.1x coarser than the model's 0.14 m/pixel" in message
               for message in plan.warnings)


def test_bad_inputs_are_named(model, tanks, tmp_path):
    scene, _ = tanks
    inferencer = SceneInferencer(model, show_progress=False)
    with pytest.raises(ValueError, match=r"'on the lower left' has no object phrase.*"
                                         r'--position window'):
        inferencer(scene, 'on the lower left', tmp_path / 'a')
    # in window mode the same expression is the reference's per-window semantics
    SceneInferencer(model, position='window', show_progress=False).plan(
        scene, 'on the lower left').reader.close()
    broken = tmp_path / 'broken.tif'
    broken.write_text('not a raster')
    with pytest.raises(ValueError, match='broken.tif: cannot read the scene as a raster'):
        inferencer(str(broken), TEXT, tmp_path / 'b')
    with pytest.raises(FileNotFoundError, match='scene .*missing.tif does not exist'):
        inferencer(str(tmp_path / 'missing.tif'), TEXT, tmp_path / 'c')
    with pytest.raises(ValueError, match='--gsd 0.5 needs the scene'):
        plain = tmp_path / 'plain.tif'
        with rasterio.open(plain, 'w', driver='GTiff', width=8, height=8, count=1,
                           dtype='uint8') as dst:
            dst.write(np.ones((1, 8, 8), np.uint8))
        SceneInferencer(model, gsd=0.5, show_progress=False)(str(plain), TEXT, tmp_path / 'd')
    # an output folder that exists: refused, then replaced with --overwrite (ours only)
    taken = tmp_path / 'taken'
    taken.mkdir()
    (taken / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='taken exists and is not empty: give --overwrite'):
        inferencer(scene, TEXT, taken)
    assert sorted(p.name for p in taken.iterdir()) == ['notes.txt']
    inferencer(scene, TEXT, taken, overwrite=True)
    inferencer(scene, TEXT, taken, overwrite=True)
    assert sorted(p.name for p in taken.iterdir()) == sorted(['notes.txt', 'summary.json',
                                                              *OUTPUTS])
    assert (taken / 'notes.txt').read_text() == 'mine'


def test_vector_options_simplify_crs_and_min_area(model, tmp_path):
    """--simplify (map units), --dst-crs source, --min-area (m^2): a small disc on the left is
    below the area, so "on the left" picks the next one."""
    import shapely

    discs = [(40, 150, 8), (150, 60, 20), (300, 200, 16)]  # 0.25 m^2 pixels: 50, 314, 201 m^2
    image, footprints = mosaic(300, 400, discs)
    scene = write_scene(tmp_path / 'scene.tif', image)
    plain = SceneInferencer(model, position='ignore', show_progress=False)(
        scene, 'the storage tank', tmp_path / 'plain')
    assert plain['objects']['found'] == 3
    summary = SceneInferencer(model, min_area=100.0, simplify=1.0, dst_crs='source',
                              show_progress=False)(scene, 'the storage tank on the left',
                                                   tmp_path / 'out')
    assert summary['objects'] == dict(found=3, below_min_area=1, selected=1, min_area=100.0)
    assert summary['vectors']['crs'] == dict(gpkg='EPSG:32633', geojson='EPSG:32633')
    collection = json.loads((tmp_path / 'out' / 'polygons.geojson').read_text())
    assert collection['crs']['properties']['name'] == 'urn:ogc:def:crs:EPSG::32633'
    [feature] = collection['features']
    polygon = shapely.geometry.shape(feature['geometry'])
    x, y = polygon.centroid.coords[0]  # the 20-pixel disc at (150, 60), in metres
    assert (x, y) == pytest.approx((ORIGIN[0] + 75.0, ORIGIN[1] - 30.0), abs=0.5)
    # simplified within 1 m: fewer vertices, the same area within the tolerance's band
    exact = json.loads((tmp_path / 'plain' / 'polygons.geojson').read_text())['features']
    import pyogrio

    exact_polygons = [shapely.from_wkb(g) for g in
                      pyogrio.raw.read(tmp_path / 'plain' / 'polygons.gpkg')[2]]
    [unsimplified] = [p for p in exact_polygons if p.distance(polygon) == 0]
    assert len(polygon.exterior.coords) < len(unsimplified.geoms[0].exterior.coords) / 2
    assert polygon.symmetric_difference(unsimplified).area < 1.0 * unsimplified.length
    properties = feature['properties']
    assert len(exact) == 3 and properties['area_m2'] == 0.25 * properties['pixels']
    assert 0.99 < properties['pixels'] / footprints[1].sum() <= 1
