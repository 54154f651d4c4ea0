"""The built-in demo (`make demo`): train and test a tiny FIANet on synthetic data.

Steps: generate the synthetic referring data set in the RRSIS-D release layout
(if missing), convert it with the real RRSIS-D converter, train
``configs/fianet_tiny_synthetic.py``, test it on the synthetic test split, run
the grounding control (the same test with expressions shuffled among the
samples), write a few prediction overlays, and print the metrics. The last line
reads ``demo: oIoU=<x> shuffled_oIoU=<y>`` (percent).

    python tools/run_demo.py [--work-dir work_dirs/demo] [--epochs N]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import time
from typing import Optional

import mmcv
from mmengine.config import Config
from mmengine.runner import Runner

import fianet_mmseg  # noqa: F401  (mmcv-lite stand-ins, registration)
from fianet_mmseg.apis import inference_model, init_model
from fianet_mmseg.datasets import RefSegDataset
from fianet_mmseg.datasets.converters import convert_rrsisd
from fianet_mmseg.datasets.synthetic import META_FILE as SYNTHETIC_META_FILE
from fianet_mmseg.datasets.synthetic import generate_synthetic_rrsisd
from fianet_mmseg.visualization import render_comparison

REPORTED = ('P@0.5', 'P@0.7', 'P@0.9', 'oIoU', 'mIoU')
#: Written into the converted data root: the generator options it came from.
DEMO_STAMP = 'demo_synthetic_options.json'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='FIANet CPU demo on synthetic data')
    parser.add_argument('--config', default='configs/fianet_tiny_synthetic.py')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--raw-root', default='data/synthetic_raw',
                        help='where the synthetic release-layout data is generated')
    parser.add_argument('--data-root', default='data/synthetic',
                        help='where the converted annotations and masks go')
    parser.add_argument('--epochs', type=int, help='override the number of epochs')
    parser.add_argument('--overlays', type=int, default=6, help='overlays to write')
    return parser.parse_args()


def prepare_data(options: dict, raw_root: str, data_root: str) -> None:
    """Generate and convert the synthetic data set unless it is there as ``options`` say.

    ``options`` (the config's ``synthetic_data``) are
    :func:`generate_synthetic_rrsisd` arguments. A data set the demo generated
    earlier with other options is regenerated (the generator refuses to
    replace anything that it did not write); ``data_root`` records which
    options its conversion came from.
    """
    meta = _read_json(osp.join(raw_root, SYNTHETIC_META_FILE))
    generate = meta is None or any(meta.get(k) != v for k, v in options.items())
    if generate:
        print(f'demo: generating the synthetic data set in {raw_root} ({options})')
        generate_synthetic_rrsisd(raw_root, overwrite=meta is not None, **options)
    stamp = osp.join(data_root, DEMO_STAMP)
    if not generate and _read_json(stamp) == options:
        print(f'demo: using the converted synthetic data in {data_root}')
        return
    print(f'demo: converting {raw_root} with the RRSIS-D converter into {data_root}')
    summary = convert_rrsisd(raw_root, data_root, overwrite=True)
    print(summary.format())
    with open(stamp, 'w') as f:
        json.dump(options, f)


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def test_config(cfg: Config, checkpoint: str, work_dir: str, shuffle: bool) -> Config:
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.test_dataloader.dataset.shuffle_expressions = shuffle
    return cfg


def main() -> None:
    args = parse_args()
    start = time.time()
    cfg = Config.fromfile(args.config)
    prepare_data(dict(cfg.get('synthetic_data', {})), args.raw_root, args.data_root)
    cfg.work_dir = args.work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = args.data_root
    if args.epochs:
        cfg.train_cfg.max_epochs = args.epochs
        cfg.train_cfg.val_interval = args.epochs
        cfg.default_hooks.checkpoint.interval = args.epochs
        for scheduler in cfg.param_scheduler:
            if scheduler.get('by_epoch', True):
                scheduler['end'] = args.epochs

    runner = Runner.from_cfg(cfg)
    runner.train()
    checkpoint = osp.join(args.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    trained = time.time()

    metrics = Runner.from_cfg(
        test_config(cfg, checkpoint, osp.join(args.work_dir, 'test'), False)).test()
    shuffled = Runner.from_cfg(
        test_config(cfg, checkpoint, osp.join(args.work_dir, 'test_shuffled'), True)).test()
    overlay_dir = write_overlays(cfg, checkpoint, args)

    total = round(time.time() - start)
    print(f'\ndemo: synthetic test split, {round(trained - start)} s training, {total} s in all')
    print('  {:<22}'.format('') + ''.join(f'{k:>8}' for k in REPORTED))
    for name, values in (('expressions', metrics), ('shuffled expressions', shuffled)):
        print(f'  {name:<22}' + ''.join(f'{values[k]:8.2f}' for k in REPORTED))
    print(f'  checkpoint: {checkpoint}')
    print(f'  overlays (prediction | ground truth): {overlay_dir}')
    print(f"demo: oIoU={metrics['oIoU']:.2f} shuffled_oIoU={shuffled['oIoU']:.2f}")


def write_overlays(cfg: Config, checkpoint: str, args: argparse.Namespace) -> str:
    """Prediction | ground-truth overlays for the first test expressions."""
    test_set = RefSegDataset(ann_file=osp.join(args.data_root, 'test.jsonl'))
    records = [test_set.get_data_info(i) for i in range(min(args.overlays, len(test_set)))]
    model = init_model(cfg, checkpoint, device='cpu')
    results = inference_model(model, [r['img_path'] for r in records],
                              [r['expression'] for r in records])
    out_dir = osp.join(args.work_dir, 'overlays')
    os.makedirs(out_dir, exist_ok=True)
    for index, (record, result) in enumerate(zip(records, results)):
        image = mmcv.imread(record['img_path'])
        gt = mmcv.imread(record['seg_map_path'], flag='unchanged')
        canvas = render_comparison(
            mmcv.bgr2rgb(image), result.pred_sem_seg.data[0].cpu().numpy(), gt,
            record['expression'], result.object_phrase, result.spatial_phrases)
        mmcv.imwrite(mmcv.rgb2bgr(canvas), osp.join(out_dir, f'{index:02d}.png'))
    return out_dir


if __name__ == '__main__':
    main()
