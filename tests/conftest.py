"""Shared test helpers: paths, model building from the project's configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import fianet_mmseg  # noqa: E402,F401  (stand-ins + registration before mmseg.models)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / 'fixtures'
CONFIGS = REPO / 'configs'
PARITY_FIXTURE = FIXTURES / 'official_parity_A.pt'

#: The small BERT of the parity fixture (FIANET_SPEC / fixtures README).
FIXTURE_BERT = dict(vocab_size=1000, hidden_size=768, num_hidden_layers=2,
                    num_attention_heads=12, intermediate_size=3072,
                    max_position_embeddings=64)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')
    torch.manual_seed(0)


def load_config(name: str, overrides: dict | None = None) -> Config:
    """Load ``configs/<name>`` and merge ``overrides`` (dotted keys)."""
    cfg = Config.fromfile(str(CONFIGS / name))
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def build_model(name: str, overrides: dict | None = None):
    """Build the model of a config (no weight init, no checkpoint loading)."""
    from mmseg.registry import MODELS

    return MODELS.build(load_config(name, overrides).model)


def tiny_model_overrides(embed: int = 16, text_width: int = 32, layers: int = 2,
                         channels: int = 32) -> dict:
    """Overrides that shrink the Swin-B FIANet config to a seconds-fast model."""
    dims = [embed * 2**i for i in range(4)]
    return {
        'model.backbone.embed_dims': embed,
        'model.backbone.depths': [2, 2, 2, 2],
        'model.backbone.num_heads': [1, 2, 2, 4],
        'model.backbone.window_size': 4,
        'model.backbone.init_cfg': None,
        'model.neck.in_channels': dims,
        'model.neck.num_blocks': 1,
        'model.decode_head.in_channels': dims,
        'model.decode_head.channels': channels,
        'model.text_encoder.name_or_path': None,
        'model.text_encoder.bert_config': dict(
            vocab_size=30522, hidden_size=text_width, num_hidden_layers=layers,
            num_attention_heads=2, intermediate_size=2 * text_width,
            max_position_embeddings=64),
        'model.text_encoder.trainable_layers': list(range(layers)),
    }
