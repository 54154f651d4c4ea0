"""The GPU data path (configs/fianet_swin-b_rrsisd_gpu-datapath.py), each part checked on the CPU
against today's path: boxes drawn in the loader and painted on the device, pinned data samples,
the prefetching training loop, and the prepared GPU check."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import (
    FIXTURES,
    REPO,
    as_cli_options,
    demo_text_encoder,
    load_config,
    load_script,
    offline_dataloader_cfg,
    tiny_model_overrides,
)
from mmengine.hooks import Hook
from mmengine.runner import Runner, set_random_seed
from mmengine.structures import BaseDataElement
from mmseg.registry import MODELS, TRANSFORMS
from PIL import Image

from fianet_mmseg.constants import BLACK_BOXES, TEXT_KEYS
from fianet_mmseg.engine.loops import DevicePrefetcher

GPU_CONFIG = 'fianet_swin-b_rrsisd_gpu-datapath.py'
REFERENCE_CONFIG = 'fianet_swin-b_rrsisd.py'
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


# ------------------------------------------------------------ boxes drawn in the loader
def _reference_draws(height: int, width: int, size: int = 32, fewest: int = 20,
                     most: int = 60) -> list:
    """The reference's boxes from numpy's generator (docs/reference.md 6c): the count, then
    each box's row and column, uniform in [0, side - size]; as (top, left, bottom, right)."""
    boxes = []
    for _ in range(np.random.randint(fewest, most + 1)):
        top = np.random.randint(0, height - size + 1)
        left = np.random.randint(0, width - size + 1)
        boxes.append([top, left, top + size, left + size])
    return boxes


def _paint(image: np.ndarray, boxes) -> np.ndarray:
    painted = image.copy()
    for top, left, bottom, right in boxes:
        painted[top:bottom, left:right] = 0
    return painted


def test_recorded_boxes_are_the_boxes_the_per_sample_transform_paints():
    """Same subset seed, same generator state: ``paint=False`` records exactly the boxes that
    ``paint=True`` paints (the reference's draws), for the same references."""
    image = np.full((96, 120, 3), 200, np.uint8)
    painter = TRANSFORMS.build(dict(type='RandomBlackBoxes', ratio=0.5, seed=3))
    recorder = TRANSFORMS.build(dict(type='RandomBlackBoxes', ratio=0.5, seed=3, paint=False))
    selected = 0
    for ref_id in range(40):
        sample = dict(img=image, ref_id=ref_id, ori_shape=(96, 120))
        np.random.seed(ref_id)
        expected = _reference_draws(96, 120) if painter.is_selected(ref_id) else []
        np.random.seed(ref_id)
        painted = painter.transform(dict(sample))
        np.random.seed(ref_id)
        recorded = recorder.transform(dict(sample))
        assert recorded[BLACK_BOXES].tolist() == expected
        assert recorded[BLACK_BOXES].shape == (len(expected), 4)
        np.testing.assert_array_equal(painted['img'], _paint(image, expected))
        assert recorded['img'] is image  # nothing painted
        assert BLACK_BOXES not in painted  # the reference path carries nothing new
        selected += bool(expected)
    assert 10 < selected < 30


def test_recording_needs_the_original_image():
    recorder = TRANSFORMS.build(dict(type='RandomBlackBoxes', ratio=1.0, seed=0, paint=False))
    resized = dict(img=np.zeros((48, 48, 3), np.uint8), ref_id=1, ori_shape=(96, 96))
    with pytest.raises(ValueError, match='right after the image loading'):
        recorder.transform(resized)


def _train_loader(data_root, paint: bool, seed: int, num_workers: int):
    """The RRSIS-D training pipeline without its resize (boxes visible pixel for pixel),
    with the seed a run sets before building its loaders."""
    set_random_seed(seed)
    pipeline = [dict(type='LoadRefSegImage'),
                dict(type='RandomBlackBoxes', ratio=0.5, min_boxes=2, max_boxes=4, box_size=8,
                     paint=paint),
                dict(type='LoadRefSegAnnotations', imdecode_backend='pillow'),
                dict(type='DecoupleAndTokenize', tokenizer=demo_text_encoder(), max_length=22,
                     dataset='rrsisd'),
                dict(type='PackRefSegInputs')]
    return Runner.build_dataloader(
        dict(batch_size=1, num_workers=num_workers, persistent_workers=False,
             collate_fn=dict(type='refseg_collate'),
             sampler=dict(type='DefaultSampler', shuffle=True),
             dataset=dict(type='RefSegDataset', data_root=str(data_root),
                          ann_file='train.jsonl', pipeline=pipeline)), seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize('num_workers', [0, 1])
def test_loader_records_the_boxes_the_reference_path_paints(rrsisd_root, num_workers):
    """Through the data loader (mmengine's seeding, in the main process or a worker), two
    epochs: painting the recorded boxes gives the per-sample transform's images."""
    runs = {}
    for paint in (True, False):
        loader = _train_loader(rrsisd_root, paint, seed=11, num_workers=num_workers)
        runs[paint] = [batch for epoch in range(2) for batch in loader]
    boxed = 0
    for painted, recorded in zip(runs[True], runs[False], strict=True):
        sample = recorded['data_samples'][0]
        assert painted['data_samples'][0].ref_id == sample.ref_id
        image = recorded['inputs'][0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(painted['inputs'][0].permute(1, 2, 0).numpy(),
                                      _paint(image, sample.get(BLACK_BOXES).tolist()))
        boxed += len(sample.get(BLACK_BOXES)) > 0
    assert boxed >= 2


# ------------------------------------------------------------ boxes painted on the device
def _preprocessor(batch_augments=None):
    cfg = load_config(GPU_CONFIG).model.data_preprocessor
    return MODELS.build(dict(cfg, batch_augments=batch_augments))


def _sample(shape, boxes=None, ori_shape=None):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    sample = SegDataSample(metainfo=dict(ori_shape=ori_shape or shape, img_shape=shape))
    sample.gt_sem_seg = PixelData(data=torch.zeros((1, *shape), dtype=torch.long))
    sample.set_data({key: torch.ones(6, dtype=torch.long) for key in TEXT_KEYS})
    if boxes is not None:
        sample.set_data({BLACK_BOXES: torch.as_tensor(boxes, dtype=torch.long).view(-1, 4)})
    return sample


def test_device_boxes_at_the_original_size_are_the_per_sample_boxes_bit_for_bit():
    """Without a resize, painting on the device is the reference's painting exactly."""
    rng = np.random.default_rng(0)
    images = [rng.integers(1, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    boxes = [[[0, 0, 8, 8], [30, 50, 38, 58], [5, 20, 13, 28]], []]  # one clipped box, none
    per_sample = _preprocessor()(dict(
        inputs=[torch.from_numpy(_paint(img, b)).permute(2, 0, 1) for img, b in
                zip(images, boxes)],
        data_samples=[_sample((40, 56)) for _ in images]), training=True)
    device_cfg = load_config(GPU_CONFIG).model.data_preprocessor.batch_augments
    on_device = _preprocessor(device_cfg)(dict(
        inputs=[torch.from_numpy(img).permute(2, 0, 1) for img in images],
        data_samples=[_sample((40, 56), b) for b in boxes]), training=True)
    assert torch.equal(on_device['inputs'], per_sample['inputs'])
    assert (per_sample['inputs'][0, :, 0, 0] < -1.7).all()  # black, normalised
    evaluated = _preprocessor(device_cfg)(dict(  # no batch augments in evaluation
        inputs=[torch.from_numpy(img).permute(2, 0, 1) for img in images],
        data_samples=[_sample((40, 56), b) for b in boxes]), training=False)
    assert (evaluated['inputs'][0, :, 0, 0] > -1.7).any()


def _pillow_480(image: np.ndarray) -> np.ndarray:
    """Pillow's bilinear resize to 480x480 (antialiased when shrinking), as the pipeline's."""
    return np.asarray(Image.fromarray(image).resize((480, 480), Image.BILINEAR)).copy()


def _support_windows(out: int, scale: float) -> np.ndarray:
    """(out, 2) input-pixel span [first, last] that Pillow's bilinear filter of output pixel i
    reads when shrinking by ``scale`` (support = scale around the centre (i + 0.5) * scale)."""
    centre = (np.arange(out) + 0.5) * scale
    return np.stack([np.floor(centre - scale), np.ceil(centre + scale)], 1)


@pytest.mark.numerics
def test_device_boxes_after_the_resize_differ_from_the_reference_only_at_box_edges():
    """800 -> 480 as on RRSIS-D. Reference: boxes on the original, then Pillow's bilinear
    resize. Device: the resize, then the boxes blended by their coverage c of each pixel.
    Where the filter reads no box: identical. Where it reads only box: black. In between the
    difference is c (1 - c) (mean outside - mean inside the boxes over the filter), so at most
    c (1 - c) 255, plus Pillow's rounding of both images (two uint8 passes: up to 1 grey level
    each) and of c measured from a resized mask (0.5): 2.5 grey levels."""
    from fianet_mmseg.benchmarking.data_path import textured_image

    rgb = textured_image(800, seed=5)
    np.random.seed(1)
    boxes = _reference_draws(800, 800)
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # the loader's channel order
    reference = _preprocessor()(dict(
        inputs=[torch.from_numpy(_pillow_480(_paint(bgr, boxes))).permute(2, 0, 1)],
        data_samples=[_sample((480, 480))]), training=True)['inputs'][0]
    device_cfg = load_config(GPU_CONFIG).model.data_preprocessor.batch_augments
    device = _preprocessor(device_cfg)(dict(
        inputs=[torch.from_numpy(_pillow_480(bgr)).permute(2, 0, 1)],
        data_samples=[_sample((480, 480), boxes, ori_shape=(800, 800))]),
        training=True)['inputs'][0]
    grey = ((device - reference).abs() * torch.tensor(STD).view(3, 1, 1)).amax(0).numpy()

    windows = _support_windows(480, 800 / 480)
    reads_box = np.zeros((480, 480), bool)
    only_box = np.zeros((480, 480), bool)
    for top, left, bottom, right in boxes:
        rows = (windows[:, 1] >= top) & (windows[:, 0] < bottom)
        cols = (windows[:, 1] >= left) & (windows[:, 0] < right)
        reads_box |= rows[:, None] & cols[None, :]
        rows_in = (windows[:, 0] >= top) & (windows[:, 1] < bottom)
        cols_in = (windows[:, 0] >= left) & (windows[:, 1] < right)
        only_box |= rows_in[:, None] & cols_in[None, :]
    assert only_box.any() and (~reads_box).mean() > 0.8
    assert (grey[~reads_box] == 0).all()  # bit-identical out of the boxes' reach
    assert grey[only_box].max() < 1e-3  # black inside (float rounding of the blend only)
    mask = _paint(np.full((800, 800), 255, np.uint8), boxes) == 0
    coverage = _pillow_480((mask * 255).astype(np.uint8)) / 255
    bound = coverage * (1 - coverage) * 255 + 2.5
    assert (grey <= bound).all()
    assert grey.max() > 1  # the edges do differ: not the reference's computation


def test_comparison_tool_reports_identical_pixels_out_of_the_boxes_reach(capsys):
    """tools/analysis_tools/black_boxes_on_device.py (the configs' 20-60 boxes of 32x32
    pixels) on the fixture's 64x64 JPEGs shrunk to 40x40 and on a 96x96 textured image."""
    tool = load_script('tools/analysis_tools/black_boxes_on_device.py')
    images = FIXTURES / 'formats' / 'rrsisd' / 'images' / 'rrsisd' / 'JPEGImages'
    record = tool.main([str(images), '--limit', '3', '--textured', '1', '--image-size', '96',
                        '--size', '40', '40'])
    assert record['images'] == 4 and record['max_out_of_reach'] == 0
    assert 0 < record['in_reach'] < 1 and record['max'] > 0
    assert {'decode_ms', 'boxes_ms', 'resize_ms'} <= set(record)
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == record


# ------------------------------------------------------------ pinned batches
@pytest.fixture
def fake_pinning(monkeypatch):
    """torch without CUDA refuses to pin ("Cannot access accelerator device"): stand-in
    ``pin_memory`` / ``is_pinned`` that copy a tensor and remember the copy."""
    pinned = set()

    def pin_memory(tensor, *args, **kwargs):
        copy = tensor.clone()
        pinned.add(copy.data_ptr())
        return copy

    monkeypatch.setattr(torch.Tensor, 'pin_memory', pin_memory)
    monkeypatch.setattr(torch.Tensor, 'is_pinned',
                        lambda tensor, *args: tensor.data_ptr() in pinned)
    return pinned


def _tensors(data) -> list:
    """(where, tensor) of every tensor of a batch."""
    if isinstance(data, torch.Tensor):
        return [('', data)]
    if isinstance(data, (BaseDataElement, dict)):
        items = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return []
    return [(f'{key}.{where}', tensor) for key, value in items
            for where, tensor in _tensors(value)]


def _raw_batches(data_root, collate):
    """The first two batches (of 2) of the GPU config's training loader, no workers."""
    loader = offline_dataloader_cfg(load_config(GPU_CONFIG).train_dataloader, data_root,
                                    black_boxes=dict(ratio=1.0, seed=0))
    loader.update(collate_fn=collate)
    set_random_seed(0)
    batches = iter(Runner.build_dataloader(loader, seed=0))
    return [next(batches), next(batches)]


def test_pseudo_collate_leaves_masks_and_text_unpinned(rrsisd_root, fake_pinning):
    """What the configs had: torch's pin-memory step (the one a DataLoader(pin_memory=True)
    runs) pins the images but walks past mmengine's data samples."""
    from torch.utils.data._utils.pin_memory import pin_memory

    batch = pin_memory(_raw_batches(rrsisd_root, dict(type='pseudo_collate'))[0])
    assert all(image.is_pinned() for image in batch['inputs'])
    sample = batch['data_samples'][0]
    assert not sample.gt_sem_seg.data.is_pinned() and not sample.input_ids.is_pinned()


def test_refseg_collate_pins_every_tensor_and_changes_none(rrsisd_root, fake_pinning):
    from torch.utils.data._utils.pin_memory import pin_memory

    batch = _raw_batches(rrsisd_root, dict(type='refseg_collate'))[0]
    pinned = pin_memory(batch)
    before, after = _tensors(batch), _tensors(pinned)
    wheres = [where for where, _ in after]
    assert [where for where, _ in before] == wheres
    for index in (0, 1):
        for field in ('gt_sem_seg.data', 'input_ids', 'position_mask', BLACK_BOXES):
            assert f'data_samples.{index}.{field}.' in wheres
    assert {where.split('.')[1] for where in wheres if where.startswith('text.')} == \
        set(TEXT_KEYS)
    for (where, old), (_, new) in zip(before, after):
        assert new.is_pinned(), where
        assert torch.equal(old, new) and old.dtype == new.dtype, where
    for old, new in zip(batch['data_samples'], pinned['data_samples']):
        assert old.metainfo == new.metainfo


@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
def test_refseg_collate_gives_the_model_the_same_tensors(rrsisd_root, training):
    preprocessor = _preprocessor()
    plain = preprocessor(_raw_batches(rrsisd_root, dict(type='pseudo_collate'))[1], training)
    ours = preprocessor(_raw_batches(rrsisd_root, dict(type='refseg_collate'))[1], training)
    assert torch.equal(plain['inputs'], ours['inputs'])
    assert plain['text'].keys() == ours['text'].keys() == set(TEXT_KEYS)
    for key in TEXT_KEYS:
        assert torch.equal(plain['text'][key], ours['text'][key])
    for mine, theirs in zip(ours['data_samples'], plain['data_samples'], strict=True):
        assert torch.equal(mine.gt_sem_seg.data, theirs.gt_sem_seg.data)
        assert mine.metainfo.keys() == theirs.metainfo.keys()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='pinning needs CUDA')
def test_a_pinning_loader_pins_the_samples_on_cuda(rrsisd_root):
    loader = load_config(GPU_CONFIG).train_dataloader.copy()
    loader.update(batch_size=2, num_workers=1, persistent_workers=False, pin_memory=True)
    loader.dataset.data_root = str(rrsisd_root)
    for step in loader.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step['tokenizer'] = demo_text_encoder()
    batch = next(iter(Runner.build_dataloader(loader, seed=0)))
    assert all(tensor.is_pinned() for _, tensor in _tensors(batch))


# ------------------------------------------------------------ the prefetching loop
class _CountingLoader:
    """Batches 0..n-1; remembers how many were taken."""

    def __init__(self, n: int) -> None:
        self.n, self.taken = n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for index in range(self.n):
            self.taken = index + 1
            yield {'inputs': [torch.full((2,), index)]}


@pytest.mark.parametrize('n', [0, 1, 5])
def test_prefetcher_hands_out_every_batch_in_order_one_ahead(n):
    loader = _CountingLoader(n)
    cast_calls = []
    prefetcher = DevicePrefetcher(loader, lambda b: cast_calls.append(b) or b, 'cpu')
    seen = []
    for batch in prefetcher:
        index = int(batch['inputs'][0][0])
        assert loader.taken == min(index + 2, n)  # the next batch is already taken and cast
        assert len(cast_calls) == loader.taken
        seen.append(index)
    assert seen == list(range(n)) and len(prefetcher) == n
    assert [seen for _ in range(2)] == [[int(b['inputs'][0][0]) for b in prefetcher]
                                        for _ in range(2)]  # a fresh pass per epoch


def test_prefetcher_on_cuda_copies_on_a_side_stream_and_waits_per_batch(monkeypatch):
    """The CUDA branch with stand-in streams and events: each batch is cast inside the side
    stream, an event is recorded after its cast, and the current stream waits on exactly
    that event before the batch is handed out, while the next batch's cast is already
    issued."""
    log = []

    class Stream:
        def __init__(self, device=None):
            self.name = 'side'

        def wait_event(self, event):
            log.append(('wait', event.batch))

    class Event:
        def record(self, stream):
            self.batch = log[-1][1]
            log.append(('record', self.batch, stream.name))

    class StreamContext:
        def __init__(self, stream):
            pass

        def __enter__(self):
            log.append(('enter',))

        def __exit__(self, *exc):
            log.append(('exit',))

    current = Stream()
    current.name = 'current'
    monkeypatch.setattr(torch.cuda, 'Stream', Stream)
    monkeypatch.setattr(torch.cuda, 'Event', Event)
    monkeypatch.setattr(torch.cuda, 'stream', StreamContext)
    monkeypatch.setattr(torch.cuda, 'current_stream', lambda device=None: current)

    def cast(batch):
        log.append(('cast', int(batch['inputs'][0][0])))
        return batch

    for batch in DevicePrefetcher(_CountingLoader(3), cast, 'cuda'):
        log.append(('step', int(batch['inputs'][0][0])))
    expected = []
    for index in range(3):
        expected += [('enter',), ('cast', index), ('record', index, 'side'), ('exit',)]
        if index:
            expected += [('wait', index - 1), ('step', index - 1)]
    expected += [('wait', 2), ('step', 2)]
    assert log == expected


class _Record(Hook):
    """Losses and the references of each training step."""

    def __init__(self) -> None:
        self.losses, self.refs = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({key: value.item() for key, value in outputs.items()})
        self.refs.append([sample.ref_id for sample in data_batch['data_samples']])


def _tiny_runner(data_root, work_dir, prefetch: bool, epochs: int = 2, drop_path: float = 0.0,
                 box_ratio: float = 0.5, resume_from=None) -> tuple:
    """The tiny model trained by mmengine's runner: the reference config's loop and collate,
    or the GPU config's (prefetching loop, refseg_collate); the same per-sample boxes."""
    cfg = load_config(REFERENCE_CONFIG, dict(tiny_model_overrides(), **{
        'model.backbone.drop_path_rate': drop_path}))
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
                  drop_last=True)  # 5 samples: 2 full batches per epoch
    loader.dataset.data_root = str(data_root)
    for step in loader.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step['tokenizer'] = demo_text_encoder()
        if step['type'] == 'RandomBlackBoxes':
            step['ratio'] = box_ratio
        if step['type'] == 'Resize':
            step['scale'] = (96, 96)
    if prefetch:
        loader.collate_fn = dict(type='refseg_collate')
        cfg.train_cfg.type = 'PrefetchingEpochBasedTrainLoop'
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler[0]['end'] = epochs
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.update(save_best=None, interval=1, max_keep_ckpts=3)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{work_dir.name}_{prefetch}_{resume_from is not None}'
    if resume_from is not None:
        cfg.resume, cfg.load_from = True, str(resume_from)
    runner = Runner.from_cfg(cfg)
    record = _Record()
    runner.register_hook(record)
    runner.train()
    return record, runner.model.state_dict()


@pytest.mark.slow
def test_prefetching_loop_trains_bit_identically(rrsisd_root, tmp_path):
    """Same batches in the same order, same losses and weights, with drop path drawing from
    torch's generator and black boxes from numpy's while the next batch loads early."""
    plain, plain_weights = _tiny_runner(rrsisd_root, tmp_path / 'plain', False, drop_path=0.3)
    ours, our_weights = _tiny_runner(rrsisd_root, tmp_path / 'ours', True, drop_path=0.3)
    assert len(plain.refs) == 4  # 2 epochs x floor(5 / 2): drop_last kept
    assert ours.refs == plain.refs
    assert ours.losses == plain.losses
    assert plain.refs[:2] != plain.refs[2:]  # the sampler reshuffles per epoch
    for key, value in plain_weights.items():
        assert torch.equal(value, our_weights[key]), key


@pytest.mark.slow
def test_prefetching_loop_resumes_to_the_same_weights(rrsisd_root, tmp_path):
    """Two epochs at once, and the second again from the first epoch's checkpoint."""
    whole, weights = _tiny_runner(rrsisd_root, tmp_path / 'whole', True, box_ratio=0.0)
    resumed, resumed_weights = _tiny_runner(
        rrsisd_root, tmp_path / 'resumed', True, box_ratio=0.0,
        resume_from=tmp_path / 'whole' / 'epoch_1.pth')
    assert len(whole.refs) == 4
    assert resumed.refs == whole.refs[2:] and resumed.losses == whole.losses[2:]
    for key, value in weights.items():
        assert torch.equal(value, resumed_weights[key]), key


# ------------------------------------------------------------ configs and the GPU check
def test_gpu_config_holds_the_path_and_the_reference_config_keeps_its_boxes():
    gpu, reference = load_config(GPU_CONFIG), load_config(REFERENCE_CONFIG)
    assert gpu.train_cfg.type == 'PrefetchingEpochBasedTrainLoop'
    for split in ('train', 'val', 'test'):
        assert gpu[f'{split}_dataloader'].collate_fn == dict(type='refseg_collate')
        assert gpu[f'{split}_dataloader'].pin_memory is True
        assert 'collate_fn' not in reference[f'{split}_dataloader']
    boxes = [step for step in gpu.train_dataloader.dataset.pipeline
             if step['type'] == 'RandomBlackBoxes']
    assert len(boxes) == 1 and boxes[0]['paint'] is False
    assert [dict(step, paint=True) if step['type'] == 'RandomBlackBoxes' else step
            for step in gpu.train_dataloader.dataset.pipeline] == \
        [dict(step, paint=True) if step['type'] == 'RandomBlackBoxes' else step
         for step in reference.train_dataloader.dataset.pipeline]
    augments = gpu.model.data_preprocessor.batch_augments
    assert [a['type'] for a in augments] == ['BatchBlackBoxes']
    assert augments[0]['mean'] == reference.model.data_preprocessor.mean
    assert augments[0]['std'] == reference.model.data_preprocessor.std
    assert 'batch_augments' not in reference.model.data_preprocessor
    assert all(step.get('paint', True) for step in reference.train_dataloader.dataset.pipeline)


@pytest.mark.slow
def test_gpu_check_script_runs_in_its_cpu_dry_mode(tmp_path):
    """tools/analysis_tools/gpu_check.sh end to end (no install; the tiny model instead of
    Swin-B): data drawn and converted, both configs trained, the summary printed."""
    options = as_cli_options(tiny_model_overrides()) + [
        'train_dataloader.dataset.pipeline.3.scale=(64,64)']
    demo_text_encoder()
    out = subprocess.run(
        ['bash', str(REPO / 'tools/analysis_tools/gpu_check.sh'), '--device', 'cpu',
         '--iters', '1', '--warmup', '1', '--batch-size', '2', '--num-workers', '0',
         '--image-size', '96', '--skip-install', '--work-dir', str(tmp_path),
         '--cfg-options', *options],
        capture_output=True, text=True, timeout=900, cwd=REPO,
        env={**os.environ, 'PYTHON': sys.executable})
    assert out.returncode == 0, out.stdout + out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{')]
    assert [r['train_loop'] for r in records] == ['EpochBasedTrainLoop',
                                                  'PrefetchingEpochBasedTrainLoop']
    for record in records:
        assert record['device'] == 'cpu' and record['iters'] == 1
        assert record['samples_per_s'] > 0 and 0 <= record['data_wait_share'] < 1
    assert 'GPU data path / reference-exact path:' in out.stdout
