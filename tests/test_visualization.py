"""Overlay drawing, RefSegVisualizer and the analysis tools (per category, failure gallery)."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from conftest import BASE_CONFIG as CONFIG
from conftest import (
    load_script,
    make_tiny_checkpoint,
    options_dict,
    split_records,
    tiny_test_options,
)
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample

from fianet_mmseg.apis.failure_gallery import make_gallery
from fianet_mmseg.evaluation.sample_results import per_category, read_results
from fianet_mmseg.visualization import (
    draw_caption,
    draw_mask,
    locate_phrases,
    render_prediction,
)
from fianet_mmseg.visualization.caption import OBJECT_COLOR, SPATIAL_COLOR


def load_tool(name: str):
    return load_script(f'tools/analysis_tools/{name}.py')


def has_color(image: np.ndarray, color) -> bool:
    return bool((image == np.array(color, dtype=np.uint8)).all(axis=-1).any())


# --------------------------------------------------------------------- drawing
def test_locate_phrases():
    expression = 'the gray storage tank on the lower left'
    assert locate_phrases(expression, 'gray storage tank', ['on the lower left']) == \
        ((4, 21), [(22, 39)])
    # the object phrase is taken outside the spatial phrases when it occurs twice
    assert locate_phrases('on the left of the tank is a tank', 'tank',
                          ['on the left of the tank']) == ((29, 33), [(0, 23)])
    assert locate_phrases('a ship', None, ['nowhere']) == (None, [])


def test_draw_mask_fill_outline_and_untouched_background():
    image = np.full((30, 40, 3), 100, np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 10:25] = 1
    drawn = draw_mask(image, mask, color=(255, 64, 64), alpha=0.5, outline=1)
    assert drawn.shape == image.shape and np.array_equal(image, np.full((30, 40, 3), 100))
    # inside: 0.5 * 100 + 0.5 * colour (178 = 177.5 rounded to even)
    assert drawn[12:18, 12:23].reshape(-1, 3).tolist() == [[178, 82, 82]] * 66
    # the outline runs on the mask's border pixels in the full colour
    assert drawn[10, 15].tolist() == [255, 64, 64] and drawn[19, 24].tolist() == [255, 64, 64]
    outside = np.ones((30, 40), bool)
    outside[9:21, 9:26] = False
    assert (drawn[outside] == 100).all()


def test_enlarged_overlay_keeps_each_pixel_as_a_block():
    image = np.full((8, 6, 3), 100, np.uint8)
    image[0, 0] = (10, 20, 30)
    mask = np.zeros((8, 6), np.uint8)
    mask[2:6, 2:5] = 1
    out = render_prediction(image, mask, alpha=0.5, scale=4)
    assert out.shape == (32, 24, 3)
    assert out[:4, :4].reshape(-1, 3).tolist() == [[10, 20, 30]] * 16  # one source pixel
    # the mask covers rows 8-23, columns 8-19 of the enlarged image; inside (away from the
    # outline) 0.5 * 100 + 0.5 * the colour, outside the image unchanged
    assert out[12:20, 12:16].reshape(-1, 3).tolist() == [[178, 82, 82]] * 32
    assert (out[26:, :] == 100).all() and (out[:, 21:] == 100).all()
    with pytest.raises(ValueError, match='scale must be'):
        render_prediction(image, mask, scale=0)
    with pytest.raises(ValueError, match=r'the mask is 4x4 \(HxW\), its image 8x6'):
        render_prediction(image, np.zeros((4, 4)), scale=2)

def test_caption_inside_keeps_size_marks_phrases_and_cuts_long_text():
    image = np.full((120, 160, 3), 200, np.uint8)
    expression = 'the gray storage tank on the lower left'
    drawn = draw_caption(image, expression, 'gray storage tank', ['on the lower left'])
    assert drawn.shape == image.shape
    changed_rows = np.flatnonzero((drawn != image).any(axis=(1, 2)))
    band_top = changed_rows.min()
    assert band_top >= 60 and changed_rows.max() == 119  # a band at the bottom
    assert has_color(drawn, OBJECT_COLOR) and has_color(drawn, SPATIAL_COLOR)
    plain = draw_caption(image, expression)  # no phrases: nothing marked
    assert not has_color(plain, OBJECT_COLOR) and not has_color(plain, SPATIAL_COLOR)
    # a very long caption stays within the lower half
    long = draw_caption(image, ' '.join([expression] * 20), 'gray storage tank')
    assert long.shape == image.shape
    assert np.array_equal(long[:60], image[:60])


# ------------------------------------------------------------------ visualiser
def refseg_sample(expression='the small ship on the left', object_phrase='small ship',
                  spatial=('on the left',)) -> SegDataSample:
    pred = torch.zeros(1, 40, 60, dtype=torch.long)
    pred[0, 18:30, 5:20] = 1
    gt = torch.zeros(1, 40, 60, dtype=torch.long)
    gt[0, 20:35, 30:50] = 1
    sample = SegDataSample(metainfo=dict(expression=expression, object_phrase=object_phrase,
                                         spatial_phrases=list(spatial)))
    sample.pred_sem_seg = PixelData(data=pred)
    sample.gt_sem_seg = PixelData(data=gt)
    return sample


def test_visualizer_draws_prediction_and_ground_truth_side_by_side(tmp_path):
    visualizer = VISUALIZERS.build(dict(type='RefSegVisualizer', name='test_refseg_vis'))
    image = np.full((40, 60, 3), 90, np.uint8)
    out_file = tmp_path / 'drawn.png'
    visualizer.add_datasample('sample', image, refseg_sample(), out_file=str(out_file))
    drawn = visualizer.get_image()
    assert drawn.shape[1] == 120 and drawn.shape[0] > 40  # two panels, caption below
    assert np.array_equal(cv2.imread(str(out_file)), drawn[..., ::-1])
    pred_panel, gt_panel = drawn[:40, :60], drawn[:40, 60:]
    # prediction: RefSegDataset's object colour (255, 64, 64) at alpha 0.5 over 90
    assert (pred_panel[20:28, 7:18] == [172, 77, 77]).all()
    assert (pred_panel[22:33, 32:48] == 90).all()  # no prediction where only the GT is
    # ground truth: green (64, 220, 64) at alpha 0.5
    assert (gt_panel[22:33, 32:48] == [77, 155, 77]).all()
    assert (gt_panel[20:28, 7:18] == 90).all()
    caption = drawn[40:]
    assert has_color(caption, OBJECT_COLOR) and has_color(caption, SPATIAL_COLOR)
    # without decoupled phrases only the legend line is coloured, far below the first line
    visualizer.add_datasample('plain', image, refseg_sample(object_phrase=None, spatial=()),
                              out_file=str(tmp_path / 'plain.png'))
    plain_caption = visualizer.get_image()[40:]
    first_marked = np.flatnonzero((plain_caption == OBJECT_COLOR).all(-1).any(1)).min()
    marked = np.flatnonzero((caption == OBJECT_COLOR).all(-1).any(1)).min()
    assert first_marked > marked


def test_visualizer_draws_only_what_it_has(tmp_path):
    visualizer = VISUALIZERS.build(dict(type='RefSegVisualizer', name='test_refseg_vis_2'))
    image = np.full((40, 60, 3), 90, np.uint8)
    sample = refseg_sample()
    del sample.gt_sem_seg
    visualizer.add_datasample('pred only', image, sample, out_file=str(tmp_path / 'p.png'))
    assert visualizer.get_image().shape[1] == 60
    visualizer.add_datasample('gt only', image, refseg_sample(), draw_pred=False,
                              out_file=str(tmp_path / 'g.png'))
    gt_only = visualizer.get_image()
    assert gt_only.shape[1] == 60 and (gt_only[22:33, 32:48] == [77, 155, 77]).all()


def test_a_mask_of_another_size_is_an_error_not_a_resize(tmp_path):
    """Before, a mask of another size was nearest-resized onto the image without a word."""
    image = np.full((40, 60, 3), 90, np.uint8)
    half = np.ones((20, 30), np.uint8)
    with pytest.raises(ValueError, match=r'the mask is 20x30 \(HxW\), its image 40x60'):
        draw_mask(image, half)
    with pytest.raises(ValueError, match=r'the mask is 20x30 \(HxW\), its image 40x60'):
        render_prediction(image, half, 'the ship')
    visualizer = VISUALIZERS.build(dict(type='RefSegVisualizer', name='test_refseg_vis_3'))
    with pytest.raises(ValueError, match=r'the mask is 40x60 \(HxW\), its image 30x60'):
        visualizer.add_datasample('cut', image[:30], refseg_sample(),
                                  out_file=str(tmp_path / 'cut.png'))


def test_visualizer_draws_the_image_file_as_the_model_read_it(tmp_path):
    """mmseg's hook hands over OpenCV's decoding (EXIF rotation applied, 16-bit data cut to
    the high byte); the visualiser draws the sample's file read by the project's reader."""
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    path = tmp_path / 'rotated.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)
    hook_image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # what the hook gives
    assert hook_image.shape == (60, 40, 3)  # OpenCV applied the tag
    sample = refseg_sample(object_phrase=None, spatial=())
    sample.set_metainfo(dict(img_path=str(path), expression=''))
    visualizer = VISUALIZERS.build(dict(type='RefSegVisualizer', name='test_refseg_vis_4'))
    visualizer.add_datasample('exif', hook_image, sample, out_file=str(tmp_path / 'o.png'))
    drawn = visualizer.get_image()
    with Image.open(path) as stored:  # the stored pixel order, no EXIF rotation
        expected = np.asarray(stored.convert('RGB'))
    assert drawn.shape == (40, 120, 3)
    # the ground-truth panel between its title and the mask (rows 20-34) shows the file
    assert np.array_equal(drawn[14:19, 60:], expected[14:19])
# -------------------------------------------------------------- per category
RESULTS = [  # hand-written: I, U per expression
    dict(sample_idx=0, ref_id=1, sent_id=10, expression='a', category='ship', I=50, U=100),
    dict(sample_idx=1, ref_id=2, sent_id=11, expression='b', category='ship', I=0, U=50),
    dict(sample_idx=2, ref_id=3, sent_id=12, expression='c', category='ship', I=90, U=100),
    dict(sample_idx=3, ref_id=4, sent_id=13, expression='d', category='bridge', I=30, U=40),
    dict(sample_idx=4, ref_id=5, sent_id=14, expression='e', category=None, I=0, U=0),
]


def write_jsonl(path, records):
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return path


def test_per_category_numbers(tmp_path, capsys):
    tool = load_tool('per_category')
    results = write_jsonl(tmp_path / 'results.jsonl', RESULTS)
    summaries = tool.main([str(results), '--json', str(tmp_path / 'summary.json')])
    # best mIoU first, totals last
    assert list(summaries) == ['bridge', 'ship', '(none)', 'all']
    ship, bridge, none, total = (summaries[k] for k in ('ship', 'bridge', '(none)', 'all'))
    assert ship['count'] == 3
    assert ship['mIoU'] == pytest.approx(100 * (0.5 + 0 + 0.9) / 3)
    assert ship['oIoU'] == pytest.approx(100 * 140 / 250)
    assert ship['P'] == pytest.approx(100 * 2 / 3)
    assert bridge == pytest.approx(dict(count=1, mIoU=75.0, oIoU=75.0, P=100.0))
    assert none == pytest.approx(dict(count=1, mIoU=0.0, oIoU=0.0, P=0.0))  # U = 0 counts as 0
    assert total == pytest.approx(dict(count=5, mIoU=43.0, oIoU=100 * 170 / 290, P=60.0))
    out = capsys.readouterr().out
    assert out.index('bridge') < out.index('ship') < out.index('(none)') < out.index('all')
    assert '46.67' in out and '58.62' in out
    assert json.loads((tmp_path / 'summary.json').read_text())['all']['P'] == 60.0
    by_count = per_category(read_results(str(results)), sort='count')
    assert list(by_count)[0] == 'ship'


def test_per_category_errors_name_file_and_line(tmp_path):
    missing_u = write_jsonl(tmp_path / 'a.jsonl', [RESULTS[0], dict(RESULTS[1], U=None)])
    with pytest.raises(ValueError, match=r'a.jsonl, line 2: field "U"'):
        read_results(str(missing_u))
    too_large = write_jsonl(tmp_path / 'b.jsonl', [dict(RESULTS[0], I=101)])
    with pytest.raises(ValueError, match=r'b.jsonl, line 1: I = 101 is larger than U = 100'):
        read_results(str(too_large))
    (tmp_path / 'c.jsonl').write_text('{"I": 1, "U": 2}\nnot json\n')
    with pytest.raises(ValueError, match=r'c.jsonl, line 2: not valid JSON'):
        read_results(str(tmp_path / 'c.jsonl'))


# ------------------------------------------------------------- failure gallery
@pytest.mark.slow
def test_failure_gallery_of_the_worst_expressions(rrsisd_root, tmp_path):
    checkpoint = make_tiny_checkpoint(rrsisd_root, tmp_path / 'tiny.pth')
    records = split_records(rrsisd_root, 'test')
    ious = [0.9, 0.1, 0.4]  # hand-picked: the 2nd and 3rd sample are the two worst
    results = write_jsonl(tmp_path / 'results.jsonl', [
        dict(sample_idx=i, ref_id=r['ref_id'], sent_id=r['sent_id'],
             expression=r['expression'], category=r['category'], img_path=r['img_path'],
             I=int(100 * iou), U=100, IoU=iou)
        for i, (r, iou) in enumerate(zip(records, ious))])
    gallery_dir = tmp_path / 'gallery'
    load_tool('per_category').main([str(results), '--gallery-dir', str(gallery_dir), '--k', '2',
                                    '--config', CONFIG, '--checkpoint', str(checkpoint),
                                    '--cfg-options', *tiny_test_options(rrsisd_root)])
    names = sorted(p.name for p in gallery_dir.glob('*.png'))
    assert names == ['01_iou0.100_ref1296_sent50008.png', '02_iou0.400_ref1333_sent50009.png']
    rows = list(csv.DictReader((gallery_dir / 'index.csv').open()))
    assert [row['ref_id'] for row in rows] == ['1296', '1333']
    for name, record in zip(names, (records[1], records[2])):
        drawn = cv2.imread(str(gallery_dir / name))
        image = cv2.imread(record['img_path'])
        height, width = image.shape[:2]
        assert drawn.shape[1] == 2 * width and drawn.shape[0] > height
        gt = cv2.imread(record['seg_map_path'], cv2.IMREAD_UNCHANGED) == 1
        inside = cv2.erode(gt.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        gt_panel = drawn[:height, width:]
        assert inside.any()
        # green ground truth: G raised, R and B lowered against the image
        delta = gt_panel[inside].astype(int) - image[inside]
        assert (delta[:, 1] >= delta[:, 2]).all() and (delta[:, 1] >= delta[:, 0]).all()
    # unknown (ref_id, sent_id): the error names the results line and the annotation file
    wrong = write_jsonl(tmp_path / 'wrong.jsonl', [dict(ref_id=7, sent_id=7, expression='x',
                                                        I=0, U=1)])
    with pytest.raises(KeyError, match=r'wrong.jsonl, line 1: no sample with ref_id 7'):
        make_gallery(
            str(wrong), CONFIG, str(checkpoint), str(tmp_path / 'g2'), k=1,
            cfg_options=options_dict(tiny_test_options(rrsisd_root)))
