"""Checkpoints: reading them safely, converting the reference's, loading them strictly.

* :mod:`.safe_globals`: what ``torch.load(weights_only=True)`` must accept to
  read the checkpoints mmengine writes;
* :mod:`.loading`: reading a checkpoint file, the text encoder architecture it
  stores, strict key checks and loading into a model;
* :mod:`.conversion`: the reference FIANet's and the official Swin release's
  keys to this project's (the Swin part by mmseg's own converter).
"""
from .conversion import (
    REFERENCE_TEXT_ENCODER,
    check_text_encoder,
    official_fianet_to_mmseg,
    official_swin_to_mmseg,
    text_encoder_architecture,
)
from .loading import (
    TEXT_ENCODER_STATE,
    check_weights,
    decode_architecture,
    encode_architecture,
    load_weights,
    read_checkpoint,
    read_checkpoint_for_model,
    use_stored_text_encoder,
)
from .safe_globals import register_checkpoint_safe_globals

__all__ = [
    'REFERENCE_TEXT_ENCODER', 'TEXT_ENCODER_STATE', 'check_text_encoder', 'check_weights',
    'decode_architecture', 'encode_architecture', 'load_weights', 'official_fianet_to_mmseg',
    'official_swin_to_mmseg', 'read_checkpoint', 'read_checkpoint_for_model',
    'register_checkpoint_safe_globals', 'text_encoder_architecture', 'use_stored_text_encoder'
]
