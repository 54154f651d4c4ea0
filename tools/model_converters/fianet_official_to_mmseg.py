"""Convert a reference FIANet checkpoint to this project's layout.

    python tools/model_converters/fianet_official_to_mmseg.py SRC DST
        [--config CONFIG [--cfg-options key=value ...]]

SRC is a checkpoint of the reference implementation (a dict whose ``model``
entry is its state dict); DST is written as ``{'state_dict': ..., 'meta': ...}``
like a checkpoint of this project: with the text encoder's architecture
(``text_encoder._extra_state``), so it loads with ``strict=True`` and
``tools/test.py CONFIG DST`` / ``init_model`` build the encoder without a
download. The weights do not tell the architecture whole (the number of
attention heads is in no shape): it comes from the text encoder of
``--config`` (``name_or_path=None`` + ``bert_config``, a local directory, or
bert-base-uncased), by default the reference's bert-base-uncased. With
``--config`` the converted weights are also checked against the whole model of
that config (every tensor present, of its shape). ``meta`` names the source
file, its sha256 and the converter's version. Entries that are not weights of
the computation are listed (see
``fianet_mmseg.checkpoint.official_fianet_to_mmseg``). The conversion is
:func:`fianet_mmseg.checkpoint.official_checkpoint.convert_official_checkpoint`.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from fianet_mmseg.checkpoint import REFERENCE_TEXT_ENCODER
from fianet_mmseg.checkpoint.official_checkpoint import (
    ConversionError,
    NotAReferenceCheckpointError,
    convert_official_checkpoint,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='reference checkpoint (.pth with a "model" entry)')
    parser.add_argument('dst', help='output checkpoint for fianet_mmseg')
    parser.add_argument('--config', help='the project config the checkpoint is for: its text '
                        'encoder gives the architecture stored in DST, its model is checked '
                        f'against the weights (default: {REFERENCE_TEXT_ENCODER}\'s '
                        'architecture, no model check)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override entries of --config, e.g. model.neck.num_blocks=1')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        parser.error(f'{args.src}: no such file')
    if osp.abspath(args.src) == osp.abspath(args.dst):
        parser.error('DST must differ from SRC (the source checkpoint is never overwritten)')
    if args.cfg_options and not args.config:
        parser.error('--cfg-options needs --config')
    try:
        converted, dropped = convert_official_checkpoint(args.src, args.dst, args.config,
                                                         args.cfg_options)
    except NotAReferenceCheckpointError as err:
        parser.error(str(err))
    except ConversionError as err:
        print(err, file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: {len(converted)} entries')
    if dropped:
        print(f'left out {len(dropped)} entries that the reference never uses:')
        for key in dropped:
            print(f'  {key}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
