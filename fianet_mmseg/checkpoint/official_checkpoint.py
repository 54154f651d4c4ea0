"""A reference FIANet checkpoint file converted to this project's checkpoint file.

The work of ``tools/model_converters/fianet_official_to_mmseg.py``
(:func:`convert_official_checkpoint`): the source (a dict whose ``model`` entry is
the reference's state dict, read with ``weights_only=True``) is converted by
:func:`~.conversion.official_fianet_to_mmseg` and written atomically as
``{'state_dict': ..., 'meta': ...}`` with the text encoder's architecture
(``text_encoder._extra_state``), so it loads with ``strict=True`` and builds the
encoder without a download. The architecture comes from the text encoder of a
project config (``name_or_path=None`` + ``bert_config``, a local directory, or
bert-base-uncased), by default the reference's bert-base-uncased; with a config
the weights are also checked against its whole model (every tensor present, of
its shape). ``meta`` names the source file, its sha256 and the converter's version.
"""
from __future__ import annotations

import copy
import hashlib
import os.path as osp
from typing import List, Optional, Tuple

import torch

from ..utils.atomic_file import atomic_write
from ..version import __version__
from .conversion import REFERENCE_TEXT_ENCODER, official_fianet_to_mmseg, text_encoder_architecture
from .loading import check_weights, use_stored_text_encoder

#: The converter named in the ``meta`` of the checkpoints it writes.
CONVERTER_SCRIPT = 'tools/model_converters/fianet_official_to_mmseg.py'


class ConversionError(Exception):
    """A checkpoint that cannot be converted; the message names the file."""


class NotAReferenceCheckpointError(ConversionError):
    """The source is no dict with a ``model`` state dict (a usage error of the tool)."""



def sha256_of(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 16 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()


def load_config(path: str, options: Optional[dict]):
    """The project config (``--cfg-options`` checked and merged) with its registry scope."""
    from mmengine.registry import init_default_scope

    from ..utils.run_config import load_config as load_checked_config

    cfg = load_checked_config(path, options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


def check_against_config(cfg, converted: dict, src: str) -> None:
    """Build the config's model (text encoder from ``converted``) and check every weight."""
    from mmseg.registry import MODELS

    from .. import register_all_modules

    register_all_modules(init_default_scope=False)
    model_cfg = copy.deepcopy(cfg.model)  # (building reads no pretrained weights)
    use_stored_text_encoder(model_cfg, converted)
    check_weights(MODELS.build(model_cfg), converted, src)


def convert_official_checkpoint(src: str, dst: str, config: Optional[str] = None,
                                cfg_options: Optional[dict] = None
                                ) -> Tuple[dict, List[str]]:
    """Convert the reference checkpoint ``src`` and write it to ``dst``.

    Args:
        src: The reference checkpoint (``.pth`` with a ``model`` entry).
        dst: The checkpoint to write (``src`` is never overwritten).
        config: The project config the checkpoint is for (its text encoder's
            architecture is stored; its model is checked); None: bert-base-uncased.
        cfg_options: Overrides of ``config``.

    Returns:
        tuple: ``(converted state dict, keys left out)``.

    Raises:
        NotAReferenceCheckpointError: ``src`` holds no ``model`` state dict.
        ConversionError: An unreadable config or checkpoint, or weights that do not
            fit the architecture (nothing is written).
    """
    try:
        cfg = load_config(config, cfg_options) if config else None
        bert_config = text_encoder_architecture(cfg.model.get('text_encoder') if cfg else None)
    except (OSError, KeyError, ValueError) as err:
        raise ConversionError(f'{config}: {err}') from err
    # The reference checkpoints hold plain tensors; load them safely.
    try:
        ckpt = torch.load(src, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated files, pickles of other objects, ...
        raise ConversionError(f'{src}: cannot read checkpoint: {type(err).__name__}: {err}'
                              ) from err
    state = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise NotAReferenceCheckpointError(f'{src}: expected a dict with a "model" state dict')
    where = (f'checked against the text encoder of {config}' if cfg else
             f"checked against {REFERENCE_TEXT_ENCODER}'s architecture; give --config for "
             'another text encoder')
    try:
        converted, dropped = official_fianet_to_mmseg(state, bert_config=bert_config)
    except KeyError as err:
        raise ConversionError(f'{src}: {err.args[0]}') from err
    except ValueError as err:
        raise ConversionError(f'{src}: {err} ({where})') from err
    if cfg is not None:
        try:
            check_against_config(cfg, converted, src)
        except ValueError as err:  # names the file and the keys
            raise ConversionError(str(err)) from err
    meta = dict(converted_from=osp.basename(src), source_sha256=sha256_of(src),
                converter=CONVERTER_SCRIPT, converter_version=__version__,
                text_encoder_from=config or REFERENCE_TEXT_ENCODER)
    atomic_write(dst, lambda file: torch.save({'state_dict': converted, 'meta': meta}, file))
    return converted, dropped
