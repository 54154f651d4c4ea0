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
from pycocotools import mask as mask_utils

from fianet_mmseg.datasets.converters import (
    RECORD_KEYS,
    ConverterError,
    category_from_expression,
    convert_refsegrs,
    convert_rrsisd,
    decode_segmentation,
)
from fianet_mmseg.datasets.converters.coco_masks import compressed_run_lengths
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


def check_against_expected(out: Path, dataset: str, image_dir: Path, paths: str) -> None:
    """Records and masks of ``out`` against expected.json; ``paths``: how images are stored,
    'relative' (to ``out``, the default), 'copy' (``--copy-images``) or 'absolute'."""
    for split, expected_refs in EXPECTED[dataset].items():
        records = read_split(out, split)
        assert len(records) == len(expected_refs)
        for record, expected in zip(records, expected_refs, strict=True):
            assert tuple(record) == RECORD_KEYS
            assert record['split'] == split
            assert record['expression'] == expected['expression']
            assert (record['height'], record['width']) == (expected['height'], expected['width'])
            if paths == 'copy':
                assert record['img_path'] == f'images/{expected["image"]}'
                copy = out / record['img_path']
                assert copy.read_bytes() == (image_dir / expected['image']).read_bytes()
            elif paths == 'absolute':
                assert record['img_path'] == str(image_dir / expected['image'])
            else:  # relative to out, climbing out of it to the source image
                assert not Path(record['img_path']).is_absolute()
                assert record['img_path'].startswith('../')
                assert os.path.samefile(out / record['img_path'], image_dir / expected['image'])
            assert not Path(record['seg_map_path']).is_absolute()
            mask = read_mask(out, record)
            assert mask.shape == (expected['height'], expected['width'])
            assert set(np.unique(mask)) <= {0, 1}
            assert int(mask.sum()) == expected['foreground']
            assert hashlib.sha1(mask.tobytes()).hexdigest() == expected['mask_sha1']


# --------------------------------------------------------------------------- RRSIS-D


PATH_MODES = {'relative': {}, 'copy': {'copy_images': True}, 'absolute': {'absolute_paths': True}}


@pytest.mark.parametrize('paths', sorted(PATH_MODES))
def test_rrsisd_reproduces_expected(tmp_path, paths):
    source = FORMATS / 'rrsisd'
    before = snapshot(source)
    summary = convert_rrsisd(source, tmp_path / 'out', **PATH_MODES[paths])
    assert snapshot(source) == before
    check_against_expected(tmp_path / 'out', 'rrsisd', source / JPEGS, paths)
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


RLE_FIELD = "instances.json annotation {0} (ref_id {0}), field 'segmentation[0]'"
RRSISD_BREAKAGES = {
    'missing image': (lambda root: (root / JPEGS / '01037.jpg').unlink(),
                      ['ref_id 1037', '01037.jpg', 'missing image file']),
    'corrupt image': (lambda root: (root / JPEGS / '01074.jpg').write_bytes(b'not a jpeg'),
                      ['ref_id 1074', '01074.jpg', 'cannot decode image']),
    # RLEs pycocotools would read without complaint but whose runs do not cover the image
    'short RLE': (lambda root: edit_annotation(  # 2 runs, 1958 + 1 pixels of 48 x 64
        root, 1000, segmentation=[dict(_rle(root, 1000), counts='Vm11')]),
        [RLE_FIELD.format(1000), 'bad RLE', 'sum to 48x64 = 3072 pixels', 'summing to 1959']),
    'RLE cut off': (lambda root: edit_annotation(  # 'V' (38 = 32 + 6): a group with more to come
        root, 1000, segmentation=[dict(_rle(root, 1000), counts=_rle(root, 1000)['counts'] + 'V')]),
        [RLE_FIELD.format(1000), 'bad RLE', 'run cut off']),
    'garbage RLE': (lambda root: edit_annotation(
        root, 1037, segmentation=[dict(_rle(root, 1037), counts='garbage!!')]),
        [RLE_FIELD.format(1037), 'bad RLE', 'not a COCO compressed RLE string']),
    'long uncompressed RLE': (lambda root: edit_annotation(
        root, 1074, segmentation=[{'size': [64, 64], 'counts': [4000, 97]}]),
        [RLE_FIELD.format(1074), 'bad RLE', 'summing to 4097']),
    'negative run': (lambda root: edit_annotation(
        root, 1074, segmentation=[{'size': [64, 64], 'counts': [5, -1, 4092]}]),
        [RLE_FIELD.format(1074), 'bad RLE', 'with a negative one']),
    'fractional run': (lambda root: edit_annotation(
        root, 1074, segmentation=[{'size': [64, 64], 'counts': [5.5, 4090.5]}]),
        [RLE_FIELD.format(1074), 'bad RLE', 'must be integers']),
    'RLE size': (lambda root: edit_annotation(
        root, 1000, segmentation=[dict(_rle(root, 1000), size=[64, 64])]),
        ['ref_id 1000', 'does not match the image size [48, 64]']),
    'bad polygon': (lambda root: edit_annotation(root, 1111, segmentation=[[1.0, 2.0, 3.0]]),
                    [RLE_FIELD.format(1111), 'bad polygon']),
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
    # nothing is left: neither the output folder nor its temporary sibling
    assert sorted(p.name for p in tmp_path.iterdir()) == ['rrsisd_src']
    assert snapshot(root) == before


def test_decode_segmentation_takes_the_union_in_column_major_order():
    column0 = {'size': [4, 4], 'counts': [0, 4, 12]}  # runs run down the columns
    columns01 = {'size': [4, 4], 'counts': [0, 8, 8]}
    column3 = {'size': [4, 4], 'counts': [12, 4]}
    mask = decode_segmentation([column0, columns01, column3], 4, 4, 'test')
    expected = np.array([[1, 1, 0, 1]] * 4, dtype=np.uint8)
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == np.uint8 and mask.flags['C_CONTIGUOUS']
    with pytest.raises(ConverterError, match='sum to 4x4 = 16 pixels'):
        decode_segmentation([{'size': [4, 4], 'counts': [0, 4, 11]}], 4, 4, 'test')


# --------------------------------------------------------------------------- RefSegRS


@pytest.mark.parametrize('paths', sorted(PATH_MODES))
def test_refsegrs_reproduces_expected(tmp_path, paths):
    source = FORMATS / 'refsegrs'
    before = snapshot(source)
    summary = convert_refsegrs(source, tmp_path / 'out', **PATH_MODES[paths])
    assert snapshot(source) == before
    check_against_expected(tmp_path / 'out', 'refsegrs', source / 'images', paths)
    assert summary.references == {'train': 4, 'val': 2, 'test': 3}
    assert summary.sentences == summary.references
    assert (summary.images, summary.masks, summary.skipped) == (9, 9, [])


def test_refsegrs_record_ids_and_categories(tmp_path):
    convert_refsegrs(FORMATS / 'refsegrs', tmp_path / 'out')
    records = {split: read_split(tmp_path / 'out', split) for split in ('train', 'val', 'test')}
    assert [r['category'] for r in records['train']] == ['car', 'building', 'vehicle', 'truck']
    assert [r['category'] for r in records['val']] == ['vehicle', 'road marking']
    assert [r['category'] for r in records['test']] == ['low vegetation', 'building', 'trailer']
    # ref_id = sent_id = split offset (train 0, val 100000, test 200000) + 0-based line
    ids = {split: [(r['ref_id'], r['sent_id'], r['image_id']) for r in recs]
           for split, recs in records.items()}
    assert ids == {
        'train': [(0, 0, '3'), (1, 1, '14'), (2, 2, '25'), (3, 3, '36')],
        'val': [(100000, 100000, '47'), (100001, 100001, '58')],
        'test': [(200000, 200000, '69'), (200001, 200001, '80'), (200002, 200002, '91')]}
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ['refsegrs_src']


def test_refsegrs_crlf_blank_lines_and_empty_split(tmp_path):
    root = copy_refsegrs(tmp_path)
    (root / 'output_phrase_train.txt').write_bytes(
        b'3 car\r\n\r\n14 building along the road\r\n')
    (root / 'output_phrase_val.txt').write_bytes(b'')
    (root / 'output_phrase_test.txt').write_bytes(b'\n69 low vegetation\n')
    summary = convert_refsegrs(root, tmp_path / 'out')
    train = read_split(tmp_path / 'out', 'train')
    assert [r['expression'] for r in train] == ['car', 'building along the road']
    assert [r['sent_id'] for r in train] == [0, 2]  # line numbers in the file
    assert [r['ref_id'] for r in read_split(tmp_path / 'out', 'test')] == [200001]
    assert summary.skipped == [('output_phrase_train.txt line 2', 'blank line'),
                               ('output_phrase_test.txt line 1', 'blank line')]
    assert (tmp_path / 'out' / 'val.jsonl').read_text() == ''
    assert summary.references == {'train': 2, 'val': 0, 'test': 1}
    assert 'blank line: 2' in summary.format()


def test_refsegrs_threshold_and_empty_mask(tmp_path):
    root = copy_refsegrs(tmp_path)
    soft = np.array([[0, 50, 51, 255]], dtype=np.uint8)
    write_tif(tmp_path / 'soft.tif', soft)
    np.testing.assert_array_equal(load_binary_mask(tmp_path / 'soft.tif', 'x'), [[0, 0, 1, 1]])
    write_tif(root / 'masks' / '3.tif', np.full((48, 48), 50, np.uint8))
    summary = convert_refsegrs(root, tmp_path / 'out')
    assert summary.empty_masks == ['id 3']
    assert not read_mask(tmp_path / 'out', read_split(tmp_path / 'out', 'train')[0]).any()


# --------------------------------------------------------------------------- RLE variants


def run_lengths(mask: np.ndarray) -> list:
    """COCO run lengths of a binary mask (column-major, starting with background), by numpy."""
    flat = mask.flatten(order='F')
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0] + runs if flat[0] else runs


def sha1(mask: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()).hexdigest()


def test_uncompressed_rle_converts_to_the_mask_it_came_from(tmp_path):
    # Annotation 1111 is the polygon (27, 10)-(49, 26): pixel columns 27..48 and rows
    # 10..25, 22 x 16 = 352 pixels; the same mask, drawn here with numpy, as list counts.
    rectangle = np.zeros((48, 64), np.uint8)
    rectangle[10:26, 27:49] = 1
    assert sha1(rectangle) == EXPECTED['rrsisd']['train'][3]['mask_sha1']
    root = copy_rrsisd(tmp_path)
    edit_annotation(root, 1111, segmentation=[{'size': [48, 64],
                                               'counts': run_lengths(rectangle)}])
    convert_rrsisd(root, tmp_path / 'out')
    record = read_split(tmp_path / 'out', 'train')[3]
    assert record['ref_id'] == 1111
    np.testing.assert_array_equal(read_mask(tmp_path / 'out', record), rectangle)


def test_non_canonical_compressed_rles_convert(tmp_path):
    root = copy_rrsisd(tmp_path)
    # Annotation 1000: the first run, 1958 = 6 + 29 * 32 + 1 * 1024, is written 'V' 'm' '1'
    # (groups 6, 29 and 1, the first two flagged "more"); 'Q' '0' writes the last group 1
    # flagged "more", then a superfluous group 0: the same run in four characters.
    canonical = _rle(root, 1000)['counts']
    assert canonical.startswith('Vm11')
    padded = 'VmQ0' + canonical[3:]
    # Annotation 1037: its runs with the first foreground run split in two by an empty
    # background run, written by pycocotools from those runs (not what encode() writes).
    mask = mask_utils.decode({'size': [64, 64], 'counts': _rle(root, 1037)['counts'].encode()})
    runs = run_lengths(mask)
    half = runs[1] // 2
    zero_run = mask_utils.frPyObjects(
        {'size': [64, 64], 'counts': runs[:1] + [half, 0, runs[1] - half] + runs[2:]},
        64, 64)['counts'].decode()
    assert zero_run != _rle(root, 1037)['counts']
    edit_annotation(root, 1000, segmentation=[dict(_rle(root, 1000), counts=padded)])
    edit_annotation(root, 1037, segmentation=[dict(_rle(root, 1037), counts=zero_run)])
    convert_rrsisd(root, tmp_path / 'out')
    train = read_split(tmp_path / 'out', 'train')
    for record, expected in zip(train[:2], EXPECTED['rrsisd']['train'][:2]):
        assert sha1(read_mask(tmp_path / 'out', record)) == expected['mask_sha1']


def test_compressed_run_lengths_read_what_pycocotools_writes():
    rng = np.random.default_rng(0)
    masks = [np.zeros((3, 5), np.uint8), np.ones((4, 2), np.uint8)]
    for _ in range(40):
        height, width = rng.integers(1, 40, size=2)
        masks.append((rng.random((height, width)) < rng.random()).astype(np.uint8))
    big = np.zeros((800, 800), np.uint8)  # runs of 2**17 pixels and more: many groups
    big[:, 300:301] = 1
    big[5:9, 700:] = 1
    masks.append(big)
    for mask in masks:
        counts = mask_utils.encode(np.asfortranarray(mask))['counts']
        assert compressed_run_lengths(counts) == run_lengths(mask)
    assert compressed_run_lengths(b'') == []
    assert compressed_run_lengths(b'V') is None  # a group flagged "more", then the end
    assert compressed_run_lengths(b'1p') is None  # 'p' is past the 64 characters used
    assert compressed_run_lengths(b'1/') is None


# --------------------------------------------------------------------------- --skip-bad


def test_rrsisd_skip_bad_leaves_out_malformed_references(tmp_path):
    root = copy_rrsisd(tmp_path)
    (root / JPEGS / '01037.jpg').unlink()
    edit_annotation(root, 1111, segmentation=[[1.0, 2.0, 3.0]])
    with pytest.raises(ConverterError, match='missing image file'):
        convert_rrsisd(root, tmp_path / 'strict')  # the default stops
    summary = convert_rrsisd(root, tmp_path / 'out', skip_bad=True)
    assert sorted(summary.skipped) == [('refs(unc).p ref_id 1037', 'missing image file'),
                                       ('refs(unc).p ref_id 1111', 'bad polygon')]
    assert summary.skip_counts() == {'missing image file': 1, 'bad polygon': 1}
    text = summary.format()
    assert 'skipped records: 2' in text
    assert 'missing image file: 1 (refs(unc).p ref_id 1037)' in text
    assert 'bad polygon: 1 (refs(unc).p ref_id 1111)' in text
    left_out = {'01037.jpg', '01111.jpg'}
    for split, expected_refs in EXPECTED['rrsisd'].items():
        kept = [e for e in expected_refs if e['image'] not in left_out]
        records = read_split(tmp_path / 'out', split)
        assert [r['expression'] for r in records] == [e['expression'] for e in kept]
        assert [sha1(read_mask(tmp_path / 'out', r)) for r in records] == \
            [e['mask_sha1'] for e in kept]
    assert summary.references == {'train': 3, 'val': 2, 'test': 3}
    assert (summary.images, summary.masks) == (8, 8)
    assert sorted(p.name for p in (tmp_path / 'out' / 'masks').iterdir()) == sorted(
        f'{int(e["image"][:-4])}.png' for refs in EXPECTED['rrsisd'].values() for e in refs
        if e['image'] not in left_out)


def test_refsegrs_skip_bad_leaves_out_malformed_lines(tmp_path):
    root = copy_refsegrs(tmp_path)
    append_line(root, 'train', 'no-expression\n')  # line 5
    (root / 'masks' / '58.tif').unlink()  # val line 2
    summary = convert_refsegrs(root, tmp_path / 'out', skip_bad=True)
    assert sorted(summary.skipped) == [('output_phrase_train.txt line 5', 'malformed line'),
                                       ('output_phrase_val.txt line 2', 'missing mask file')]
    assert summary.skip_counts() == {'malformed line': 1, 'missing mask file': 1}
    assert 'malformed line: 1' in summary.format()
    assert 'missing mask file: 1' in summary.format()
    records = {split: read_split(tmp_path / 'out', split) for split in ('train', 'val', 'test')}
    assert [r['expression'] for r in records['train']] == [
        e['expression'] for e in EXPECTED['refsegrs']['train']]
    assert [(r['ref_id'], r['image_id']) for r in records['val']] == [(100000, '47')]
    assert len(records['test']) == 3
    assert sorted(p.name for p in (tmp_path / 'out' / 'masks').iterdir()) == sorted(
        f'{i}.png' for i in (3, 14, 25, 36, 47, 69, 80, 91))


# --------------------------------------------------------------------------- output folder


def tree(root: Path) -> dict:
    """Relative path -> SHA-1 of every file under ``root`` (folders left out)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_non_empty_output_needs_overwrite_of_an_earlier_conversion(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(ConverterError, match='not empty.*--overwrite'):
        convert_rrsisd(FORMATS / 'rrsisd', out)
    # --overwrite replaces an earlier conversion, never a folder of other files
    with pytest.raises(ConverterError, match='does not hold an earlier conversion'):
        convert_rrsisd(FORMATS / 'rrsisd', out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ['notes.txt']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']


def test_overwrite_replaces_the_folder_as_a_whole(tmp_path):
    out, fresh = tmp_path / 'out', tmp_path / 'fresh'
    convert_refsegrs(FORMATS / 'refsegrs', out, copy_images=True)
    (out / 'notes.txt').write_text('added by hand')
    convert_rrsisd(FORMATS / 'rrsisd', out, overwrite=True)
    convert_rrsisd(FORMATS / 'rrsisd', fresh)
    assert tree(out) == tree(fresh)
    assert sorted(p.name for p in out.iterdir()) == ['masks', 'test.jsonl', 'train.jsonl',
                                                     'val.jsonl']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fresh', 'out']  # nothing temporary


def _delete_rrsisd_ref(root: Path) -> None:
    refs = pickle.loads((root / REFS).read_bytes())
    (root / REFS).write_bytes(pickle.dumps([r for r in refs if r['ref_id'] != 1074]))


def _delete_refsegrs_line(root: Path) -> None:
    path = root / 'output_phrase_test.txt'
    path.write_text(path.read_text().replace('91 trailer in the parking area\n', ''))


DELETIONS = {  # convert, copy the release, delete a record, its mask, records left
    'rrsisd': (convert_rrsisd, copy_rrsisd, _delete_rrsisd_ref, '1074.png', 9),
    'refsegrs': (convert_refsegrs, copy_refsegrs, _delete_refsegrs_line, '91.png', 8),
}


@pytest.mark.parametrize('dataset', sorted(DELETIONS))
def test_overwrite_after_deleting_a_record_leaves_exactly_the_new_output(tmp_path, dataset):
    convert, copy_release, delete_record, mask_name, left = DELETIONS[dataset]
    root = copy_release(tmp_path)
    out, fresh = tmp_path / 'out', tmp_path / 'fresh'
    convert(root, out)
    assert (out / 'masks' / mask_name).is_file()
    delete_record(root)
    convert(root, out, overwrite=True)
    convert(root, fresh)
    splits = ('train', 'val', 'test')
    records = {split: read_split(out, split) for split in splits}
    assert records == {split: read_split(fresh, split) for split in splits}
    assert sum(map(len, records.values())) == left
    masks = sorted(p.name for p in (out / 'masks').iterdir())
    assert masks == sorted(p.name for p in (fresh / 'masks').iterdir())
    assert len(masks) == left and mask_name not in masks
    assert sorted(p.name for p in out.iterdir()) == ['masks', 'test.jsonl', 'train.jsonl',
                                                     'val.jsonl']
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['out', 'fresh', root.name])


CORRUPTIONS = {
    'rrsisd': (convert_rrsisd, copy_rrsisd, lambda root: edit_annotation(
        root, 1259, segmentation=[{'size': [64, 64], 'counts': 'garbage!!'}])),
    'refsegrs': (convert_refsegrs, copy_refsegrs,
                 lambda root: append_line(root, 'test', 'no-expression\n')),
}


@pytest.mark.parametrize('dataset', sorted(CORRUPTIONS))
def test_failed_overwrite_leaves_the_previous_output_byte_identical(tmp_path, dataset):
    convert, copy_release, corrupt = CORRUPTIONS[dataset]
    root = copy_release(tmp_path)
    out = tmp_path / 'out'
    convert(root, out)
    before, listing = snapshot(out), sorted(p.name for p in tmp_path.iterdir())
    corrupt(root)  # a record late in the release: masks were written before it fails
    with pytest.raises(ConverterError):
        convert(root, out, overwrite=True)
    assert snapshot(out) == before  # every file's content and mtime, every folder's mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no temporary folder


def test_output_is_neither_the_source_nor_inside_it_nor_around_it(tmp_path):
    root = copy_refsegrs(tmp_path)
    os.symlink(root / 'masks', tmp_path / 'link_into_source')
    before = snapshot(tmp_path)
    with pytest.raises(ConverterError, match='is the source directory'):
        convert_refsegrs(root, root, overwrite=True)
    for inside in (root / 'converted', root / 'masks' / 'out', tmp_path / 'link_into_source'):
        with pytest.raises(ConverterError, match='inside the source directory'):
            convert_refsegrs(root, inside, overwrite=True)
    with pytest.raises(ConverterError, match='contains the source directory'):
        convert_refsegrs(root, tmp_path, overwrite=True)
    assert snapshot(tmp_path) == before


def test_overwrite_never_follows_links_into_the_source(tmp_path):
    root = copy_refsegrs(tmp_path)
    out = tmp_path / 'out'
    convert_refsegrs(root, out)
    os.symlink(root / 'images', out / 'images')  # say, made by hand
    before = snapshot(root)
    convert_refsegrs(root, out, copy_images=True, overwrite=True)
    assert snapshot(root) == before
    assert (out / 'images').is_dir() and not (out / 'images').is_symlink()
    assert tree(out / 'images') == tree(root / 'images')


def test_output_behind_a_link_is_replaced_where_it_lives(tmp_path):
    real = tmp_path / 'disk' / 'converted'
    convert_rrsisd(FORMATS / 'rrsisd', real)
    (real / 'notes.txt').write_text('x')
    link = tmp_path / 'rrsisd'
    os.symlink(real, link)
    convert_rrsisd(FORMATS / 'rrsisd', link, overwrite=True)
    assert link.is_symlink() and (real / 'train.jsonl').is_file()
    assert not (real / 'notes.txt').exists()
    assert sorted(p.name for p in (tmp_path / 'disk').iterdir()) == ['converted']
    # relative image paths start from the real folder, one level deeper than the link
    record = read_split(link, 'train')[0]
    assert os.path.samefile(link / record['img_path'], FORMATS / 'rrsisd' / JPEGS / '01000.jpg')


def test_copy_images_and_absolute_paths_exclude_each_other(tmp_path):
    with pytest.raises(ConverterError, match='exclude each other'):
        convert_refsegrs(FORMATS / 'refsegrs', tmp_path / 'out', copy_images=True,
                         absolute_paths=True)
    assert not (tmp_path / 'out').exists()


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


def test_cli_flags_for_paths_and_bad_records(tmp_path, capsys):
    refsegrs_cli = load_cli('refsegrs')
    root = copy_refsegrs(tmp_path)
    append_line(root, 'val', 'garbage\n')
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:  # argparse: the two flags exclude each other
        refsegrs_cli.main(['--src', str(root), '--out', str(out), '--copy-images',
                           '--absolute-paths'])
    assert info.value.code == 2
    assert 'not allowed with argument' in capsys.readouterr().err
    assert refsegrs_cli.main(['--src', str(root), '--out', str(out), '--skip-bad',
                              '--absolute-paths']) == 0
    printed = capsys.readouterr().out
    assert 'skipped records: 1' in printed
    assert 'malformed line: 1 (output_phrase_val.txt line 3)' in printed
    assert read_split(out, 'val')[0]['img_path'] == str(root / 'images' / '47.tif')
