"""The reference's input protocol (docs/reference.md 6c), from image file to normalised tensor.

The reference side is computed here with Pillow directly: ``Image.open``, RGB, Pillow's
bilinear resize of the image (what torchvision's resize of a PIL image does, antialiased
when shrinking), Pillow's nearest resize of the mask, ``/ 255`` and the ImageNet
mean / std. Each config's train and test pipelines and its data preprocessor must give
the same tensors; ``RefSegMetric`` must score against the Pillow-nearest ground truth.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import demo_text_encoder, load_config
from mmengine.runner import Runner, set_random_seed
from mmengine.structures import PixelData
from mmseg.registry import METRICS, MODELS
from mmseg.structures import SegDataSample
from PIL import Image

from fianet_mmseg.constants import INPUT_SIZE_PRED

MEAN = np.array([0.485, 0.456, 0.406])  # the reference's Normalize (0-1 scale)
STD = np.array([0.229, 0.224, 0.225])
SIZE = 480
# float32 normalised inputs of magnitude <= 2.7: agreement to 1e-4 leaves room for the
# rounding of (x - 123.675) / 58.395 against (x / 255 - 0.485) / 0.229 (~1e-6)
ATOL = 1e-4


def _scene(height: int, width: int, seed: int):
    """A textured RGB image and a 0/1 mask with thin and curved parts."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8),
                      (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-25, 26, (height, width, 3))
    image = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 3, height // 2), (width // 5, height // 7), 30, 0, 360, 1, -1)
    cv2.line(mask, (width // 2, 10), (width - 20, height - 30), 1, 3)
    return image, mask


@pytest.fixture(scope='module')
def protocol_data(tmp_path_factory):
    """An 800x800 JPEG (RRSIS-D) and a 512x512 TIFF (RefSegRS), masks as PNG, JSONL files."""
    root = tmp_path_factory.mktemp('protocol')
    records = {}
    for name, (height, width), suffix in (('rrsisd', (800, 800), '.jpg'),
                                           ('refsegrs', (512, 512), '.tif')):
        image, mask = _scene(height, width, seed=len(name))
        img_path, mask_path = root / f'{name}{suffix}', root / f'{name}_mask.png'
        Image.fromarray(image).save(img_path, quality=90) if suffix == '.jpg' \
            else Image.fromarray(image).save(img_path)
        Image.fromarray(mask).save(mask_path)
        record = dict(img_path=str(img_path), seg_map_path=str(mask_path),
                      expression='the gray storage tank on the lower left', ref_id=7,
                      sent_id=7, category='storage tank')
        for split in ('train', 'test'):
            (root / name).mkdir(exist_ok=True)
            (root / name / f'{split}.jsonl').write_text(json.dumps(record) + '\n')
        records[name] = record
    return root, records


def _reference_image(path) -> np.ndarray:
    with Image.open(path) as image:
        resized = image.convert('RGB').resize((SIZE, SIZE), Image.BILINEAR)
    return (np.asarray(resized, dtype=np.float64) / 255 - MEAN) / STD  # (H, W, 3) RGB


def _reference_mask(path) -> np.ndarray:
    with Image.open(path) as mask:
        return np.asarray(mask.resize((SIZE, SIZE), Image.NEAREST))


def _loader(cfg, split: str, data_root):
    loader = cfg[f'{split}_dataloader'].copy()
    loader.update(batch_size=1, num_workers=0, persistent_workers=False, pin_memory=False,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    loader.dataset.update(data_root=str(data_root), ann_file=f'{split}.jsonl')
    for step in loader.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step['tokenizer'] = demo_text_encoder()
        if step['type'] == 'RandomBlackBoxes':
            step['ratio'] = 0.0  # on its own in test_black_boxes_*
    return Runner.build_dataloader(loader)


@pytest.mark.parametrize('config, name', [('fianet_swin-b_rrsisd.py', 'rrsisd'),
                                          ('fianet_swin-b_refsegrs.py', 'refsegrs')])
@pytest.mark.parametrize('split', ['train', 'test'])
def test_pipeline_and_preprocessor_give_the_reference_tensors(protocol_data, config, name,
                                                               split):
    root, records = protocol_data
    record = records[name]
    cfg = load_config(config)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(next(iter(_loader(cfg, split, root / name))), training=split == 'train')
    image = batch['inputs'][0].permute(1, 2, 0).double().numpy()
    expected = _reference_image(record['img_path'])
    assert image.shape == expected.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(image, expected, atol=ATOL, rtol=0)
    # the old protocol (OpenCV decode + bilinear resize without antialiasing) is far off
    bgr = cv2.resize(cv2.imread(record['img_path']), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    old = (bgr[..., ::-1] / 255 - MEAN) / STD
    assert np.abs(old - expected).max() > 100 * ATOL
    sample = batch['data_samples'][0]
    if split == 'train':  # the training target: Pillow-nearest, exactly
        target = sample.gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(target, _reference_mask(record['seg_map_path']))
    else:  # the ground truth stays at the original size for IoUMetric
        with Image.open(record['seg_map_path']) as mask:
            np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), np.asarray(mask))


def test_refseg_metric_scores_against_pillow_nearest_ground_truth(protocol_data):
    root, records = protocol_data
    with Image.open(records['rrsisd']['seg_map_path']) as mask:
        original = np.asarray(mask)
    pillow = _reference_mask(records['rrsisd']['seg_map_path'])
    opencv = cv2.resize(original, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    assert (pillow != opencv).sum() > 50  # the two nearest filters sample other pixels
    prediction = opencv  # scored against the Pillow ground truth, it is not perfect
    intersection = int((prediction & pillow).sum())
    union = int((prediction | pillow).sum())
    metric = METRICS.build(dict(type='RefSegMetric', eval_size='input'))
    sample = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=original.shape,
                                         sample_idx=0, ref_id=7, sent_id=7, expression='x',
                                         category='storage tank', img_path='x.jpg'))
    sample.set_data({'gt_sem_seg': PixelData(data=torch.from_numpy(original.copy())[None]),
                     INPUT_SIZE_PRED: PixelData(data=torch.from_numpy(prediction)[None])})
    metric.process({}, [sample.to_dict()])
    assert metric.results[0]['I'] == intersection and metric.results[0]['U'] == union
    assert metric.compute_metrics(metric.results)['oIoU'] == pytest.approx(
        100 * intersection / union)


# ----------------------------------------------------------------- black boxes
def _boxes_of_a_run(data_root, seed: int, num_workers: int):
    """Images after LoadImageFromFile + RandomBlackBoxes, as a run with ``seed`` draws them."""
    set_random_seed(seed)  # what the runner does before it builds its data loaders
    pipeline = [dict(type='LoadImageFromFile', imdecode_backend='pillow',
                     color_type='color_ignore_orientation'),
                dict(type='RandomBlackBoxes', ratio=0.5, min_boxes=2, max_boxes=4,
                     box_size=8),
                dict(type='PackSegInputs', meta_keys=('ref_id',))]
    loader = Runner.build_dataloader(
        dict(batch_size=1, num_workers=num_workers, persistent_workers=False,
             sampler=dict(type='DefaultSampler', shuffle=False),
             dataset=dict(type='RefSegDataset', data_root=str(data_root),
                          ann_file='train.jsonl', pipeline=pipeline)), seed=seed)
    return [batch['inputs'][0] for batch in loader]


@pytest.mark.parametrize('num_workers', [0, 1])
def test_black_boxes_come_from_the_seeded_generator(rrsisd_root, num_workers):
    first = _boxes_of_a_run(rrsisd_root, 2401, num_workers)
    again = _boxes_of_a_run(rrsisd_root, 2401, num_workers)
    other = _boxes_of_a_run(rrsisd_root, 7, num_workers)
    assert len(first) >= 4
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # one seed: the same boxes
    assert not all(torch.equal(a, b) for a, b in zip(first, other))  # another: others


def test_black_boxes_go_on_the_original_image_in_the_configs():
    for split_cfg in (load_config('fianet_swin-b_rrsisd.py').train_dataloader,):
        types = [step['type'] for step in split_cfg.dataset.pipeline]
        assert types.index('RandomBlackBoxes') < types.index('Resize')
        boxes = split_cfg.dataset.pipeline[types.index('RandomBlackBoxes')]
        assert (boxes['ratio'], boxes['min_boxes'], boxes['max_boxes'], boxes['box_size']) == \
            (0.2, 20, 60, 32)
    assert 'RandomBlackBoxes' not in [
        step['type'] for step in load_config('fianet_swin-b_refsegrs.py').train_dataloader
        .dataset.pipeline]


def test_training_loader_drops_an_incomplete_last_batch_like_the_reference(rrsisd_root):
    """The reference's DataLoader has drop_last=True: every step sees a full batch, and
    the poly schedule counts len(loader) = floor(N / batch) steps per epoch."""
    cfg = load_config('fianet_swin-b_rrsisd.py')
    assert cfg.train_dataloader.drop_last is True
    samples = len((rrsisd_root / 'train.jsonl').read_text().splitlines())
    loader = _loader(cfg, 'train', rrsisd_root)
    assert samples % 2 == 1 and len(_loader_with_batch(cfg, rrsisd_root, 2)) == samples // 2
    assert len(loader) == samples  # batch 1 in _loader


def _loader_with_batch(cfg, data_root, batch_size: int):
    loader = cfg.train_dataloader.copy()
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    loader.dataset.update(data_root=str(data_root))
    return Runner.build_dataloader(loader)
