"""Testing a checkpoint without the model hub; the authors' checkpoints converted complete.

``tools/test.py`` builds the text encoder as ``init_model`` does, from the architecture the
checkpoint stores (``text_encoder._extra_state``), even where the config names
bert-base-uncased; the test pipeline's tokenizer that cannot be loaded is named with the option
to set. The converter (tools/model_converters/fianet_official_to_mmseg.py) writes that
architecture and a ``meta`` naming its source, so the converted parity fixture
(tests/fixtures/README.md) loads strictly, through ``init_model`` offline and in
``tools/test.py`` offline.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import (
    CONFIGS,
    FIXTURE_BERT,
    FIXTURE_OVERRIDES,
    PARITY_FIXTURE,
    PARITY_TOLERANCE,
    REPO,
    build_model,
    demo_text_encoder,
    load_config,
    load_script,
    tiny_cli_options,
    tiny_model_overrides,
)
from reference_fianet import fill_like_fixture

import fianet_mmseg
from fianet_mmseg.apis import init_model
from fianet_mmseg.apis.test_setup import check_tokenizer_vocabulary
from fianet_mmseg.checkpoint import decode_architecture
from fianet_mmseg.text import load_tokenizer

CONFIG = CONFIGS / 'fianet_swin-b_rrsisd.py'
CONVERTER = REPO / 'tools' / 'model_converters' / 'fianet_official_to_mmseg.py'
TEST_PY = REPO / 'tools' / 'test.py'
#: The config's test pipeline: DecoupleAndTokenize is step 3.
TOKENIZER_KEY = 'test_dataloader.dataset.pipeline.3.tokenizer'


def offline_env(tmp_path: Path) -> dict:
    """No hub: offline mode, an empty cache and an endpoint nothing listens on."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
               HF_HOME=str(tmp_path / 'empty_hf_home'), HF_ENDPOINT='http://127.0.0.1:9',
               OMP_NUM_THREADS='1')
    env.pop('HF_HUB_CACHE', None)
    return env


def cli_options(data_root: Path, model: list, tokenizer: str | None) -> list:
    """tiny_cli_options' data and runtime options, 96x96 test inputs, the ``model`` options
    and, unless None, the test pipeline's tokenizer (the text encoder stays the config's
    bert-base-uncased)."""
    options = [option for option in tiny_cli_options(data_root)
               if not option.startswith(('model.', TOKENIZER_KEY))]
    options += ['test_dataloader.dataset.pipeline.1.scale=(96,96)', *model]
    if tokenizer is not None:
        options.append(f'{TOKENIZER_KEY}={tokenizer}')
    return options


def tiny_model_options(data_root: Path) -> list:
    """tiny_cli_options' model, without the text encoder."""
    return [option for option in tiny_cli_options(data_root)
            if option.startswith('model.') and not option.startswith('model.text_encoder.')]


def run_test_py(checkpoint: Path, options: list, tmp_path: Path) -> tuple:
    """``tools/test.py CONFIG CHECKPOINT`` offline; (process, per-sample file, work dir)."""
    per_sample, work = tmp_path / 'per_sample.jsonl', tmp_path / 'work'
    done = subprocess.run(
        [sys.executable, str(TEST_PY), str(CONFIG), str(checkpoint), '--work-dir', str(work),
         '--per-sample', str(per_sample), '--cfg-options', *options],
        capture_output=True, text=True, cwd=tmp_path, env=offline_env(tmp_path), timeout=600)
    return done, per_sample, work


def test_the_config_names_the_hub_encoder_and_tokenizer():
    """What makes the tests below offline tests: the config itself needs bert-base-uncased."""
    cfg = load_config(CONFIG.name)
    assert cfg.model.text_encoder.name_or_path == 'bert-base-uncased'
    step = cfg.test_dataloader.dataset.pipeline[3]
    assert step.type == 'DecoupleAndTokenize' and step.tokenizer == 'bert-base-uncased'


# ------------------------------------------------- tools/test.py on a project's checkpoint
@pytest.fixture(scope='module')
def project_checkpoint(tmp_path_factory) -> Path:
    """A tiny FIANet whose text encoder was built from an explicit small ``bert_config``."""
    torch.manual_seed(0)
    model = build_model(CONFIG.name, tiny_model_overrides())
    path = tmp_path_factory.mktemp('project') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@pytest.mark.slow
def test_test_py_builds_the_text_encoder_from_the_checkpoint_offline(
        project_checkpoint, rrsisd_root, tmp_path):
    options = cli_options(rrsisd_root, tiny_model_options(rrsisd_root), demo_text_encoder())
    done, per_sample, _ = run_test_py(project_checkpoint, options, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(per_sample.read_text().splitlines()) == 3  # the fixture's test expressions


@pytest.mark.slow
def test_test_py_names_the_option_for_a_tokenizer_it_cannot_load(
        project_checkpoint, rrsisd_root, tmp_path):
    options = cli_options(rrsisd_root, tiny_model_options(rrsisd_root), None)
    done, per_sample, work = run_test_py(project_checkpoint, options, tmp_path)
    assert done.returncode != 0
    error = done.stderr[done.stderr.rindex('\nOSError: '):]  # the last (uncaught) error
    assert error.startswith(f"\nOSError: {TOKENIZER_KEY}='bert-base-uncased': cannot load")
    assert f'--cfg-options {TOKENIZER_KEY}=DIR' in error
    assert not per_sample.exists() and not work.exists()  # refused before any work


def test_a_tokenizer_larger_than_the_encoder_vocabulary_is_refused():
    overrides = tiny_model_overrides()
    overrides['model.text_encoder.bert_config'] = dict(
        overrides['model.text_encoder.bert_config'], vocab_size=500)
    small = build_model(CONFIG.name, overrides).state_dict()
    tokenizer = load_tokenizer(demo_text_encoder())
    with pytest.raises(ValueError, match=rf'{TOKENIZER_KEY}: the tokenizer has '
                                         rf"{len(tokenizer)} wordpieces, the checkpoint's text "
                                         r'encoder only 500 embeddings'):
        check_tokenizer_vocabulary({TOKENIZER_KEY: tokenizer}, small)
    fitting = build_model(CONFIG.name, tiny_model_overrides()).state_dict()  # 30522 embeddings
    check_tokenizer_vocabulary({TOKENIZER_KEY: tokenizer}, fitting)


# ---------------------------------------------------------- the authors' checkpoint converted
@pytest.fixture(scope='module')
def official(tmp_path_factory) -> dict:
    """The parity fixture's weights saved in the reference's layout, and the fixture."""
    fixture = torch.load(PARITY_FIXTURE, weights_only=True)
    root = tmp_path_factory.mktemp('official')
    src = root / 'official.pth'
    state = {name: fill_like_fixture(name, shape) for name, shape in fixture['official_keys']}
    torch.save({'model': state}, src)
    config = root / 'fixture_architecture.py'  # the Swin-B config at the fixture's sizes
    load_config(CONFIG.name, FIXTURE_OVERRIDES).dump(str(config))
    return dict(src=src, config=config, fixture=fixture, root=root)


@pytest.fixture(scope='module')
def converted(official) -> Path:
    """The converter CLI's output for ``official``, told the architecture by ``--config``."""
    dst = official['root'] / 'converted.pth'
    done = subprocess.run([sys.executable, str(CONVERTER), str(official['src']), str(dst),
                           '--config', str(official['config'])],
                          capture_output=True, text=True, cwd=REPO,
                          env=offline_env(official['root']), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dst


@pytest.mark.slow
def test_converted_checkpoint_names_its_source(official, converted):
    meta = torch.load(converted, weights_only=True)['meta']
    assert meta['converted_from'] == 'official.pth'
    assert meta['source_sha256'] == hashlib.sha256(official['src'].read_bytes()).hexdigest()
    assert meta['converter_version'] == fianet_mmseg.__version__
    assert meta['converter'] == 'tools/model_converters/fianet_official_to_mmseg.py'


@pytest.mark.slow
def test_converted_checkpoint_loads_strictly_with_its_text_encoder(official, converted):
    state = torch.load(converted, weights_only=True)['state_dict']
    stored = decode_architecture(state['text_encoder._extra_state'])['bert_config']
    assert {key: stored[key] for key in FIXTURE_BERT} == FIXTURE_BERT
    model = build_model(CONFIG.name, FIXTURE_OVERRIDES)
    model.load_state_dict(state, strict=True)  # every entry, and nothing else
    weight = 'text_encoder.embeddings.word_embeddings.weight'
    assert torch.equal(model.text_encoder.bert.embeddings.word_embeddings.weight,
                       fill_like_fixture(weight, (1000, 768)))


@pytest.mark.slow
@pytest.mark.numerics
def test_init_model_offline_reproduces_the_fixture_logits(official, converted, monkeypatch):
    from transformers import BertModel

    def no_hub(*args, **kwargs):
        raise AssertionError('BertModel.from_pretrained must not be called')

    monkeypatch.setattr(BertModel, 'from_pretrained', no_hub)
    overrides = {k: v for k, v in FIXTURE_OVERRIDES.items()
                 if not k.startswith('model.text_encoder.')}  # bert-base-uncased stays
    model = init_model(load_config(CONFIG.name, overrides), str(converted))
    config = model.text_encoder.bert.config
    assert (config.num_hidden_layers, config.num_attention_heads) == (2, 12)
    fixture = official['fixture']
    with torch.no_grad():
        logits = model.forward_tensors(**fixture['inputs'])
    assert (logits - fixture['logits']).abs().max().item() < PARITY_TOLERANCE


def write_small_vocabulary(folder: Path, data_root: Path) -> Path:
    """A wordpiece vocabulary within the fixture BERT's 1000 embeddings: the special tokens,
    the words of the test expressions, letters and digits (whole and ``##`` pieces)."""
    words = set()
    for line in (data_root / 'test.jsonl').read_text().splitlines():
        text = json.loads(line)['expression'].lower()
        words |= set(''.join(c if c.isalnum() else ' ' for c in text).split())
    chars = [chr(c) for c in range(ord('a'), ord('z') + 1)] + [str(d) for d in range(10)]
    tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + sorted(words) + chars + \
        ['##' + c for c in chars] + list('.,-')
    tokens += [f'[unused{i}]' for i in range(200 - len(tokens))]
    folder.mkdir()
    (folder / 'vocab.txt').write_text('\n'.join(tokens) + '\n')
    return folder


@pytest.mark.slow
def test_test_py_offline_on_the_converted_checkpoint(converted, rrsisd_root, tmp_path):
    vocabulary = write_small_vocabulary(tmp_path / 'vocabulary', rrsisd_root)
    # the fixture's architecture: the Swin-B config with 2 blocks per stage, 1 TMEM block
    model = ['model.backbone.depths=[2,2,2,2]', 'model.neck.num_blocks=1']
    options = cli_options(rrsisd_root, model, str(vocabulary))
    done, per_sample, _ = run_test_py(converted, options, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(per_sample.read_text().splitlines()) == 3


@pytest.mark.slow
def test_converter_checks_the_architecture_it_stores(official, tmp_path, capsys):
    """Without --config the text encoder must be bert-base-uncased; with it, the whole model
    must fit. Either way the error names the file and the tensors, and nothing is written."""
    main = load_script('tools/model_converters/fianet_official_to_mmseg.py').main
    dst = tmp_path / 'out.pth'
    assert main([str(official['src']), str(dst)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"{official['src']}: the text encoder weights do not fit")
    assert "encoder.layer.2.attention.self.query.weight" in error  # 2 layers, not 12
    assert 'give --config' in error
    other = tmp_path / 'three_tmem_blocks.py'
    load_config(CONFIG.name, {**FIXTURE_OVERRIDES, 'model.neck.num_blocks': 3}).dump(str(other))
    assert main([str(official['src']), str(dst), '--config', str(other)]) == 1
    error = capsys.readouterr().err
    assert f"{official['src']} does not fit the model of this config" in error
    assert "missing (e.g. ['neck.blocks.1." in error
    assert not dst.exists() and not list(tmp_path.glob('.out.pth*'))


def test_converter_drops_the_bert_index_buffers_of_older_transformers():
    """Older transformers saved BERT's ``position_ids`` / ``token_type_ids`` buffers; they are
    derived (0, 1, ... and zeros), not weights: dropped and reported, the rest fits."""
    from transformers import BertConfig, BertModel

    from fianet_mmseg.checkpoint import official_fianet_to_mmseg

    bert = BertConfig(**tiny_model_overrides()['model.text_encoder.bert_config'])
    state = {'text_encoder.' + k: v
             for k, v in BertModel(bert, add_pooling_layer=False).state_dict().items()}
    buffers = ['text_encoder.embeddings.position_ids', 'text_encoder.embeddings.token_type_ids']
    state[buffers[0]] = torch.arange(64)[None]
    state[buffers[1]] = torch.zeros(1, 64, dtype=torch.long)
    converted, dropped = official_fianet_to_mmseg(state, bert_config=bert)
    assert dropped == buffers
    assert not any('position_ids' in k or 'token_type_ids' in k for k in converted)
