"""Inference API and image demo (tiny random model saved as a checkpoint, fixture data)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import BASE_CONFIG as CONFIG
from conftest import (
    REPO,
    TINY_TEST_BATCH,
    CaptureOutputs,
    load_config,
    load_script,
    make_tiny_checkpoint,
    options_dict,
    split_records,
    tiny_test_options,
)
from mmengine.runner import Runner

from fianet_mmseg.apis import inference_model, init_model
from fianet_mmseg.apis.pairs import read_pairs


@pytest.fixture(scope='module')
def tiny_checkpoint(rrsisd_root, tmp_path_factory):
    return make_tiny_checkpoint(rrsisd_root, tmp_path_factory.mktemp('ckpt') / 'tiny.pth')


@pytest.fixture(scope='module')
def model(rrsisd_root, tiny_checkpoint):
    return init_model(CONFIG, str(tiny_checkpoint),
                      cfg_options=options_dict(tiny_test_options(rrsisd_root)))


def mask_of(sample) -> np.ndarray:
    return sample.pred_sem_seg.data[0].cpu().numpy()


def margin_of(sample) -> np.ndarray:
    logits = sample.seg_logits.data.cpu().numpy()
    return logits[1] - logits[0]


# ------------------------------------------------------------------- test loop
@pytest.fixture(scope='module')
def test_loop_run(rrsisd_root, tiny_checkpoint, tmp_path_factory):
    """``Runner.test()`` as tools/test.py --show-dir runs it; outputs captured."""
    work_dir = tmp_path_factory.mktemp('test_loop')
    cfg = load_config('fianet_swin-b_rrsisd.py', options_dict(tiny_test_options(rrsisd_root)))
    cfg.update(work_dir=str(work_dir), load_from=str(tiny_checkpoint), launcher='none')
    cfg.default_hooks.visualization.update(draw=True, interval=1)
    cfg.visualizer.update(save_dir=str(work_dir / 'show'), name=f'vis_{work_dir.name}')
    runner = Runner.from_cfg(cfg)
    capture = CaptureOutputs()
    runner.register_hook(capture, priority='LOWEST')
    runner.test()
    return capture.samples, work_dir / 'show'


def test_api_gives_the_test_loop_masks(model, test_loop_run, rrsisd_root):
    loop_samples, _ = test_loop_run
    records = split_records(rrsisd_root, 'test')
    assert [s.img_path for s in loop_samples] == [r['img_path'] for r in records]
    # same batches as the loop, so the same computation
    results = inference_model(model, [r['img_path'] for r in records],
                              [r['expression'] for r in records], batch_size=TINY_TEST_BATCH)
    assert len(results) == len(records)
    for api, loop, record in zip(results, loop_samples, records):
        assert tuple(api.ori_shape) == (record['height'], record['width'])
        assert api.pred_sem_seg.data.shape == (1, record['height'], record['width'])
        assert torch.equal(api.pred_sem_seg.data, loop.pred_sem_seg.data)
        assert torch.equal(api.pred_sem_seg_at_input.data, loop.pred_sem_seg_at_input.data)
        assert api.expression == loop.expression == record['expression']
        assert api.object_phrase == loop.object_phrase
        assert api.spatial_phrases == loop.spatial_phrases
    # the comparison is not between two trivial masks
    first = mask_of(results[0])
    assert 0 < first.mean() < 1


def test_visualization_hook_saves_refseg_overlays(test_loop_run, rrsisd_root):
    """SegVisualizationHook + RefSegVisualizer (default_runtime): prediction | GT + caption."""
    loop_samples, show_dir = test_loop_run
    saved = sorted(show_dir.rglob('*.png'))
    assert len(saved) == len(loop_samples)
    for record in split_records(rrsisd_root, 'test'):
        name = f'test_{os.path.basename(record["img_path"])}'
        (path,) = [p for p in saved if p.name.startswith(name)]
        drawn = cv2.imread(str(path))
        image = cv2.imread(record['img_path'])
        height, width = image.shape[:2]
        assert drawn.shape[1] == 2 * width and drawn.shape[0] > height  # caption band below
        gt_panel = drawn[:height, width:]
        gt = cv2.imread(record['seg_map_path'], cv2.IMREAD_UNCHANGED) == 1
        inside = cv2.erode(gt.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        far = cv2.dilate(gt.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
        far[:16] = False  # panel title
        assert inside.any() and far.any()
        assert (np.abs(gt_panel.astype(int) - image).sum(axis=2)[inside] > 0).all()
        assert np.array_equal(gt_panel[far], image[far])


# ------------------------------------------------------------------------- API
def test_batched_equals_one_by_one(model, rrsisd_root):
    records = split_records(rrsisd_root, 'test') + split_records(rrsisd_root, 'val')
    images = [r['img_path'] for r in records]
    expressions = [r['expression'] for r in records]
    batched = inference_model(model, images, expressions, batch_size=3)
    assert len(batched) == len(records) == 5
    for image, expression, together in zip(images, expressions, batched):
        alone = inference_model(model, image, expression)
        assert together.img_path == alone.img_path == image
        # float noise of other batch shapes only (logits are ~0.5 in size)
        np.testing.assert_allclose(margin_of(together), margin_of(alone), atol=2e-4, rtol=0)
        clear = np.abs(margin_of(alone)) > 1e-3
        assert clear.mean() > 0.9
        assert np.array_equal(mask_of(together)[clear], mask_of(alone)[clear])


def test_one_image_many_expressions_and_array_input(model, rrsisd_root):
    record = split_records(rrsisd_root, 'test')[2]  # a 48x64 image
    expressions = ['The tennis court on the right', 'the storage tank', 'a ship']
    results = inference_model(model, record['img_path'], expressions)
    assert isinstance(results, list) and len(results) == 3
    for result, expression in zip(results, expressions):
        assert result.expression == expression
        assert result.pred_sem_seg.data.shape == (1, 48, 64)
        assert result.img_path == record['img_path']
    # the decoupled phrases travel as metainfo
    assert results[0].object_phrase == 'tennis court'
    assert results[0].spatial_phrases == ['on the right']
    assert results[1].object_phrase == 'storage tank' and results[1].spatial_phrases == []
    # a BGR array gives the path's result (same batch, same decoding)
    array = cv2.imread(record['img_path'])
    from_array = inference_model(model, array, expressions)
    for path_result, array_result in zip(results, from_array):
        assert array_result.img_path is None
        assert torch.equal(path_result.pred_sem_seg.data, array_result.pred_sem_seg.data)
    # one expression for several images
    single = inference_model(model, [array, record['img_path']], expressions[0])
    assert [r.expression for r in single] == [expressions[0]] * 2


def test_input_errors_are_clear(model, rrsisd_root, tmp_path):
    image = split_records(rrsisd_root, 'test')[0]['img_path']
    with pytest.raises(ValueError, match='expression is empty'):
        inference_model(model, image, '   ')
    with pytest.raises(ValueError, match='expression 1: the expression is empty'):
        inference_model(model, [image, image], ['the ship', ''])
    with pytest.raises(ValueError, match='2 images but 3 expressions'):
        inference_model(model, [image, image], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='no image'):
        inference_model(model, [], 'the ship')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inference_model(model, tmp_path / 'missing.png', 'the ship')
    broken = tmp_path / 'broken.png'
    broken.write_text('not an image')
    with pytest.raises(ValueError, match='input 1: cannot read image .*broken.png'):
        inference_model(model, [image, broken], 'the ship')
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        inference_model(model, np.zeros((8, 8), np.uint8), 'the ship')
    with pytest.raises(TypeError, match='must be a string'):
        inference_model(model, image, 3)
    with pytest.raises(ValueError, match='batch_size'):
        inference_model(model, image, 'the ship', batch_size=0)
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        init_model(CONFIG, str(tmp_path / 'nothing.pth'))


def test_init_model_sets_cfg_and_dataset_meta(model):
    assert not model.training
    assert model.cfg.model.type == 'FIANet'
    assert list(model.dataset_meta['classes']) == ['background', 'object']


# ------------------------------------------------------------------------ demo
def load_demo():
    return load_script('demo/image_demo.py')


@pytest.mark.slow
def test_demo_writes_overlay_of_the_image_size(model, rrsisd_root, tiny_checkpoint, tmp_path):
    record = split_records(rrsisd_root, 'test')[0]
    out = tmp_path / 'overlay.png'
    done = subprocess.run(
        [sys.executable, str(REPO / 'demo' / 'image_demo.py'), record['img_path'],
         record['expression'], CONFIG, str(tiny_checkpoint), '--out', str(out),
         '--cfg-options', *tiny_test_options(rrsisd_root)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    overlay, image = cv2.imread(str(out)), cv2.imread(record['img_path'])
    assert overlay.shape == image.shape
    mask = mask_of(inference_model(model, record['img_path'], record['expression'])) == 1
    top = np.zeros_like(mask)
    top[:image.shape[0] // 2] = True  # the caption band covers at most the lower half
    changed = np.abs(overlay.astype(int) - image).sum(axis=2) > 0
    inside = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & top
    far = (cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0) & top
    assert inside.sum() > 10 and far.sum() > 10
    assert changed[inside].all()
    assert not changed[far].any()
    # the caption band darkens the bottom rows
    assert overlay[-1].astype(int).sum() < image[-1].astype(int).sum()


def test_demo_pairs_csv_and_jsonl(rrsisd_root, tiny_checkpoint, tmp_path):
    demo = load_demo()
    records = split_records(rrsisd_root, 'test')
    relative = [os.path.relpath(r['img_path'], tmp_path) for r in records[:2]]
    csv_file = tmp_path / 'pairs.csv'
    csv_file.write_text('image,expression\n' + ''.join(
        f'{path},"{r["expression"]}"\n' for path, r in zip(relative, records)))
    jsonl_file = tmp_path / 'pairs.jsonl'
    jsonl_file.write_text(''.join(json.dumps(dict(img_path=path, expression=r['expression']))
                                  + '\n' for path, r in zip(relative, records)))
    options = tiny_test_options(rrsisd_root)
    for pairs in (csv_file, jsonl_file):
        out_dir = tmp_path / f'out_{pairs.suffix[1:]}'
        written = demo.main(['--pairs', str(pairs), CONFIG, str(tiny_checkpoint),
                             '--out-dir', str(out_dir), '--batch-size', '2',
                             '--cfg-options', *options])
        assert [Path(p).name for p in written] == ['0_01259.png', '1_01296.png']
        for path, record in zip(written, records):
            overlay = cv2.imread(path)
            image = cv2.imread(record['img_path'])
            assert overlay.shape == image.shape and not np.array_equal(overlay, image)


def test_demo_pairs_file_errors_name_file_and_line(rrsisd_root, tmp_path):
    image = split_records(rrsisd_root, 'test')[0]['img_path']
    bad_header = tmp_path / 'header.csv'
    bad_header.write_text(f'path,text\n{image},the ship\n')
    with pytest.raises(ValueError, match=r'header.csv, line 1: .*image and expression'):
        read_pairs(str(bad_header))
    text_file = tmp_path / 'pairs.txt'
    text_file.write_text(f'{image} the ship\n')
    with pytest.raises(ValueError, match=r'pairs.txt: unknown pairs file type'):
        read_pairs(str(text_file))
    blank = tmp_path / 'blank.csv'
    blank.write_text('image,expression\n\n')
    with pytest.raises(ValueError, match=r'blank.csv: no pairs'):
        read_pairs(str(blank))
    # bad rows are kept with an error naming file and line; the good ones are untouched
    rows = tmp_path / 'rows.csv'
    rows.write_text(f'image,expression\n{image},the ship\n{image},\n,a ship\nnope.png,a ship\n')
    jobs = read_pairs(str(rows))
    assert [job.index for job in jobs] == [0, 1, 2, 3]
    assert jobs[0].error is None and jobs[0].image == image
    assert jobs[0].expression == 'the ship'
    assert jobs[1].error == f'{rows}, line 3: the expression is missing or empty'
    assert jobs[2].error == f'{rows}, line 4: the image path is missing or empty'
    assert jobs[3].error.startswith(f'{rows}, line 5: image file ')
    assert jobs[3].error.endswith('nope.png does not exist')
    lines = tmp_path / 'rows.jsonl'
    lines.write_text(json.dumps(dict(image=image, expression='a ship')) + '\n{oops\n\n[1]\n'
                     + json.dumps(dict(image='nope.png', expression='a ship')) + '\n')
    jobs = read_pairs(str(lines))
    assert jobs[0].error is None
    assert jobs[1].error.startswith(f'{lines}, line 2: not valid JSON')
    assert jobs[2].error == f'{lines}, line 4: expected a JSON object'
    assert jobs[3].error.startswith(f'{lines}, line 5: image file ')


def test_demo_batch_goes_on_after_bad_rows(model, rrsisd_root, tiny_checkpoint, tmp_path):
    """A missing and an unreadable image do not stop the others; the summary says which."""
    demo = load_demo()
    records = split_records(rrsisd_root, 'test')
    broken = tmp_path / 'broken.png'
    broken.write_text('not an image')
    pairs = tmp_path / 'pairs.csv'
    pairs.write_text('image,expression\n'
                     f'{records[0]["img_path"]},{records[0]["expression"]}\n'
                     'missing.png,the ship\n'
                     f'{broken},the ship\n'
                     f'{records[1]["img_path"]},{records[1]["expression"]}\n')
    out_dir = tmp_path / 'out'
    run = demo.run_demo(['--pairs', str(pairs), CONFIG, str(tiny_checkpoint), '--out-dir',
                         str(out_dir), '--save', 'overlay', 'mask', '--batch-size', '4',
                         '--cfg-options', *tiny_test_options(rrsisd_root)])
    assert [Path(p).name for p in run.written] == ['0_01259.png', '0_01259_mask.png',
                                                   '3_01296.png', '3_01296_mask.png']
    assert [row['status'] for row in run.rows] == ['ok', 'error', 'error', 'ok']
    assert [row['index'] for row in run.failed] == [1, 2]
    assert run.rows[1]['error'].startswith(f'{pairs}, line 3: image file ')
    assert run.rows[2]['error'].startswith(f'{pairs}, line 4: ')
    assert f'cannot read image {broken}' in run.rows[2]['error']
    for index, record in ((0, records[0]), (3, records[1])):
        alone = inference_model(model, record['img_path'], record['expression'])
        expected = mask_of(alone)
        saved = cv2.imread(str(out_dir / f'{index}_{Path(record["img_path"]).stem}_mask.png'),
                           cv2.IMREAD_UNCHANGED)
        # batched with another image: float noise of another batch shape may flip a pixel
        # whose logit margin is within it (as in test_batched_equals_one_by_one)
        clear = np.abs(margin_of(alone)) > 1e-3
        assert clear.mean() > 0.9
        assert saved.dtype == np.uint8 and set(np.unique(saved)) <= {0, 1}
        assert np.array_equal(saved[clear], expected[clear].astype(np.uint8))
        assert run.rows[index]['object_pixels'] == int(saved.sum())
        assert run.rows[index]['expression'] == record['expression']
    with open(run.summary, newline='') as file:
        table = list(csv.DictReader(file))
    assert run.summary == str(out_dir / 'summary.csv')
    assert [row['status'] for row in table] == ['ok', 'error', 'error', 'ok']
    assert table[1]['error'] == run.rows[1]['error'] and table[0]['error'] == ''
    assert table[3]['outputs'] == ';'.join(run.written[2:])



def test_demo_batch_of_20_pairs_with_2_bad_rows(rrsisd_root, tiny_checkpoint, tmp_path):
    """20 pairs, 2 of them bad: 18 outputs, the 2 errors named, a summary of all 20."""
    demo = load_demo()
    records = split_records(rrsisd_root, 'test')
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8 not a jpeg')
    rows = [(records[i % len(records)]['img_path'], records[i % len(records)]['expression'])
            for i in range(20)]
    rows[5] = (str(tmp_path / 'missing.jpg'), 'the ship')
    rows[13] = (str(broken), 'the ship')
    pairs = tmp_path / 'pairs.jsonl'
    pairs.write_text(''.join(json.dumps({'image': image, 'expression': text}) + '\n'
                             for image, text in rows))
    out_dir = tmp_path / 'out'
    run = demo.run_demo(['--pairs', str(pairs), CONFIG, str(tiny_checkpoint), '--out-dir',
                         str(out_dir), '--batch-size', '8',
                         '--cfg-options', *tiny_test_options(rrsisd_root)])
    assert len(run.written) == 18 and all(Path(p).is_file() for p in run.written)
    assert sorted(p.name for p in out_dir.glob('*.png')) == sorted(
        f'{i:02d}_{Path(rows[i][0]).stem}.png' for i in range(20) if i not in (5, 13))
    assert [row['index'] for row in run.failed] == [5, 13]
    assert run.rows[5]['error'].startswith(f'{pairs}, line 6: image file ')
    assert run.rows[13]['error'].startswith(f'{pairs}, line 14: ')
    assert str(broken) in run.rows[13]['error']
    with open(run.summary, newline='') as file:
        table = list(csv.DictReader(file))
    assert len(table) == 20
    assert [row['status'] for row in table].count('ok') == 18
    assert [i for i, row in enumerate(table) if row['status'] == 'error'] == [5, 13]

def test_demo_folder_with_one_expression(model, rrsisd_root, tiny_checkpoint, tmp_path):
    demo = load_demo()
    records = split_records(rrsisd_root, 'test')[:2]
    folder = tmp_path / 'images'
    folder.mkdir()
    for record in records:
        (folder / Path(record['img_path']).name).write_bytes(
            Path(record['img_path']).read_bytes())
    (folder / 'notes.txt').write_text('not an image')  # not an image suffix: ignored
    summary = tmp_path / 'summary.json'
    run = demo.run_demo(['--folder', str(folder), '--expression', 'the ship', CONFIG,
                         str(tiny_checkpoint), '--out-dir', str(tmp_path / 'out'),
                         '--save', 'geojson', '--summary', str(summary),
                         '--cfg-options', *tiny_test_options(rrsisd_root)])
    names = sorted(Path(r['img_path']).name for r in records)
    assert [Path(p).name for p in run.written] == [
        f'{i}_{Path(name).stem}.geojson' for i, name in enumerate(names)]
    table = json.loads(summary.read_text())
    assert [row['image'] for row in table] == [str(folder / name) for name in names]
    assert [row['source'] for row in table] == [str(folder / name) for name in names]
    assert {row['status'] for row in table} == {'ok'}
    assert {row['expression'] for row in table} == {'the ship'}
    for row, path in zip(table, run.written):
        expected = mask_of(inference_model(model, row['image'], 'the ship'))
        features = json.loads(Path(path).read_text())['features']
        assert sum(f['properties']['pixels'] for f in features) == int(expected.sum())
        assert 'crs' not in json.loads(Path(path).read_text())  # pixel coordinates
    with pytest.raises(SystemExit):
        demo.parse_args(['--folder', str(folder), CONFIG, 'ckpt', '--out-dir', 'x'])
