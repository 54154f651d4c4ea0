"""Converted data keeps working after it moved: only ``data_root`` changes.

The converters write paths relative to their output folder (source images reached with
``..``, or copied in with ``--copy-images``) and ``RefSegDataset`` resolves them against the
folder of the JSONL file. Each test converts a fixture release, copies the result to another
folder, deletes the original, and uses the copy.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mmcv
import numpy as np
import pytest
from conftest import FIXTURES, demo_text_encoder, load_config, tiny_model_overrides
from mmengine.runner import Runner

from fianet_mmseg.datasets import RefSegDataset
from fianet_mmseg.datasets.converters import convert_refsegrs, convert_rrsisd

CONVERTERS = {'rrsisd': convert_rrsisd, 'refsegrs': convert_refsegrs}
SPLITS = ('train', 'val', 'test')


def convert_and_move(tmp_path: Path, dataset: str, copy_images: bool) -> Path:
    """Convert ``dataset`` under ``tmp_path/first``, move it elsewhere; the new data_root.

    Without ``copy_images`` the release moves along, at the same place relative to the
    converted folder (a different depth from the old place, so no ``..`` path can still work
    by chance); with it only the converted folder moves.
    """
    first = tmp_path / 'first'
    source, out = first / 'releases' / dataset, first / 'converted' / dataset
    shutil.copytree(FIXTURES / 'formats' / dataset, source)
    CONVERTERS[dataset](source, out, copy_images=copy_images)
    moved = tmp_path / 'elsewhere' / 'deeper'
    if copy_images:
        shutil.copytree(out, moved / dataset)
        data_root = moved / dataset
    else:
        shutil.copytree(first, moved)
        data_root = moved / 'converted' / dataset
    shutil.rmtree(first)  # nothing may point at the old place any more
    return data_root


@pytest.mark.parametrize('copy_images', [False, True], ids=['with-release', 'copied-images'])
@pytest.mark.parametrize('dataset', sorted(CONVERTERS))
def test_moved_data_loads_every_sample(tmp_path, dataset, copy_images):
    data_root = convert_and_move(tmp_path, dataset, copy_images)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    for split in SPLITS:
        records = [json.loads(line)
                   for line in (data_root / f'{split}.jsonl').read_text().splitlines()]
        assert records and not any(Path(r['img_path']).is_absolute() for r in records)
        assert all(r['img_path'].startswith('images/' if copy_images else '../../releases/')
                   for r in records)
        data = RefSegDataset(ann_file=f'{split}.jsonl', data_root=str(data_root),
                             pipeline=pipeline)
        assert len(data) == len(records)
        for index, record in enumerate(records):
            sample = data[index]
            assert sample['img'].shape == (record['height'], record['width'], 3)
            mask = mmcv.imread(data_root / record['seg_map_path'], flag='unchanged')
            np.testing.assert_array_equal(sample['gt_seg_map'], mask)
            assert sample['expression'] == record['expression']


@pytest.mark.slow
def test_moved_data_trains_and_tests(tmp_path):
    """One training iteration and a test run of the tiny FIANet on moved RRSIS-D data."""
    data_root = convert_and_move(tmp_path, 'rrsisd', copy_images=False)
    cfg = load_config('fianet_swin-b_rrsisd.py', tiny_model_overrides())
    for name in ('train_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False)
        loader.dataset.data_root = str(data_root)  # the only change for the moved data
        for step in loader.dataset.pipeline:  # offline tokenizer, small inputs (speed)
            if step['type'] == 'DecoupleAndTokenize':
                step['tokenizer'] = demo_text_encoder()
            if step['type'] == 'Resize':
                step['scale'] = (96, 96)
    cfg.train_dataloader.dataset.indices = 2  # one batch of two: one iteration
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler[0].end = 1
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    metrics = runner.test()
    test_records = (data_root / 'test.jsonl').read_text().splitlines()
    assert len(runner.test_dataloader.dataset) == len(test_records) == 3
    for name in ('oIoU', 'mIoU', 'P@0.5'):
        assert 0.0 <= metrics[name] <= 100.0, name
