"""Per-category scores of a test run, from the file ``tools/test.py --out`` writes.

    python tools/analysis_tools/per_category.py RESULTS.jsonl [--sort miou|oiou|p|count|name]
        [--threshold 0.5] [--json SUMMARY.json]
        [--gallery-dir DIR --config CONFIG --checkpoint CKPT [--k 10] ...]

Prints, per category and for all samples: the number of expressions, mIoU
(mean of the per-sample IoUs), oIoU (sum of intersections / sum of unions)
and P@0.5 (share of samples with IoU >= 0.5), in percent, computed as
``RefSegMetric`` computes them (``U = 0`` counts as IoU 0); samples without a
category are listed as ``(none)``. Categories are sorted by mIoU, best first
(``--sort``); the totals come last (:mod:`fianet_mmseg.evaluation.sample_results`).

With ``--gallery-dir`` it also writes the failure gallery of the ``--k``
worst expressions (see ``tools/analysis_tools/failure_gallery.py``).
"""
from __future__ import annotations

import argparse
import json
from typing import Dict, Optional, Sequence

from mmengine.config import DictAction

from fianet_mmseg.evaluation.sample_results import (
    SORT_KEYS,
    format_table,
    per_category,
    read_results,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', help='per-sample JSONL of tools/test.py --out')
    parser.add_argument('--sort', choices=sorted(SORT_KEYS), default='miou',
                        help='category order (numbers: best first; default miou)')
    parser.add_argument('--threshold', type=float, default=0.5, help='IoU threshold of P@')
    parser.add_argument('--json', help='also write the numbers to this JSON file')
    gallery = parser.add_argument_group('failure gallery')
    gallery.add_argument('--gallery-dir', help='write overlays of the K worst expressions here')
    gallery.add_argument('--k', type=int, default=10, help='number of worst expressions')
    gallery.add_argument('--config', help='config of the run (for the model and the data)')
    gallery.add_argument('--checkpoint', help='checkpoint of the run')
    gallery.add_argument('--ann-file', help="annotation JSONL with the ground truth (default: "
                         "the config's test set)")
    gallery.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    gallery.add_argument('--cfg-options', nargs='+', action=DictAction,
                         help='override config entries')
    args = parser.parse_args(argv)
    if not 0 < args.threshold <= 1:
        parser.error(f'--threshold must be in (0, 1], got {args.threshold}')
    if args.gallery_dir and not (args.config and args.checkpoint):
        parser.error('--gallery-dir needs --config and --checkpoint')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    args = parse_args(argv)
    records = read_results(args.results)
    summaries = per_category(records, args.threshold, args.sort)
    print(f'{args.results}: {len(records)} expressions')
    print(format_table(summaries, args.threshold))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as file:
            json.dump(summaries, file, indent=2)
    if args.gallery_dir:
        from fianet_mmseg.apis.failure_gallery import make_gallery  # loads the model code

        written = make_gallery(args.results, args.config, args.checkpoint, args.gallery_dir,
                               k=args.k, ann_file=args.ann_file, device=args.device,
                               cfg_options=args.cfg_options)
        print(f'{len(written)} overlays of the worst expressions written to {args.gallery_dir}')
    return summaries


if __name__ == '__main__':
    main()
