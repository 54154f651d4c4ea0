"""Parts of scene inference without a model: the window grid, GSD, blending weights,
components across blocks, the position rules (fianet_mmseg.apis.scene)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fianet_mmseg.apis.scene.grid import WindowGrid, axis_starts, raster_gsd, window_weights
from fianet_mmseg.apis.scene.positions import (
    TIE,
    parse_positions,
    select_components,
    split_expression,
)


def test_axis_starts_cover_the_axis_and_end_at_its_edge():
    assert axis_starts(300, 96, 72) == [0, 72, 144, 204]  # the last one moved back to 300 - 96
    assert axis_starts(96, 96, 72) == [0]
    assert axis_starts(50, 96, 72) == [0]  # smaller than a window: one, past the edge
    with pytest.raises(ValueError, match='stride .* larger than the window'):
        WindowGrid(300, 200, (1.0, 1.0), (96, 96), (100, 72))


def test_grid_at_another_scale_and_its_batches():
    # 1 m source, 0.5 m windows: half a source pixel per model pixel, the model grid twice as
    # large; a source pixel's centre (i + 0.5) lies at model coordinate 2 i + 0.5
    grid = WindowGrid(150, 100, (0.5, 0.5), (96, 96), (72, 72))
    assert grid.model_size == (300, 200) and not grid.native
    assert grid.starts()[:5] == [(0, 0), (72, 0), (144, 0), (204, 0), (0, 72)]
    assert grid.source_window(72, 0) == (36.0, 0.0, 48.0, 48.0)
    assert np.array_equal(grid.model_coordinates(0, 3, 2), [6.5, 8.5])
    assert grid.batches(5) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]  # 4 x 3 windows


def test_gsd_of_projected_geographic_and_unreferenced_rasters():
    from affine import Affine
    from rasterio.crs import CRS

    assert raster_gsd(CRS.from_epsg(32633), Affine(0.5, 0, 5e5, 0, -0.5, 4.6e6), 10, 10) == \
        (0.5, 0.5)
    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island, US survey feet
    assert raster_gsd(feet, Affine(1, 0, 0, 0, -1, 0), 10, 10)[0] == pytest.approx(0.3048006)
    # 1e-5 degrees at 60 N: 1.111949 m north-south, half that east-west (spherical Earth)
    gsd = raster_gsd(CRS.from_epsg(4326), Affine(1e-5, 0, 10, 0, -1e-5, 60.0001), 20, 20)
    assert gsd == pytest.approx((1.111949 * math.cos(math.radians(60)), 1.111949), rel=1e-5)
    assert raster_gsd(None, Affine.identity(), 10, 10) is None


def test_window_weights_are_a_smooth_positive_bump():
    weights = window_weights(8, 6)
    assert weights.shape == (8, 6) and (weights > 0).all()
    assert np.allclose(weights, weights[::-1]) and np.allclose(weights, weights[:, ::-1])
    middle = np.sin(np.pi * 3.5 / 8) ** 2 * np.sin(np.pi * 2.5 / 6) ** 2
    assert weights.max() == pytest.approx(middle, rel=1e-6)
    assert weights[0, 0] == pytest.approx(np.sin(np.pi / 16) ** 2 * np.sin(np.pi / 12) ** 2,
                                          rel=1e-5)


@pytest.mark.parametrize('side', [5, 8, 13])
def test_components_joined_across_blocks_match_the_whole_mask(side):
    """Labelled block by block (any block size), the components are those of the whole mask."""
    from fianet_mmseg.apis.scene.blend import blocks
    from fianet_mmseg.apis.scene.components import ComponentTracer, OutlineCollector

    rng = np.random.default_rng(side)
    mask = cv2.dilate((rng.random((37, 41)) > 0.93).astype(np.uint8), np.ones((3, 3)))
    mask[10, :] = 1  # one component across every block of a row
    mask[5:30, 20] = 1
    probability = rng.random(mask.shape).astype(np.float32)
    tracer = ComponentTracer(41)
    for col, row, w, h in blocks(41, 37, side):
        tracer.add_block(col, row, mask[row:row + h, col:col + w] > 0,
                         probability[row:row + h, col:col + w])
    components = tracer.merge()
    merged = [components[index] for index in range(len(components))]
    count, labels = cv2.connectedComponents(mask, connectivity=4)
    assert len(merged) == count - 1
    # labelled again, every block maps its pixels to the merged ids; outlines of all
    outlines = OutlineCollector(components.ids, components.bbox[:, 3])
    ids = np.full(mask.shape, -1)
    polygons = {}
    for col, row, w, h in blocks(41, 37, side):
        _, block_labels, _ = tracer.label(mask[row:row + h, col:col + w] > 0)
        block_ids = tracer.global_labels(col, row, block_labels)
        ids[row:row + h, col:col + w] = block_ids
        outlines.add_block(col, row, block_ids, block_ids >= 0)
        if col + w == 41:
            polygons.update(outlines.completed(row + h))
    for label in range(1, count):
        assert len(np.unique(ids[labels == label])) == 1
    assert len(np.unique(ids[mask > 0])) == count - 1
    import shapely

    assert sorted(polygons) == sorted(c.id for c in merged) and not outlines.pieces
    for component in merged:
        polygon = polygons[component.id]
        whole = ids == component.id
        assert (labels[whole] == labels[whole][0]).all()
        assert component.pixels == whole.sum()
        assert component.mean_probability == pytest.approx(probability[whole].mean(), rel=1e-6)
        rows, cols = np.nonzero(whole)
        assert component.centroid == pytest.approx((cols.mean() + 0.5, rows.mean() + 0.5))
        assert component.bbox == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert isinstance(polygon, shapely.Polygon)  # one polygon, no seams
        assert polygon.area == whole.sum()


class Decoupler:
    """The project's decoupler, built once."""

    instance = None

    def __new__(cls):
        if cls.instance is None:
            from fianet_mmseg.text import TextDecoupler

            cls.instance = TextDecoupler('rrsisd')
        return cls.instance


@pytest.mark.parametrize('expression, window_text, u, v, unresolved', [
    ('the gray storage tank on the lower left', 'the gray storage tank', 0, 1, 0),
    ('On the left is a storage tank', 'a storage tank', 0, None, 0),
    ('the storage tank in the middle', 'the storage tank', 0.5, 0.5, 0),
    ('the ship in the middle left of the image', 'the ship', 0, 0.5, 0),
    ('the small upper tank', 'the small tank', None, 0, 0),
    ('the northeastern airplane', 'the airplane', 1, 0, 0),
    ('the ship in front of the harbor', 'the ship in front of the harbor', None, None, 1),
    ('the airplane on the north-east side', 'the airplane', 1, 0, 0),
    ('the tank next to the road on the left', 'the tank next to the road', 0, None, 1),
    # contradicting phrases: the later is not applied, and stays for the windows
    ('the storage tank on the left and on the right', 'the storage tank and on the right', 0,
     None, 1),
])
def test_position_phrases_at_the_scene(expression, window_text, u, v, unresolved):
    parts = split_expression(expression, Decoupler())
    assert parts.window_expression == window_text
    assert (parts.rule.u, parts.rule.v) == (u, v)
    assert len(parts.unresolved) == unresolved


def test_selection_rules():
    centroids = [(0.1, 0.1), (0.9, 0.15), (0.5, 0.5), (0.1, 0.9), (0.9, 0.9), (0.11, 0.5)]
    everyone = [True] * len(centroids)

    def pick(*phrases, eligible=everyone):
        rule, unresolved = parse_positions(phrases)
        assert not unresolved
        return select_components(rule, centroids, eligible)

    assert pick('on the lower left') == [3]
    assert pick('in the upper right corner') == [1]
    assert pick('in the middle') == [2]
    assert pick('on the left') == [0, 3, 5]  # u = 0.1 and 0.11: within the tie
    assert pick('at the top') == [0]  # v = 0.1; 0.15 is beyond the tie
    assert pick('on the left', 'in the middle') == [5]  # (0, 0.5)
    assert pick('in a corner') == [0, 3, 4]  # 0.141 from their corners, (0.9, 0.15) 0.180
    assert pick('on the lower left', eligible=[True, True, True, False, True, True]) == [5]
    assert pick() == list(range(6))  # no rule: every component
    assert TIE == 0.02


def test_reader_shrinks_from_the_overviews_and_stretches_the_whole_scene_alike(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    from affine import Affine
    from rasterio.enums import Resampling

    from fianet_mmseg.apis.scene.reader import SceneReader

    path = str(tmp_path / 'overviews.tif')
    with rasterio.open(path, 'w', driver='GTiff', width=512, height=512, count=1, dtype='uint8',
                       crs='EPSG:32633', transform=Affine(1, 0, 0, 0, -1, 512),
                       tiled=True) as dst:
        dst.write(np.zeros((1, 512, 512), np.uint8))
        dst.build_overviews([2], Resampling.nearest)
    with rasterio.open(path, 'r+', OVERVIEW_LEVEL=0) as overview:  # other pixels there
        overview.write(np.full((1, 256, 256), 77, np.uint8))
    with SceneReader(path) as reader:
        shrunk, _ = reader.read_window((0, 0, 512, 512), (256, 256))
        native, valid = reader.read_window((100, 100, 64, 64), (64, 64))
    assert (shrunk == 77).all() and (native == 0).all() and valid.all()
    # 16-bit data: one stretch for the scene, so a pixel is the same in every window
    ramp = (np.arange(300 * 200).reshape(1, 200, 300) % 4000).astype(np.uint16)
    path = str(tmp_path / 'ramp16.tif')
    with rasterio.open(path, 'w', driver='GTiff', width=300, height=200, count=1,
                       dtype='uint16', crs='EPSG:32633',
                       transform=Affine(1, 0, 0, 0, -1, 200)) as dst:
        dst.write(ramp)
    with SceneReader(path) as reader:
        low, high = reader.limits[0]
        first, _ = reader.read_window((0, 0, 96, 96), (96, 96))
        second, _ = reader.read_window((50, 40, 96, 96), (96, 96))
    # under 1024 pixels a side the statistics read is the whole scene
    assert [low, high] == np.percentile(ramp.astype(np.float64), [2, 98]).tolist()
    assert np.array_equal(first[40:96, 50:96], second[:56, :46])
    expected = np.clip(np.rint((ramp[0, 40:96, 50:96] - low) * 255.0 / (high - low)), 0, 255)
    assert np.array_equal(second[:56, :46, 0], expected)
