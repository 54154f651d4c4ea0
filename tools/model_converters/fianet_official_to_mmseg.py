"""Convert a reference FIANet checkpoint to this project's layout.

    python tools/model_converters/fianet_official_to_mmseg.py SRC DST

SRC is a checkpoint of the reference implementation (a dict whose ``model``
entry is its state dict); DST is written as ``{'state_dict': ..., 'meta': ...}``,
loadable with ``tools/test.py CONFIG DST`` or ``load_from``. Entries that are
not weights of the computation are listed (see
``fianet_mmseg.models.utils.official_fianet_to_mmseg``).
"""
import argparse
import os.path as osp
import sys

import torch

from fianet_mmseg.models.utils import official_fianet_to_mmseg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='reference checkpoint (.pth with a "model" entry)')
    parser.add_argument('dst', help='output checkpoint for fianet_mmseg')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        parser.error(f'{args.src}: no such file')
    if osp.abspath(args.src) == osp.abspath(args.dst):
        parser.error('DST must differ from SRC (the source checkpoint is never overwritten)')
    # The reference checkpoints hold plain tensors; load them safely.
    ckpt = torch.load(args.src, map_location='cpu', weights_only=True)
    state = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        parser.error(f'{args.src}: expected a dict with a "model" state dict')
    try:
        converted, dropped = official_fianet_to_mmseg(state)
    except KeyError as err:
        print(f'{args.src}: {err.args[0]}', file=sys.stderr)
        return 1
    torch.save({'state_dict': converted,
                'meta': {'converted_from': osp.basename(args.src)}}, args.dst)
    print(f'wrote {args.dst}: {len(converted)} tensors')
    if dropped:
        print(f'left out {len(dropped)} entries that the reference never uses:')
        for key in dropped:
            print(f'  {key}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
