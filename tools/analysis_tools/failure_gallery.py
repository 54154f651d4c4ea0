"""Overlays of the K worst expressions of a test run: prediction | ground truth.

    python tools/analysis_tools/failure_gallery.py RESULTS.jsonl CONFIG CHECKPOINT \
        --out-dir DIR [--k 10] [--ann-file ANN.jsonl] [--device cpu] [--cfg-options ...]

RESULTS.jsonl is the per-sample file of ``tools/test.py --out``. The K lines
with the lowest IoU (ties: file order) are run through the model again with
their expression; the ground truth comes from the annotation JSONL of the
config's test set (or ``--ann-file``), found by the line's ``(ref_id,
sent_id)``. Written to DIR: ``<rank>_iou<IoU>_ref<ref_id>_sent<sent_id>.png``
(prediction red, ground truth green, the expression below with its phrases
marked) and ``index.csv`` listing them (:mod:`fianet_mmseg.apis.failure_gallery`).
"""
from __future__ import annotations

import argparse
from typing import List, Optional, Sequence

from mmengine.config import DictAction

from fianet_mmseg.apis.failure_gallery import make_gallery


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', help='per-sample JSONL of tools/test.py --out')
    parser.add_argument('config', help='config of the run')
    parser.add_argument('checkpoint', help='checkpoint of the run')
    parser.add_argument('--out-dir', required=True, help='folder for the overlays')
    parser.add_argument('--k', type=int, default=10, help='number of worst expressions')
    parser.add_argument('--ann-file', help="annotation JSONL with the ground truth (default: "
                        "the config's test set)")
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--batch-size', type=int, default=8, help='pairs per forward pass')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    written = make_gallery(args.results, args.config, args.checkpoint, args.out_dir, args.k,
                           args.ann_file, args.device, args.cfg_options, args.batch_size)
    print(f'{len(written)} overlays written to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
