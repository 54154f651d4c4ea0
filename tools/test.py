"""Evaluate a FIANet checkpoint on the test split of a config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--per-sample FILE] [--show-dir DIR] [--precision fp32|bf16] [--onnx FILE]
        [--cfg-options key=value ...] [--launcher ...]

Prints P@0.5-0.9, oIoU and mIoU (RefSegMetric) and mmseg's IoU metrics.
The checkpoint is read once and checked before testing: an unreadable file, a
checkpoint of the reference code (convert it first) or of another architecture
is an error, not a test of a partly random model (mmengine's loading only warns).
As in ``init_model``, the text encoder is built from the architecture the
checkpoint stores (nothing downloaded; the config's ``name_or_path`` only for
checkpoints without it). The test pipeline's tokenizer is loaded before the
model is built: one that cannot be loaded (a hub name offline) is an error
giving the option that points it at a local directory
(:mod:`fianet_mmseg.apis.test_setup`).
``--out DIR`` writes the predicted masks like mmseg's ``tools/test.py --out``:
one PNG per test sample (expression), at the image's size, 0/1 values.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from fianet_mmseg.apis import (
    add_precision_argument,
    check_inference_options,
    set_inference_options,
)
from fianet_mmseg.apis.test_setup import (
    check_tokenizer_vocabulary,
    enable_visualization,
    load_pipeline_tokenizers,
    set_refseg_output,
)
from fianet_mmseg.checkpoint import load_weights, read_checkpoint_for_model
from fianet_mmseg.utils.run_config import build_runner, load_run_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a FIANet checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the evaluation log and metrics')
    parser.add_argument('--out', help='folder for the predicted masks: one PNG per test '
                        'expression, <sample index>_<image name>.png, original size, 0/1')
    parser.add_argument('--per-sample', help='JSONL file for per-expression results (I, U, '
                        'IoU, category, expression), e.g. for '
                        'tools/analysis_tools/per_category.py')
    parser.add_argument('--show', action='store_true', help='show overlays in a window')
    parser.add_argument('--show-dir', help='folder (relative to the work dir unless absolute) '
                        'for overlays of prediction and ground truth with the expression')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per shown image')
    add_precision_argument(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.batch_size=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed testing')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    check_inference_options(args.precision, args.onnx)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    # an unreadable file is named before any work; the text encoder as the checkpoint says
    state, _ = read_checkpoint_for_model(args.checkpoint, cfg.model)
    cfg.load_from = None  # the weights are loaded below, from the state read above
    check_tokenizer_vocabulary(load_pipeline_tokenizers(cfg, 'test_dataloader'), state)
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.out:
        set_refseg_output(cfg, '--out', output_dir=args.out)
    if args.per_sample:
        set_refseg_output(cfg, '--per-sample', output_file=args.per_sample)
    runner = build_runner(cfg)
    load_weights(runner.model, state, args.checkpoint)
    del state
    runner.model.eval()
    set_inference_options(runner.model, args.precision, args.onnx)
    runner.test()


if __name__ == '__main__':
    main()
