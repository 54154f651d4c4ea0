"""Reading a checkpoint: the stored text encoder architecture, strict and clear key checks."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Tuple

import torch
from mmengine.config import ConfigDict
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from .safe_globals import register_checkpoint_safe_globals

#: Where :class:`~fianet_mmseg.models.BertTextEncoder` keeps its architecture
#: (see :func:`encode_architecture`).
TEXT_ENCODER_STATE = 'text_encoder._extra_state'
#: Prefix of the text encoder's BERT weights in a FIANet state dict.
TEXT_WEIGHTS = 'text_encoder.bert.'
# Keys of the reference implementation's checkpoints (docs/reference.md section 3).
_REFERENCE_LAYOUT = re.compile(r'^(module\.)?(classifier\.|backbone\.layers\.\d+\.)')
CONVERTER = 'python tools/model_converters/fianet_official_to_mmseg.py IN.pth OUT.pth'


def encode_architecture(bert_config: Any) -> Tensor:
    """What :meth:`BertTextEncoder.get_extra_state` stores for a BERT architecture.

    Args:
        bert_config (transformers.BertConfig | dict): The architecture, or
            ``BertConfig`` arguments.

    Returns:
        Tensor: (N,) uint8, the UTF-8 JSON ``{"bert_config": BertConfig.to_dict()}``.
    """
    if isinstance(bert_config, dict):
        from transformers import BertConfig

        bert_config = BertConfig(**bert_config)
    text = json.dumps({'bert_config': bert_config.to_dict()}, sort_keys=True)
    return torch.tensor(list(text.encode('utf-8')), dtype=torch.uint8)


def decode_architecture(state: Any) -> dict:
    """The dict stored by :meth:`BertTextEncoder.get_extra_state` ({} if unreadable)."""
    if isinstance(state, Tensor) and state.dtype == torch.uint8 and state.dim() == 1:
        try:
            decoded = json.loads(bytes(state.tolist()).decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


def read_checkpoint(path: str) -> Tuple[Dict[str, Any], dict]:
    """``(state_dict, meta)`` of a checkpoint file (mmengine / torch layout), on the CPU.

    Raises:
        ValueError: The file is not a readable checkpoint (the message names it).
    """
    from mmengine.runner import CheckpointLoader  # loads the runner: only when reading

    register_checkpoint_safe_globals()
    try:
        checkpoint = CheckpointLoader.load_checkpoint(str(path), map_location='cpu',
                                                      logger=None)
    except Exception as err:  # truncated files, pickles of other things, ...
        raise ValueError(f'cannot read checkpoint {path}: {type(err).__name__}: {err}') from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: not a checkpoint (a {type(checkpoint).__name__}, expected '
                         'a dict with "state_dict")')
    # mmengine writes 'state_dict'; the reference code's files hold 'model'
    state = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    return state, checkpoint.get('meta') or {}


def use_stored_text_encoder(model_cfg: ConfigDict, state: Dict[str, Any]) -> bool:
    """Build the text encoder from the architecture a checkpoint stores, offline.

    When the checkpoint holds the encoder's architecture
    (``text_encoder._extra_state``) and its weights, the encoder is built
    from that architecture with random weights (``name_or_path=None``); the
    checkpoint's weights then replace them, and nothing is downloaded.

    Returns:
        bool: Whether ``model_cfg`` was changed.
    """
    stored = decode_architecture(state.get(TEXT_ENCODER_STATE))
    encoder_cfg = model_cfg.get('text_encoder')
    if 'bert_config' not in stored or encoder_cfg is None:
        return False
    if not any(key.startswith(TEXT_WEIGHTS) for key in state):
        return False
    encoder_cfg.name_or_path = None
    encoder_cfg.bert_config = dict(stored['bert_config'])
    return True


def read_checkpoint_for_model(path: str, model_cfg: ConfigDict) -> Tuple[Dict[str, Any], dict]:
    """Read a checkpoint and fit ``model_cfg`` to it, before the model is built.

    What :func:`~fianet_mmseg.apis.init_model` and ``tools/test.py`` do with a
    checkpoint: :func:`read_checkpoint`, then :func:`use_stored_text_encoder`
    (the text encoder from the architecture the checkpoint stores, nothing
    downloaded; the config's ``name_or_path`` only when the checkpoint has
    none). Load the weights into the built model with :func:`load_weights`.

    Returns:
        tuple: ``(state_dict, meta)``.

    Raises:
        ValueError: The file is not a readable checkpoint (the message names it).
    """
    state, meta = read_checkpoint(path)
    use_stored_text_encoder(model_cfg, state)
    return state, meta


def check_weights(model: nn.Module, state: Dict[str, Any], path: str) -> None:
    """Check that ``state`` holds every weight of ``model``, each of its shape, and no other.

    Only checks (nothing is loaded). The text encoder's stored architecture
    (:data:`TEXT_ENCODER_STATE`) may be absent. ``model`` may be wrapped
    (DDP): its ``module`` is checked.

    Raises:
        ValueError: A checkpoint of the reference implementation (the message
            gives the converter command), or of another architecture (it names
            missing, unexpected or differently shaped tensors).
    """
    model = model.module if is_model_wrapper(model) else model
    own = model.state_dict()
    if any(_REFERENCE_LAYOUT.match(key) for key in state) and \
            not any(key.startswith('decode_head.') for key in state):
        raise ValueError(f'{path} is a checkpoint of the reference FIANet code (keys '
                         f'classifier.*, backbone.layers.*): convert it first with `{CONVERTER}`')
    mismatched = [f'{k} {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in state.items()
                  if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state and k != TEXT_ENCODER_STATE]
    unexpected = [k for k in state if k not in own]
    problems = []
    for name, keys in (('differently shaped', mismatched), ('missing', missing),
                       ('unexpected', unexpected)):
        if keys:
            problems.append(f'{len(keys)} {name} (e.g. {keys[:3]})')
    if problems:
        raise ValueError(f'{path} does not fit the model of this config: '
                         + '; '.join(problems) + '. Is it a checkpoint of another config?')


def load_weights(model: nn.Module, state: Dict[str, Any], path: str) -> None:
    """Load every weight of ``model`` (or of the module it wraps) from ``state``.

    Any gap is an error naming keys, raised before anything is loaded.

    Raises:
        ValueError: See :func:`check_weights`.
    """
    check_weights(model, state, path)
    model = model.module if is_model_wrapper(model) else model
    model.load_state_dict(state, strict=False)
