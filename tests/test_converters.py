"""Tests of the RRSIS-D / RefSegRS converters on the tiny release-layout fixtures."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from PIL import Image

from fianet_mmseg.datasets.converters import (
    RECORD_KEYS,
    ConverterError,
    category_from_expression,
    convert_refsegrs,
    convert_rrsisd,
    decode_segmentation,
)
from fianet_mmseg.datasets.converters.refsegrs import load_binary_mask

REPO = Path(__file__).resolve().parents[1]
FORMATS = REPO / 'tests' / 'fixtures' / 'formats'
EXPECTED = json.loads((FORMATS / 'expected.json').read_text())
REFS = Path('rrsisd') / 'refs(unc).p'
INSTANCES = Path('rrsisd') / 'instances.json'
JPEGS = Path('images') / 'rrsisd' / 'JPEGImages'


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its content hash (None for folders) and mtime."""
    return {str(path.relative_to(root)): (
        hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None,
        path.stat().st_mtime_ns) for path in sorted(root.rglob('*'))}


def read_split(out: Path, split: str) -> list:
    lines = (out / f'{split}.jsonl').read_text(encoding='utf-8').splitlines()
    return [json.loads(line) for line in lines]


def read_mask(out: Path, record: dict) -> np.ndarray:
    with Image.open(out / record['seg_map_path']) as image:
        assert image.mode == 'L'
        return np.asarray(image)


def check_against_expected(out: Path, dataset: str, image_dir: Path, copied: bool) -> None:
    for split, expected_refs in EXPECTED[dataset].items():
        records = read_split(out, split)
        assert len(records) == len(expected_refs)
        for record, expected in zip(records, expected_refs, strict=True):
            assert tuple(record) == RECORD_KEYS
            assert record['split'] == split
            assert record['expression'] == expected['expression']
            assert (record['height'], record['width']) == (expected['height'], expected['width'])
            if copied:
                assert record['img_path'] == f'images/{expected["image"]}'
                copy = out / record['img_path']
                assert copy.read_bytes() == (image_dir / expected['image']).read_bytes()
            else:
                assert record['img_path'] == str(image_dir / expected['image'])
            assert not Path(record['seg_map_path']).is_absolute()
            mask = read_mask(out, record)
            assert mask.shape == (expected['height'], expected['width'])
            assert set(np.unique(mask)) <= {0, 1}
            assert int(mask.sum()) == expected['foreground']
            assert hashlib.sha1(mask.tobytes()).hexdigest() == expected['mask_sha1']


# --------------------------------------------------------------------------- RRSIS-D


@pytest.mark.parametrize('copy_images', [False, True])
def test_rrsisd_reproduces_expected(tmp_path, copy_images):
    source = FORMATS / 'rrsisd'
    before = snapshot(source)
    summary = convert_rrsisd(source, tmp_path / 'out', copy_images=copy_images)
    assert snapshot(source) == before
    check_against_expected(tmp_path / 'out', 'rrsisd', source / JPEGS, copy_images)
    assert summary.references == {'train': 5, 'val': 2, 'test': 3}
    assert summary.sentences == {'train': 5, 'val': 2, 'test': 3}
    assert (summary.images, summary.masks, summary.empty_masks) == (10, 10, [])
    assert 'train' in summary.format() and 'distinct images: 10' in summary.format()


def test_rrsisd_record_ids_and_categories(tmp_path):
    convert_rrsisd(FORMATS / 'rrsisd', tmp_path / 'out')
    train = read_split(tmp_path / 'out', 'train')
    # ref 1000: annotation categories_id 2 -> 'airplane'; ref 1111 is the polygon one (18).
    assert {k: train[0][k] for k in ('ref_id', 'sent_id', 'image_id', 'category')} == {
        'ref_id': 1000, 'sent_id': 50000, 'image_id': 1000, 'category': 'airplane'}
    assert {k: train[3][k] for k in ('ref_id', 'sent_id', 'image_id', 'category')} == {
        'ref_id': 1111, 'sent_id': 50003, 'image_id': 1111, 'category': 'vehicle'}
    assert train[0]['seg_map_path'] == 'masks/1000.png'


def copy_rrsisd(tmp_path: Path) -> Path:
    root = tmp_path / 'rrsisd_src'
    shutil.copytree(FORMATS / 'rrsisd', root)
    return root


def edit_refs(root: Path, ref_id: int, **changes) -> None:
    refs = pickle.loads((root / REFS).read_bytes())
    ref = next(r for r in refs if r['ref_id'] == ref_id)
    ref.update(changes)
    (root / REFS).write_bytes(pickle.dumps(refs))


def edit_annotation(root: Path, ann_id: int, **changes) -> None:
    data = json.loads((root / INSTANCES).read_text())
    ann = next(a for a in data['annotations'] if a['id'] == ann_id)
    ann.update(changes)
    (root / INSTANCES).write_text(json.dumps(data))


def edit_image_entry(root: Path, image_id: int, **changes) -> None:
    data = json.loads((root / INSTANCES).read_text())
    next(i for i in data['images'] if i['id'] == image_id).update(changes)
    (root / INSTANCES).write_text(json.dumps(data))


def test_rrsisd_several_sentences_per_reference(tmp_path):
    root = copy_rrsisd(tmp_path)
    refs = pickle.loads((root / REFS).read_bytes())
    refs[0]['sentences'].append({'raw': '  The second description\r\n', 'sent_id': 50100,
                                 'sent': 'the second description', 'tokens': []})
    (root / REFS).write_bytes(pickle.dumps(refs))
    summary = convert_rrsisd(root, tmp_path / 'out')
    train = read_split(tmp_path / 'out', 'train')
    assert [r['expression'] for r in train[:2]] == [
        'A tennis court on the lower left', 'The second description']
    assert [r['sent_id'] for r in train[:2]] == [50000, 50100]
    assert train[0]['seg_map_path'] == train[1]['seg_map_path'] == 'masks/1000.png'
    assert summary.references['train'] == 5 and summary.sentences['train'] == 6
    assert summary.masks == 10


def _rle(root: Path, ann_id: int) -> dict:
    data = json.loads((root / INSTANCES).read_text())
    return dict(next(a for a in data['annotations'] if a['id'] == ann_id)['segmentation'][0])


RRSISD_BREAKAGES = {
    'missing image': (lambda root: (root / JPEGS / '01037.jpg').unlink(),
                      ['ref_id 1037', '01037.jpg', 'missing image file']),
    'corrupt image': (lambda root: (root / JPEGS / '01074.jpg').write_bytes(b'not a jpeg'),
                      ['ref_id 1074', '01074.jpg', 'cannot decode image']),
    'short RLE': (lambda root: edit_annotation(
        root, 1000, segmentation=[dict(_rle(root, 1000), counts='Vm11')]),
        ['ref_id 1000', 'annotation 1000', 'segmentation[0]', 'bad RLE']),
    'garbage RLE': (lambda root: edit_annotation(
        root, 1037, segmentation=[dict(_rle(root, 1037), counts='garbage!!')]),
        ['ref_id 1037', 'segmentation[0]', 'bad RLE']),
    'RLE size': (lambda root: edit_annotation(
        root, 1000, segmentation=[dict(_rle(root, 1000), size=[64, 64])]),
        ['ref_id 1000', 'does not match the image size [48, 64]']),
    'bad polygon': (lambda root: edit_annotation(root, 1111, segmentation=[[1.0, 2.0, 3.0]]),
                    ['ref_id 1111', 'segmentation[0]', 'bad polygon']),
    'empty expression': (lambda root: edit_refs(
        root, 1185, sentences=[{'raw': ' \n', 'sent_id': 50005}]),
        ['ref_id 1185', 'sentences[0]', 'empty expression']),
    'unknown split': (lambda root: edit_refs(root, 1259, split='testA'),
                      ['ref_id 1259', "unknown split 'testA'"]),
    'unknown category': (lambda root: edit_annotation(root, 1296, categories_id=99),
                         ['ref_id 1296', 'unknown category id 99', 'categories_id']),
    'missing annotation': (lambda root: edit_refs(root, 1333, ann_id=4242),
                           ['ref_id 1333', 'no annotation with id 4242']),
    'size differs from instances.json': (lambda root: edit_image_entry(root, 1000, height=64),
                                         ['ref_id 1000', '48x64', '64x64']),
}


@pytest.mark.parametrize('breakage', sorted(RRSISD_BREAKAGES))
def test_rrsisd_malformed_input_is_named(tmp_path, breakage):
    root = copy_rrsisd(tmp_path)
    breaker, fragments = RRSISD_BREAKAGES[breakage]
    breaker(root)
    before = snapshot(root)
    with pytest.raises(ConverterError) as info:
        convert_rrsisd(root, tmp_path / 'out')
    for fragment in fragments:
        assert fragment in str(info.value)
    assert not list((tmp_path / 'out').glob('*.jsonl'))  # records are only written on success
    assert snapshot(root) == before


def test_decode_segmentation_takes_the_union_in_column_major_order():
    column0 = {'size': [4, 4], 'counts': [0, 4, 12]}  # runs run down the columns
    columns01 = {'size': [4, 4], 'counts': [0, 8, 8]}
    column3 = {'size': [4, 4], 'counts': [12, 4]}
    mask = decode_segmentation([column0, columns01, column3], 4, 4, 'test')
    expected = np.array([[1, 1, 0, 1]] * 4, dtype=np.uint8)
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == np.uint8 and mask.flags['C_CONTIGUOUS']
    with pytest.raises(ConverterError, match='summing to 16'):
        decode_segmentation([{'size': [4, 4], 'counts': [0, 4, 11]}], 4, 4, 'test')


# --------------------------------------------------------------------------- RefSegRS


@pytest.mark.parametrize('copy_images', [False, True])
def test_refsegrs_reproduces_expected(tmp_path, copy_images):
    source = FORMATS / 'refsegrs'
    before = snapshot(source)
    summary = convert_refsegrs(source, tmp_path / 'out', copy_images=copy_images)
    assert snapshot(source) == before
    check_against_expected(tmp_path / 'out', 'refsegrs', source / 'images', copy_images)
    assert summary.references == {'train': 4, 'val': 2, 'test': 3}
    assert summary.sentences == summary.references
    assert (summary.images, summary.masks, summary.skipped) == (9, 9, [])


def test_refsegrs_record_ids_and_categories(tmp_path):
    convert_refsegrs(FORMATS / 'refsegrs', tmp_path / 'out')
    records = {split: read_split(tmp_path / 'out', split) for split in ('train', 'val', 'test')}
    assert [r['category'] for r in records['train']] == ['car', 'building', 'vehicle', 'truck']
    assert [r['category'] for r in records['val']] == ['vehicle', 'road marking']
    assert [r['category'] for r in records['test']] == ['low vegetation', 'building', 'trailer']
    assert [(r['ref_id'], r['sent_id'], r['image_id']) for r in records['val']] == [
        (0, 0, '47'), (1, 1, '58')]
    assert records['test'][2]['seg_map_path'] == 'masks/91.png'


@pytest.mark.parametrize('expression, category', [
    ('car', 'car'),
    ('Cars parked along the roads', 'road'),  # both match; 'road' is longer
    ('two BUSES', 'bus'),
    ('impervious surfaces next to a tree', 'impervious surface'),
    ('van next to a car', 'van'),  # equal length: the earlier occurrence
    ('road markings on the bikeway', 'road marking'),
    ('a carpet of bushes', None),  # no whole-word match
    ('parking lot', None),
])
def test_category_from_expression(expression, category):
    assert category_from_expression(expression) == category


def copy_refsegrs(tmp_path: Path) -> Path:
    root = tmp_path / 'refsegrs_src'
    shutil.copytree(FORMATS / 'refsegrs', root)
    return root


def append_line(root: Path, split: str, text: str) -> None:
    with open(root / f'output_phrase_{split}.txt', 'a', newline='') as handle:
        handle.write(text)


def write_tif(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format='TIFF')


REFSEGRS_BREAKAGES = {
    'line without expression': (lambda root: append_line(root, 'train', 'no-expression\n'),
                                ['output_phrase_train.txt line 5', 'malformed line']),
    'tab instead of space': (lambda root: append_line(root, 'val', '47\tcar\n'),
                             ['output_phrase_val.txt line 3', 'malformed line']),
    'empty expression': (lambda root: append_line(root, 'test', '69   \n'),
                         ['output_phrase_test.txt line 4', 'empty expression']),
    'missing mask': (lambda root: (root / 'masks' / '25.tif').unlink(),
                     ['output_phrase_train.txt line 3', 'image id 25', 'missing mask file']),
    'missing image': (lambda root: (root / 'images' / '14.tif').unlink(),
                      ['output_phrase_train.txt line 2', 'missing image file']),
    'corrupt image': (lambda root: (root / 'images' / '69.tif').write_bytes(b'II*\x00junk'),
                      ['output_phrase_test.txt line 1', 'cannot decode image']),
    'mask size': (lambda root: write_tif(root / 'masks' / '58.tif',
                                         np.zeros((40, 48), np.uint8)),
                  ['output_phrase_val.txt line 2', '40x48', '48x48']),
    'missing split file': (lambda root: (root / 'output_phrase_val.txt').unlink(),
                           ['output_phrase_val.txt not found']),
}


@pytest.mark.parametrize('breakage', sorted(REFSEGRS_BREAKAGES))
def test_refsegrs_malformed_input_is_named(tmp_path, breakage):
    root = copy_refsegrs(tmp_path)
    breaker, fragments = REFSEGRS_BREAKAGES[breakage]
    breaker(root)
    with pytest.raises(ConverterError) as info:
        convert_refsegrs(root, tmp_path / 'out')
    for fragment in fragments:
        assert fragment in str(info.value)
    assert not list((tmp_path / 'out').glob('*.jsonl'))


def test_refsegrs_crlf_blank_lines_and_empty_split(tmp_path):
    root = copy_refsegrs(tmp_path)
    (root / 'output_phrase_train.txt').write_bytes(
        b'3 car\r\n\r\n14 building along the road\r\n')
    (root / 'output_phrase_val.txt').write_bytes(b'')
    summary = convert_refsegrs(root, tmp_path / 'out')
    train = read_split(tmp_path / 'out', 'train')
    assert [r['expression'] for r in train] == ['car', 'building along the road']
    assert [r['sent_id'] for r in train] == [0, 2]  # line numbers in the file
    assert summary.skipped == [('output_phrase_train.txt line 2', 'blank line')]
    assert (tmp_path / 'out' / 'val.jsonl').read_text() == ''
    assert summary.references == {'train': 2, 'val': 0, 'test': 3}
    assert 'blank line: 1' in summary.format()


def test_refsegrs_threshold_and_empty_mask(tmp_path):
    root = copy_refsegrs(tmp_path)
    soft = np.array([[0, 50, 51, 255]], dtype=np.uint8)
    write_tif(tmp_path / 'soft.tif', soft)
    np.testing.assert_array_equal(load_binary_mask(tmp_path / 'soft.tif', 'x'), [[0, 0, 1, 1]])
    write_tif(root / 'masks' / '3.tif', np.full((48, 48), 50, np.uint8))
    summary = convert_refsegrs(root, tmp_path / 'out')
    assert summary.empty_masks == ['id 3']
    assert not read_mask(tmp_path / 'out', read_split(tmp_path / 'out', 'train')[0]).any()


# --------------------------------------------------------------------------- output guard


def test_non_empty_output_needs_overwrite(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(ConverterError, match='not empty.*--overwrite'):
        convert_rrsisd(FORMATS / 'rrsisd', out)
    assert sorted(p.name for p in out.iterdir()) == ['notes.txt']
    convert_rrsisd(FORMATS / 'rrsisd', out, overwrite=True)
    first = snapshot(out)
    convert_rrsisd(FORMATS / 'rrsisd', out, overwrite=True)  # over its own earlier output
    assert (out / 'notes.txt').read_text() == 'mine'
    assert {k: v[0] for k, v in snapshot(out).items()} == {k: v[0] for k, v in first.items()}
    assert len(read_split(out, 'train')) == 5


def test_output_cannot_be_the_source(tmp_path):
    root = copy_refsegrs(tmp_path)
    with pytest.raises(ConverterError, match='is the source directory'):
        convert_refsegrs(root, root, overwrite=True)


def test_output_inside_source_leaves_source_alone(tmp_path):
    root = copy_refsegrs(tmp_path)
    before = snapshot(root)
    for _ in range(2):
        convert_refsegrs(root, root / 'converted', copy_images=True, overwrite=True)
    after = {k: v for k, v in snapshot(root).items() if not k.startswith('converted')}
    assert after == before
    assert len(read_split(root / 'converted', 'test')) == 3


def test_never_writes_through_a_link_into_the_source(tmp_path):
    root = copy_refsegrs(tmp_path)
    out = tmp_path / 'out'
    out.mkdir()
    os.symlink(root / 'images', out / 'images')
    before = snapshot(root)
    with pytest.raises(ConverterError, match='it is a source file'):
        convert_refsegrs(root, out, copy_images=True, overwrite=True)
    assert snapshot(root) == before


# --------------------------------------------------------------------------- CLIs


def load_cli(name: str):
    return load_script(f'data_prep/{name}.py')


@pytest.mark.slow
def test_rrsisd_cli_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, 'data_prep/rrsisd.py', '--src', str(FORMATS / 'rrsisd'),
         '--out', str(tmp_path / 'out')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'RRSIS-D converted into' in result.stdout
    assert 'distinct images: 10' in result.stdout
    assert len(read_split(tmp_path / 'out', 'test')) == 3


@pytest.mark.slow
def test_refsegrs_cli_subprocess_error(tmp_path):
    root = copy_refsegrs(tmp_path)
    append_line(root, 'val', 'garbage\n')
    result = subprocess.run(
        [sys.executable, 'data_prep/refsegrs.py', '--src', str(root),
         '--out', str(tmp_path / 'out')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith('error: output_phrase_val.txt line 3: malformed line')
    assert 'Traceback' not in result.stderr


def test_cli_main_in_process(tmp_path, capsys):
    refsegrs_cli, rrsisd_cli = load_cli('refsegrs'), load_cli('rrsisd')
    out = tmp_path / 'out'
    assert refsegrs_cli.main(['--src', str(FORMATS / 'refsegrs'), '--out', str(out),
                              '--copy-images']) == 0
    assert 'RefSegRS converted into' in capsys.readouterr().out
    assert read_split(out, 'val')[0]['img_path'] == 'images/47.tif'
    assert rrsisd_cli.main(['--src', str(FORMATS / 'rrsisd'), '--out', str(out)]) == 1
    assert '--overwrite' in capsys.readouterr().err
    assert rrsisd_cli.main(['--src', str(FORMATS / 'rrsisd'), '--out', str(out),
                            '--overwrite', '--no-verify-images']) == 0
