"""Scene inference: peak memory against the scene's size, and the streamed path's overhead.

    python tools/analysis_tools/benchmark_scene.py CONFIG [--checkpoint CKPT] \\
        [--window 480] [--sizes 1024 4096 8192] [--overhead-size 2048] [--rounds 3] \\
        [--batch-size 4] [--work-dir /tmp/fianet_scene_bench] [--cfg-options KEY=VALUE ...]

Synthetic scenes (uint8 RGB GeoTIFFs in UTM 33N at 0.5 m, textured ground with
bright discs, written block by block) of each ``--sizes`` side:

* **Memory**: each scene goes through ``demo/rs_image_inference.py`` in its own
  process (its peak resident memory, next to the size of a uint8 RGB copy of
  the scene; the growth counted from the smallest scene);
* **Overhead**: the windows of a ``--overhead-size`` scene through the streamed
  path against a plain loop of ``inference_model`` calls on the same windows,
  alternating ``--rounds`` times.

The measurements are :func:`fianet_mmseg.benchmarking.scene.scene_benchmark`'s.
Without ``--checkpoint`` the config's model is saved with its initial weights
(random, the text encoder's pretrained) and used as the checkpoint. One JSON
line per measurement, then a summary line.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from typing import Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

from mmengine.config import DictAction  # noqa: E402

from fianet_mmseg.benchmarking.scene import scene_benchmark  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLI = osp.join(REPO, 'demo', 'rs_image_inference.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='default: the config\'s initial weights')
    parser.add_argument('--window', type=int, default=480,
                        help="the model's input side (sets the test pipeline's Resize)")
    parser.add_argument('--sizes', type=int, nargs='+', default=[1024, 4096, 8192])
    parser.add_argument('--overhead-size', type=int, default=2048)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--work-dir', default='/tmp/fianet_scene_bench')
    parser.add_argument('--only', choices=['memory', 'overhead'], help='one measurement')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    for record in scene_benchmark(CLI, args.config, args.checkpoint, args.window, args.sizes,
                                  args.overhead_size, args.rounds, args.batch_size,
                                  args.work_dir, args.only, args.cfg_options):
        print(json.dumps(record), flush=True)


if __name__ == '__main__':
    main()
