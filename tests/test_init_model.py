"""init_model: the text encoder from the checkpoint (offline), clear errors for bad checkpoints."""
from __future__ import annotations

import pytest
import torch
from conftest import load_config, tiny_model_overrides
from mmengine.runner.checkpoint import save_checkpoint
from mmseg.registry import MODELS

from fianet_mmseg.apis import init_model

CONFIG = 'fianet_swin-b_rrsisd.py'


def _tiny_cfg(**extra):
    return load_config(CONFIG, {**tiny_model_overrides(), **extra})


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """A checkpoint of a tiny FIANet (random weights) as mmengine's runner writes it."""
    torch.manual_seed(3)
    model = MODELS.build(_tiny_cfg().model)
    model.init_weights()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    save_checkpoint({'state_dict': model.state_dict(),
                     'meta': {'dataset_meta': {'classes': ('background', 'object')}}}, str(path))
    return path, model.state_dict()


def test_text_encoder_comes_from_the_checkpoint_without_any_download(saved, monkeypatch):
    path, state = saved
    from transformers import BertModel

    def no_hub(*args, **kwargs):
        raise AssertionError('BertModel.from_pretrained must not be called')

    monkeypatch.setattr(BertModel, 'from_pretrained', no_hub)
    # The config names a hub model that is neither cached nor reachable here.
    cfg = _tiny_cfg(**{'model.text_encoder.name_or_path': 'bert-base-uncased',
                       'model.text_encoder.bert_config': None})
    model = init_model(cfg, str(path))
    assert model.text_encoder.width == 32 and model.text_encoder.bert.config.num_hidden_layers == 2
    loaded = model.state_dict()
    for key, value in state.items():
        if torch.is_tensor(value):
            assert torch.equal(loaded[key], value), key
    assert 'text_encoder._extra_state' in state  # what made it possible


def test_checkpoint_without_the_stored_encoder_still_needs_name_or_path(saved, tmp_path):
    path, state = saved
    stripped = {k: v for k, v in state.items() if k != 'text_encoder._extra_state'}
    old = tmp_path / 'old.pth'
    torch.save({'state_dict': stripped}, old)
    cfg = _tiny_cfg(**{'model.text_encoder.name_or_path': 'bert-base-uncased',
                       'model.text_encoder.bert_config': None})
    with pytest.raises(OSError, match='bert-base-uncased'):
        init_model(cfg, str(old))  # falls back to the config: the hub is unreachable


def test_checkpoint_of_another_architecture_names_the_keys(saved):
    path, _ = saved
    cfg = _tiny_cfg(**{'model.neck.num_blocks': 2})
    with pytest.raises(ValueError, match=r'missing \(e\.g\. \[.neck\.blocks\.1'):
        init_model(cfg, str(path))
    cfg = _tiny_cfg(**{'model.decode_head.channels': 16})
    with pytest.raises(ValueError, match='differently shaped'):
        init_model(cfg, str(path))


def test_reference_checkpoint_is_refused_with_the_converter_command(saved, tmp_path):
    path, state = saved
    official = {'classifier.conv1_1.weight': torch.zeros(2, 4, 1, 1),
                'backbone.layers.0.blocks.0.norm1.weight': torch.ones(4)}
    raw = tmp_path / 'official.pth'
    torch.save({'model': official}, raw)
    with pytest.raises(ValueError, match='fianet_official_to_mmseg.py'):
        init_model(_tiny_cfg(), str(raw))


def test_corrupt_checkpoint_names_the_file(saved, tmp_path):
    path, _ = saved
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match='cannot read checkpoint .*broken.pth'):
        init_model(_tiny_cfg(), str(broken))
