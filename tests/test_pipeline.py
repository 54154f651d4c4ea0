"""From converted release data to the batch the model consumes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import demo_text_encoder, load_config, offline_dataloader_cfg
from mmengine.runner import Runner
from mmseg.registry import MODELS, TRANSFORMS
from PIL import Image

from fianet_mmseg.datasets import RefSegDataset
from fianet_mmseg.datasets.transforms import swap_left_right
from fianet_mmseg.text import TextDecoupler, load_tokenizer

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


@pytest.mark.slow
def test_training_batch_end_to_end(rrsisd_root):
    cfg = load_config('fianet_swin-b_rrsisd.py')
    loader = Runner.build_dataloader(offline_dataloader_cfg(cfg.train_dataloader, rrsisd_root))
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(next(iter(loader)), training=True)
    inputs, samples, text = batch['inputs'], batch['data_samples'], batch['text']
    lines = (rrsisd_root / 'train.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines][:2]

    assert inputs.shape == (2, 3, 480, 480) and inputs.dtype == torch.float32
    tokenizer = load_tokenizer(demo_text_encoder())
    decoupler = TextDecoupler('rrsisd')
    for i, (record, sample) in enumerate(zip(records, samples)):
        # image: RGB, resized to 480x480 with Pillow's bilinear filter, ImageNet-normalised
        # (tests/test_input_protocol.py checks the protocol on a full-size image)
        with Image.open(rrsisd_root / record['img_path']) as image:  # relative to data_root
            rgb = np.asarray(image.convert('RGB').resize((480, 480), Image.BILINEAR))
        expected = (rgb - MEAN) / STD
        np.testing.assert_allclose(inputs[i].permute(1, 2, 0).numpy(), expected, atol=1e-4)
        # mask: the converted PNG resized with Pillow's nearest filter, values 0/1
        with Image.open(rrsisd_root / record['seg_map_path']) as mask:
            expected_mask = np.asarray(mask.resize((480, 480), Image.NEAREST))
        gt = sample.gt_sem_seg.data[0].numpy()
        assert set(np.unique(gt)) <= {0, 1} and gt.any()
        np.testing.assert_array_equal(gt, expected_mask)
        assert sample.expression == record['expression']
        # input ids: [CLS] wordpieces [SEP], zero-padded to the config's 22 tokens
        ids = text['input_ids'][i]
        wordpieces = tokenizer(record['expression'])['input_ids']
        assert ids.shape == (22,)
        assert ids[:len(wordpieces)].tolist() == wordpieces
        assert not ids[len(wordpieces):].any()
        attention = text['attention_mask'][i]
        assert attention.tolist() == [1] * len(wordpieces) + [0] * (22 - len(wordpieces))
        # the masks cover exactly the decoupled phrases' wordpieces
        decoupled = decoupler(record['expression'])
        object_ids = ids[text['object_mask'][i].bool()].tolist()
        assert tokenizer.decode(object_ids) == decoupled.object_phrase.lower()
        position = text['position_mask'][i]
        if decoupled.spatial_phrases:
            assert tokenizer.decode(ids[position.bool()].tolist()) == \
                ' '.join(decoupled.spatial_phrases).lower()
        else:
            assert torch.equal(position, attention)
        assert sample.object_phrase == decoupled.object_phrase


def test_fast_preprocessing_equals_mmseg_path(rrsisd_root):
    cfg = load_config('fianet_swin-b_rrsisd.py')
    loader = Runner.build_dataloader(offline_dataloader_cfg(cfg.val_dataloader, rrsisd_root))
    data = next(iter(loader))
    ours = MODELS.build(cfg.model.data_preprocessor)
    mmseg_cfg = dict(cfg.model.data_preprocessor, type='SegDataPreProcessor')
    mmseg_pre = MODELS.build(mmseg_cfg)
    fast = ours(data, training=False)
    plain = mmseg_pre(data, training=False)
    torch.testing.assert_close(fast['inputs'], plain['inputs'])
    assert set(fast['text']) == {'input_ids', 'attention_mask', 'object_mask', 'position_mask'}
    assert fast['text']['input_ids'].shape == (len(data['inputs']), 22)


def _raw_batch(sizes, seed: int = 0) -> dict:
    """A loader's batch: uint8 (3, H, W) images, data samples with 0/1 masks and text fields."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from fianet_mmseg.constants import TEXT_KEYS

    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen))
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 2, (1, h, w), generator=gen)))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.set_data({key: torch.ones(6, dtype=torch.long) for key in TEXT_KEYS})
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


class _FlipBatch:
    """A batch augment (mmseg calls ``batch_augments(inputs, data_samples)``): flips the
    images and masks left-right and marks the samples."""

    def __call__(self, inputs, data_samples):
        from mmengine.structures import PixelData

        for sample in data_samples:
            sample.gt_sem_seg = PixelData(data=sample.gt_sem_seg.data.flip(-1))
            sample.set_metainfo(dict(batch_flipped=True))
        return inputs.flip(-1), data_samples


def _preprocessors(size_divisor=None, **kwargs):
    """The config's preprocessor and mmseg's with the same settings. mmseg's training path
    needs a size or size divisor: 8 pads nothing here (sizes are multiples of 8)."""
    cfg = load_config('fianet_swin-b_rrsisd.py').model.data_preprocessor
    ours = MODELS.build(dict(cfg, size_divisor=size_divisor, **kwargs))
    mmseg_pre = MODELS.build(dict(cfg, type='SegDataPreProcessor',
                                  size_divisor=size_divisor or 8, **kwargs))
    return ours, mmseg_pre


def _as_tuple(value):
    """torch.Size, tuple and list compare alike."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _assert_same_batch(ours: dict, theirs: dict) -> None:
    assert torch.equal(ours['inputs'], theirs['inputs'])
    for mine, other in zip(ours['data_samples'], theirs['data_samples'], strict=True):
        assert torch.equal(mine.gt_sem_seg.data, other.gt_sem_seg.data)
        assert mine.metainfo.keys() == other.metainfo.keys()
        for key, value in other.metainfo.items():
            assert _as_tuple(mine.metainfo[key]) == _as_tuple(value), key


@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
def test_same_size_fast_path_equals_mmseg_path(training):
    """Tensors and data-sample metainfo of the fast path are mmseg's (bit for bit)."""
    ours, mmseg_pre = _preprocessors()
    fast = ours(_raw_batch([(32, 40)] * 3), training=training)
    plain = mmseg_pre(_raw_batch([(32, 40)] * 3), training=training)
    assert fast['inputs'].shape == (3, 3, 32, 40)
    _assert_same_batch(fast, plain)


@pytest.mark.parametrize('sizes', [[(32, 40)] * 2, [(32, 40), (24, 40)]],
                         ids=['same-size', 'padded'])
def test_batch_augments_apply_in_training_on_both_paths(sizes):
    """Same size: the fast path; different sizes (padded to 32): mmseg's path."""
    size_divisor = None if sizes[0] == sizes[1] else 32
    ours, mmseg_pre = _preprocessors(batch_augments=_FlipBatch(), size_divisor=size_divisor)
    plain_ours, _ = _preprocessors(size_divisor=size_divisor)
    trained = ours(_raw_batch(sizes), training=True)
    _assert_same_batch(trained, mmseg_pre(_raw_batch(sizes), training=True))
    unaugmented = plain_ours(_raw_batch(sizes), training=True)
    assert torch.equal(trained['inputs'], unaugmented['inputs'].flip(-1))
    for sample, plain in zip(trained['data_samples'], unaugmented['data_samples']):
        assert sample.batch_flipped
        assert torch.equal(sample.gt_sem_seg.data, plain.gt_sem_seg.data.flip(-1))
    if size_divisor is None:  # evaluation: no batch augments (and no padding)
        evaluated = ours(_raw_batch(sizes), training=False)
        assert torch.equal(evaluated['inputs'], unaugmented['inputs'])
        assert not any('batch_flipped' in s.metainfo for s in evaluated['data_samples'])


def test_random_black_boxes_fixed_subset_new_boxes():
    boxes = TRANSFORMS.build(dict(type='RandomBlackBoxes', ratio=0.2, seed=7))
    selected = [i for i in range(5000) if boxes.is_selected(i)]
    assert 0.17 < len(selected) / 5000 < 0.23
    assert selected == [i for i in range(5000) if boxes.is_selected(i)]  # same every epoch
    img = np.full((480, 480, 3), 200, np.uint8)
    mask = np.ones((480, 480), np.uint8)
    chosen, skipped = selected[0], next(i for i in range(5000) if i not in selected)
    first = boxes.transform(dict(img=img, gt_seg_map=mask, ref_id=chosen))
    second = boxes.transform(dict(img=img, gt_seg_map=mask, ref_id=chosen))
    untouched = boxes.transform(dict(img=img, gt_seg_map=mask, ref_id=skipped))
    black = (first['img'] == 0).all(-1)
    assert 20 * 32 * 32 * 0.3 < black.sum() <= 60 * 32 * 32  # 20-60 overlapping boxes
    assert set(np.unique(first['img'])) == {0, 200}
    assert not np.array_equal(first['img'], second['img'])  # new boxes on each load
    assert np.array_equal(untouched['img'], img) and (first['gt_seg_map'] == 1).all()
    assert (img == 200).all()  # the input array itself is not modified


def test_flip_with_text_swaps_left_and_right():
    assert swap_left_right('the Leftmost car, left of the RIGHT tank') == \
        'the Rightmost car, right of the LEFT tank'
    assert swap_left_right('a bright building') == 'a bright building'
    flip = TRANSFORMS.build(dict(type='RandomFlipWithText', prob=1.0))
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    seg = np.array([[1, 0], [1, 0]], np.uint8)
    out = flip.transform(dict(img=img.copy(), gt_seg_map=seg.copy(), seg_fields=['gt_seg_map'],
                              expression='the car on the left', img_shape=(2, 2)))
    assert out['expression'] == 'the car on the right'
    np.testing.assert_array_equal(out['gt_seg_map'], seg[:, ::-1])


def write_jsonl(path, records):
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_dataset_errors_name_file_and_line(tmp_path):
    good = dict(img_path='a.jpg', seg_map_path='a.png', expression='the car')
    ann = tmp_path / 'train.jsonl'
    ann.write_text(json.dumps(good) + '\n{not json\n')
    with pytest.raises(ValueError, match=r'train.jsonl, line 2: not valid JSON'):
        RefSegDataset(ann_file=str(ann))
    write_jsonl(ann, [good, dict(img_path='b.jpg', expression='x')])
    with pytest.raises(KeyError, match=r"line 2: missing field\(s\) \['seg_map_path'\]"):
        RefSegDataset(ann_file=str(ann))
    write_jsonl(ann, [dict(good, expression='  ')])
    with pytest.raises(ValueError, match='line 1: field "expression" is empty'):
        RefSegDataset(ann_file=str(ann))
    with pytest.raises(FileNotFoundError, match='missing.jsonl does not exist'):
        RefSegDataset(ann_file=str(tmp_path / 'missing.jsonl'))


def test_dataset_paths_and_shuffled_expressions(tmp_path):
    records = [dict(img_path=f'img/{i}.jpg', seg_map_path=f'masks/{i}.png',
                    expression=f'expression {i}', ref_id=i, category='ship')
               for i in range(50)]
    write_jsonl(tmp_path / 'val.jsonl', records)
    plain = RefSegDataset(ann_file='val.jsonl', data_root=str(tmp_path))
    info = plain.get_data_info(3)
    assert info['img_path'] == str(tmp_path / 'img' / '3.jpg')
    assert info['seg_map_path'] == str(tmp_path / 'masks' / '3.png')
    assert info['expression'] == 'expression 3' and info['category'] == 'ship'
    shuffled = RefSegDataset(ann_file='val.jsonl', data_root=str(tmp_path),
                             shuffle_expressions=True, shuffle_seed=1)
    again = RefSegDataset(ann_file='val.jsonl', data_root=str(tmp_path),
                          shuffle_expressions=True, shuffle_seed=1)
    moved = [shuffled.get_data_info(i)['expression'] for i in range(50)]
    assert moved == [again.get_data_info(i)['expression'] for i in range(50)]
    assert sorted(moved) == sorted(r['expression'] for r in records)
    assert sum(m != r['expression'] for m, r in zip(moved, records)) > 40
    # images and masks stay with their sample
    assert shuffled.get_data_info(3)['seg_map_path'] == info['seg_map_path']
