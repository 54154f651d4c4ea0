"""The built-in demo (`make demo`): train and test a tiny FIANet on synthetic data.

Generates the synthetic data set in the RRSIS-D release layout (if missing),
converts it with the RRSIS-D converter, trains ``configs/fianet_tiny_synthetic.py``,
tests it (also with the expressions shuffled among the samples: the grounding
control), writes a few prediction overlays and prints the metrics; the last line
reads ``demo: oIoU=<x> shuffled_oIoU=<y>`` (percent). After the first training
iterations it prints the projected run time (``--estimate``: only that, then exit).
See :mod:`fianet_mmseg.apis.synthetic_demo`.

    python tools/run_demo.py [--work-dir work_dirs/demo] [--epochs N] [--estimate]
"""
from __future__ import annotations

import argparse

from fianet_mmseg.apis.synthetic_demo import run_synthetic_demo


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
    parser.add_argument('--estimate', action='store_true',
                        help='measure the first training iterations, print the projected '
                        'run time and stop')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    run_synthetic_demo(args.config, args.work_dir, args.raw_root, args.data_root,
                       epochs=args.epochs, overlays=args.overlays, estimate=args.estimate)


if __name__ == '__main__':
    main()
