"""Export FIANet's tensor forward to ONNX and check it with onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \\
        [--shape H W] [--length L] [--opset N] [--atol 1e-3] [--cfg-options ...]

The graph (``FIANet.forward_tensors``: ``img`` (B, 3, H, W) normalised float32 and
the four (B, L) int64 text tensors in, ``logits`` (B, 2, H, W) out; the batch axis
dynamic, H, W and L fixed, by default from the config's test pipeline), the
exporter and the check are described in :mod:`fianet_mmseg.apis.onnx_export`.
onnxruntime and PyTorch run random inputs at batch sizes 1 and 3; OUT.onnx is
written only when the largest absolute logit difference is <= ``--atol``, else
the exit status is 1 (``--keep-failed`` keeps the rejected model as
``OUT.failed.onnx``). ``--opset``: the exporter cannot write opsets below 18, so
the tool prints the opset actually written.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

from mmengine.config import DictAction

from fianet_mmseg.apis import init_model
from fianet_mmseg.apis.onnx_export import export_and_check


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('out', help='ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the test pipeline's Resize scale)")
    parser.add_argument('--length', type=int,
                        help='token length L (default: DecoupleAndTokenize max_length)')
    parser.add_argument('--opset', type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument('--atol', type=float, default=1e-3,
                        help='largest accepted |onnxruntime - PyTorch| logit difference')
    parser.add_argument('--keep-failed', action='store_true',
                        help='keep a model that fails the check as <OUT stem>.failed.onnx')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[int, float]:
    """Export, check, commit; exits with status 1 when the check fails."""
    args = parse_args(argv)
    if not args.out.endswith('.onnx'):
        raise ValueError(f'OUT must end with .onnx, got {args.out}')
    model = init_model(args.config, args.checkpoint, device='cpu', cfg_options=args.cfg_options)
    result = export_and_check(model, args.out, args.shape, args.length, args.opset, args.atol,
                              args.keep_failed)
    differences = result['differences']
    report = ', '.join(f'batch {b}: {d:.3g}' for b, d in differences.items())
    print(f'input {result["height"]}x{result["width"]}, L={result["length"]}, export '
          f'{result["seconds"]:.1f} s; max |onnxruntime - PyTorch| logits: {report} '
          f'(atol {args.atol:g})')
    if not result['passed']:
        kept = ' (kept as ' + osp.splitext(args.out)[0] + '.failed.onnx)' \
            if args.keep_failed else ''
        print(f'FAILED: difference above {args.atol:g}; {args.out} not written{kept}',
              file=sys.stderr)
        sys.exit(1)
    opset = result['opset']
    print(f'exported {args.out} (opset {opset})')
    if args.opset is not None and opset != args.opset:
        print(f'note: opset {args.opset} was asked for; the exporter wrote opset {opset}',
              file=sys.stderr)
    return differences


if __name__ == '__main__':
    main()
