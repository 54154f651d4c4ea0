"""Shared test helpers: paths, model building from the project's configs."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

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


def load_script(relative_path: str) -> ModuleType:
    """Import one of the repository's scripts (``tools/...``, ``data_prep/...``) as a module."""
    path = REPO / relative_path
    name = 'fianet_script_' + relative_path.replace('/', '_').removesuffix('.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture(scope='session')
def rrsisd_root(tmp_path_factory):
    """The RRSIS-D format fixture converted to the project's JSONL layout."""
    from fianet_mmseg.datasets.converters import convert_rrsisd

    out = tmp_path_factory.mktemp('rrsisd_converted')
    convert_rrsisd(FIXTURES / 'formats' / 'rrsisd', out, overwrite=True)
    return out


def tiny_cli_options(data_root, epochs: int = 2, batch_size: int = 2) -> list:
    """``--cfg-options`` that run configs/fianet_swin-b_rrsisd.py tiny and offline.

    The model shrinks to a 16-wide Swin and a 2-layer, 32-wide random BERT
    (dropout off, so runs are deterministic); the data comes from
    ``data_root`` with the offline uncased tokenizer, no workers.
    """
    from fianet_mmseg.utils import DEMO_TEXT_ENCODER

    dims = '[16,32,64,128]'
    options = [
        'model.backbone.embed_dims=16', 'model.backbone.depths=[2,2,2,2]',
        'model.backbone.num_heads=[1,2,2,4]', 'model.backbone.window_size=4',
        'model.backbone.init_cfg=None', 'model.backbone.drop_path_rate=0.0',
        f'model.neck.in_channels={dims}', 'model.neck.num_blocks=1',
        f'model.decode_head.in_channels={dims}', 'model.decode_head.channels=32',
        'model.text_encoder.name_or_path=None',
        'model.text_encoder.bert_config.vocab_size=30522',
        'model.text_encoder.bert_config.hidden_size=32',
        'model.text_encoder.bert_config.num_hidden_layers=2',
        'model.text_encoder.bert_config.num_attention_heads=2',
        'model.text_encoder.bert_config.intermediate_size=64',
        'model.text_encoder.bert_config.max_position_embeddings=64',
        'model.text_encoder.bert_config.hidden_dropout_prob=0.0',
        'model.text_encoder.bert_config.attention_probs_dropout_prob=0.0',
        f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
        f'param_scheduler.0.end={epochs}', 'default_hooks.logger.interval=1',
    ]
    text_step = {'train': 4, 'val': 3, 'test': 3}  # DecoupleAndTokenize in each pipeline
    for split, index in text_step.items():
        loader = f'{split}_dataloader'
        options += [
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.dataset.pipeline.{index}.tokenizer={DEMO_TEXT_ENCODER}',
            f'{loader}.batch_size={batch_size}', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False', f'{loader}.pin_memory=False',
        ]
    return options
