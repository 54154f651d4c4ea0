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
``fianet_mmseg.checkpoint.official_fianet_to_mmseg``).
"""
import argparse
import copy
import hashlib
import os
import os.path as osp
import sys
import tempfile
from typing import Optional

import torch

import fianet_mmseg
from fianet_mmseg.checkpoint import (
    REFERENCE_TEXT_ENCODER,
    official_fianet_to_mmseg,
    text_encoder_architecture,
)

CONVERTER = 'tools/model_converters/fianet_official_to_mmseg.py'


def sha256_of(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 16 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()


def load_config(path: str, options: Optional[dict]):
    """The project config (``--cfg-options`` checked and merged) with its registry scope."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from fianet_mmseg.utils.run_config import check_cfg_options

    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path} does not exist')
    cfg = Config.fromfile(path)
    if options:
        check_cfg_options(cfg, options)
        cfg.merge_from_dict(options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


def check_against_config(cfg, converted: dict, src: str) -> None:
    """Build the config's model (text encoder from ``converted``) and check every weight."""
    from mmseg.registry import MODELS

    from fianet_mmseg.checkpoint import check_weights, use_stored_text_encoder

    fianet_mmseg.register_all_modules(init_default_scope=False)
    model_cfg = copy.deepcopy(cfg.model)  # (building reads no pretrained weights)
    use_stored_text_encoder(model_cfg, converted)
    check_weights(MODELS.build(model_cfg), converted, src)


def save_atomically(checkpoint: dict, dst: str) -> None:
    """``torch.save`` to a temporary file beside ``dst``, then rename it into place."""
    folder = osp.dirname(osp.abspath(dst))
    handle, tmp = tempfile.mkstemp(prefix='.' + osp.basename(dst), suffix='.tmp', dir=folder)
    os.close(handle)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv=None) -> int:
    from mmengine.config import DictAction

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
        cfg = load_config(args.config, args.cfg_options) if args.config else None
        bert_config = text_encoder_architecture(cfg.model.get('text_encoder') if cfg else None)
    except (OSError, KeyError, ValueError) as err:
        print(f'{args.config}: {err}', file=sys.stderr)
        return 1
    # The reference checkpoints hold plain tensors; load them safely.
    try:
        ckpt = torch.load(args.src, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated files, pickles of other objects, ...
        print(f'{args.src}: cannot read checkpoint: {type(err).__name__}: {err}', file=sys.stderr)
        return 1
    state = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        parser.error(f'{args.src}: expected a dict with a "model" state dict')
    where = (f'checked against the text encoder of {args.config}' if cfg else
             f"checked against {REFERENCE_TEXT_ENCODER}'s architecture; give --config for "
             'another text encoder')
    try:
        converted, dropped = official_fianet_to_mmseg(state, bert_config=bert_config)
    except KeyError as err:
        print(f'{args.src}: {err.args[0]}', file=sys.stderr)
        return 1
    except ValueError as err:
        print(f'{args.src}: {err} ({where})', file=sys.stderr)
        return 1
    if cfg is not None:
        try:
            check_against_config(cfg, converted, args.src)
        except ValueError as err:  # names the file and the keys
            print(err, file=sys.stderr)
            return 1
    meta = dict(converted_from=osp.basename(args.src), source_sha256=sha256_of(args.src),
                converter=CONVERTER, converter_version=fianet_mmseg.__version__,
                text_encoder_from=args.config or REFERENCE_TEXT_ENCODER)
    save_atomically({'state_dict': converted, 'meta': meta}, args.dst)
    print(f'wrote {args.dst}: {len(converted)} entries')
    if dropped:
        print(f'left out {len(dropped)} entries that the reference never uses:')
        for key in dropped:
            print(f'  {key}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
