"""Bad input: the rows of the README's bad-input table that are not tested elsewhere.

Every test breaks one input (a copy: the fixtures and the session's converted data stay as
they are) and checks the error's type, that its message names the offending file, line or
field, and, where a tool writes, that nothing was written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    CONFIGS,
    FIXTURES,
    build_model,
    demo_text_encoder,
    load_config,
    load_script,
    tiny_cli_options,
    tiny_model_overrides,
    tiny_test_options,
)
from mmengine.config import DictAction
from mmengine.runner.checkpoint import save_checkpoint
from mmseg.registry import MODELS, TRANSFORMS
from PIL import Image

from fianet_mmseg.datasets import RefSegDataset
from fianet_mmseg.datasets.converters import ConverterError, convert_refsegrs, convert_rrsisd
from fianet_mmseg.text import ExpressionEncoder, load_tokenizer
from fianet_mmseg.utils.run_config import load_run_config

CONFIG = CONFIGS / 'fianet_swin-b_rrsisd.py'
FORMATS = FIXTURES / 'formats'


def options_dict(options: list) -> dict:
    """``--cfg-options`` strings as the tools parse them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its content hash."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


# ------------------------------------------------------------------ data pipeline
@pytest.fixture(scope='module')
def pipelines() -> dict:
    """The config's train / test pipelines, built once (offline tokenizer, no black boxes)."""
    cfg = load_config(CONFIG.name)
    built = {}
    for split in ('train', 'test'):
        steps = []
        for step in cfg[f'{split}_dataloader'].dataset.pipeline:
            if step['type'] == 'DecoupleAndTokenize':
                step.update(tokenizer=demo_text_encoder(), truncate=False)
            if step['type'] == 'RandomBlackBoxes':
                step['ratio'] = 0.0
            steps.append(TRANSFORMS.build(step))
        built[split] = steps
    return built


@pytest.fixture
def sample(rrsisd_root) -> dict:
    """A good val record of the converted fixture, with absolute paths."""
    record = json.loads((rrsisd_root / 'val.jsonl').read_text().splitlines()[0])
    for key in ('img_path', 'seg_map_path'):
        record[key] = str(Path(rrsisd_root, record[key]).resolve())
    return record


def second_line_dataset(tmp_path: Path, good: dict, pipeline: list, **changes) -> tuple:
    """A JSONL file of ``good`` (line 1) and ``good`` with ``changes`` (line 2)."""
    bad = dict(good, sent_id=good['sent_id'] + 1, **changes)
    ann = tmp_path / 'val.jsonl'
    ann.write_text(json.dumps(good) + '\n' + json.dumps(bad) + '\n')
    return RefSegDataset(ann_file=str(ann), pipeline=pipeline, test_mode=True), ann


def break_file(source: str, kind: str, target: Path) -> Path:
    """A missing, empty (zero bytes) or truncated (first half) copy of ``source``."""
    data = Path(source).read_bytes()
    if kind == 'zero-byte':
        target.write_bytes(b'')
    elif kind == 'truncated':
        target.write_bytes(data[:len(data) // 2])
    return target


@pytest.mark.parametrize('kind, error, says', [
    ('missing', FileNotFoundError, 'No such file or directory'),
    ('zero-byte', ValueError, 'the file is empty (0 bytes)'),
    ('truncated', OSError, 'Truncated File Read'),
])
def test_image_file_errors_name_the_jsonl_line_and_the_image(tmp_path, sample, pipelines,
                                                             kind, error, says):
    image = break_file(sample['img_path'], kind, tmp_path / f'{kind}.jpg')
    dataset, ann = second_line_dataset(tmp_path, sample, pipelines['test'], img_path=str(image))
    dataset[0]  # line 1 is good
    with pytest.raises(error) as info:
        dataset[1]
    message = str(info.value)
    for fragment in (f'{ann}, line 2', str(image), 'step LoadRefSegImage', says):
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize('kind, error, says', [
    ('missing', FileNotFoundError, 'does not exist'),
    ('zero-byte', ValueError, 'cannot decode mask file'),
    ('truncated', ValueError, 'cannot decode mask file'),
    ('three channels', ValueError, 'expected one channel'),
])
def test_mask_file_errors_name_the_mask_and_its_image(tmp_path, sample, pipelines,
                                                      kind, error, says):
    mask = tmp_path / f'{kind}.png'
    if kind == 'three channels':
        gray = np.asarray(Image.open(sample['seg_map_path']))
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(mask)
    else:
        break_file(sample['seg_map_path'], kind, mask)
    dataset, ann = second_line_dataset(tmp_path, sample, pipelines['test'],
                                       seg_map_path=str(mask))
    with pytest.raises(error) as info:
        dataset[1]
    message = str(info.value)
    for fragment in (f'{ann}, line 2', f'mask file {mask}', sample['img_path'],
                     'step LoadRefSegAnnotations', says):
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize('split', ['train', 'test'])  # mask loaded before / after Resize
def test_mask_of_another_size_than_its_image(tmp_path, sample, pipelines, split):
    gray = np.asarray(Image.open(sample['seg_map_path']))
    assert gray.shape == (sample['height'], sample['width']) == (64, 64)
    mask = tmp_path / 'small.png'
    Image.fromarray(np.ascontiguousarray(gray[:40, :48])).save(mask)
    dataset, ann = second_line_dataset(tmp_path, sample, pipelines[split],
                                       seg_map_path=str(mask))
    with pytest.raises(ValueError) as info:
        dataset[1]
    message = str(info.value)
    for fragment in (f'{ann}, line 2', f'mask file {mask} is 40x48 (HxW)',
                     f'its image {sample["img_path"]} is 64x64'):
        assert fragment in message, (fragment, message)


def test_mask_values_other_than_0_1_and_255(tmp_path, sample, pipelines):
    gray = np.array(Image.open(sample['seg_map_path']))
    assert set(np.unique(gray)) == {0, 1}
    gray[0, :3] = 255  # ignored pixels: allowed, and kept as they are
    ignored = tmp_path / 'ignored.png'
    Image.fromarray(gray).save(ignored)
    dataset, _ = second_line_dataset(tmp_path, sample, pipelines['test'],
                                     seg_map_path=str(ignored))
    loaded = dataset[1]['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(loaded, gray)
    gray[1, :4] = [2, 128, 7, 2]
    wrong = tmp_path / 'wrong.png'
    Image.fromarray(gray).save(wrong)
    dataset, ann = second_line_dataset(tmp_path, sample, pipelines['test'],
                                       seg_map_path=str(wrong))
    with pytest.raises(ValueError) as info:
        dataset[1]
    message = str(info.value)
    for fragment in (f'{ann}, line 2', f'mask file {wrong}', 'value(s) 2, 7, 128 in 4 pixel(s)'):
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize('expression, says', [
    ('...', "wordpieces ['.', '.', '.']"),
    # 23 words, each one wordpiece: 25 tokens with [CLS] and [SEP]
    ('the gray storage tank on the lower left of the large white building next to the road '
     'in the middle of the image', '25 tokens ([CLS] and [SEP] included), more than '
     'max_length=22 (truncate=False)'),
])
def test_expression_errors_name_the_jsonl_line(tmp_path, sample, pipelines, expression, says):
    dataset, ann = second_line_dataset(tmp_path, sample, pipelines['test'],
                                       expression=expression)
    with pytest.raises(ValueError) as info:
        dataset[1]
    message = str(info.value)
    for fragment in (f'{ann}, line 2', 'step DecoupleAndTokenize', repr(expression), says):
        assert fragment in message, (fragment, message)


def test_duplicate_ids_name_both_lines(tmp_path):
    record = dict(img_path='a.jpg', seg_map_path='a.png', expression='the car', ref_id=7,
                  sent_id=70)
    ann = tmp_path / 'train.jsonl'
    lines = [record, dict(record, sent_id=71), dict(record, ref_id=8), record]
    ann.write_text(''.join(json.dumps(r) + '\n' for r in lines))
    with pytest.raises(ValueError, match=r'train.jsonl, lines 1 and 4: duplicate '
                                         r'\(ref_id, sent_id\) = \(7, 70\)'):
        RefSegDataset(ann_file=str(ann))
    ann.write_text(''.join(json.dumps(r) + '\n' for r in lines[:3]))  # same ref, other sentence
    assert len(RefSegDataset(ann_file=str(ann))) == 3


# ------------------------------------------------------------------------- text
@pytest.fixture(scope='module')
def tokenizer():
    return load_tokenizer(demo_text_encoder())


@pytest.mark.parametrize('expression', [
    '...', '?!', '\u2014', '@@@ ###',  # punctuation and symbols only
    '\U0001F697\U0001F697',  # emoji: [UNK] in the uncased BERT vocabulary
    '\u0e16\u0e31\u0e07',  # Thai: [UNK]
    '\u200b',  # a zero-width space: not white space for str.strip, no wordpiece at all
])
def test_expression_without_a_readable_word(tokenizer, expression):
    with pytest.raises(ValueError) as info:
        ExpressionEncoder(tokenizer, 16)(expression)
    assert f'the expression {expression!r} has no word the model can read' in str(info.value)


@pytest.mark.parametrize('expression', [
    '\u5de6\u4e0b\u89d2\u7684\u7070\u8272\u50a8\u7f50',  # Chinese: some characters known
    '\u0627\u0644\u062e\u0632\u0627\u0646',  # Arabic
    '\u0440\u0435\u0437\u0435\u0440\u0432\u0443\u0430\u0440',  # Cyrillic
    '\U0001F697 car', '$5',
])
def test_non_latin_text_with_known_wordpieces_is_read(tokenizer, expression):
    vocab = tokenizer.get_vocab()
    out = ExpressionEncoder(tokenizer, 16)(expression)
    ids = out['input_ids'][out['attention_mask'] == 1]
    words = set(ids.tolist()) - {tokenizer.cls_token_id, tokenizer.sep_token_id,
                                 tokenizer.unk_token_id}
    assert words  # a known wordpiece, no error
    if expression.startswith('\u5de6'):  # CJK: one wordpiece per character, [UNK] if unknown
        expected = [vocab.get(char, tokenizer.unk_token_id) for char in expression]
        assert ids.tolist() == [tokenizer.cls_token_id, *expected, tokenizer.sep_token_id]
        assert 0 < expected.count(tokenizer.unk_token_id) < len(expression)


def test_unknown_dataset_for_the_decoupler(tmp_path, sample):
    step = TRANSFORMS.build(dict(type='DecoupleAndTokenize', tokenizer=demo_text_encoder(),
                                 max_length=22, dataset='rrsid'))
    with pytest.raises(ValueError, match="unknown dataset 'rrsid'"):
        step(dict(expression='the car'))
    with pytest.raises(ValueError, match=r"field dataset = one of .*got 'rrsid'"):
        TRANSFORMS.build(dict(type='DecoupleAndTokenize', tokenizer=demo_text_encoder(),
                              max_length=22, dataset='rrsid', decoupling='reference'))


# -------------------------------------------------------------------- converters
REFS = Path('rrsisd') / 'refs(unc).p'


def edit_refs(root: Path, edit) -> None:
    refs = pickle.loads((root / REFS).read_bytes())
    edit(refs)
    (root / REFS).write_bytes(pickle.dumps(refs))


def _second_sentence_with_the_same_id(refs: list) -> None:
    first = refs[0]['sentences'][0]
    refs[0]['sentences'].append(dict(first, raw='another description'))


@pytest.mark.parametrize('edit, fragments', [
    (lambda refs: refs.append(dict(refs[0])), ['ref_id 1000', 'duplicate ref_id']),
    (_second_sentence_with_the_same_id,
     ['ref_id 1000', 'sentences[1]', "duplicate sent_id 50000 (field 'sent_id'"]),
], ids=['ref_id', 'sent_id'])
def test_rrsisd_duplicate_ids(tmp_path, edit, fragments):
    root = tmp_path / 'src'
    shutil.copytree(FORMATS / 'rrsisd', root)
    edit_refs(root, edit)
    before = snapshot(root)
    with pytest.raises(ConverterError) as info:
        convert_rrsisd(root, tmp_path / 'out')
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['src']  # no output, no leftovers
    assert snapshot(root) == before


def test_refsegrs_expression_without_a_category_is_kept(tmp_path):
    root = tmp_path / 'src'
    shutil.copytree(FORMATS / 'refsegrs', root)
    with open(root / 'output_phrase_train.txt', 'a') as handle:
        handle.write('3 a parking lot\n')  # no RefSegRS category name in it
    convert_refsegrs(root, tmp_path / 'out')
    last = json.loads((tmp_path / 'out' / 'train.jsonl').read_text().splitlines()[-1])
    assert (last['expression'], last['category']) == ('a parking lot', None)


# ----------------------------------------------------------------- config keys
@pytest.mark.parametrize('option, fragments', [
    ('train_cfg.max_epoch=2', ["train_cfg has no key 'max_epoch'", 'train_cfg.max_epochs?']),
    ('model.backbon.depths=[2,2,2,2]', ["model has no key 'backbon'", 'model.backbone?']),
    ('lod_from=x.pth', ["no top-level key 'lod_from'", 'did you mean load_from']),
    ('train_dataloader.dataset.pipeline.9.scale=(96,96)',
     ['train_dataloader.dataset.pipeline is a list of 6 item(s)', "'9' is not an index 0-5"]),
    ('default_hooks.early_stop.patience=3',
     ["default_hooks has no key 'early_stop'", 'give default_hooks.early_stop.type']),
])
def test_cfg_options_key_that_names_nothing(tmp_path, option, fragments):
    with pytest.raises(KeyError) as info:
        load_run_config(str(CONFIG), options_dict([option]), str(tmp_path / 'work'))
    message = str(info.value)
    assert f'--cfg-options {option.split("=")[0]}' in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_cfg_options_of_the_tests_and_readme_are_accepted(tmp_path):
    options = tiny_cli_options(tmp_path) + [
        'test_dataloader.dataset.shuffle_expressions=True',  # new keyword of a typed section
        'env_cfg.dist_cfg.backend=gloo', 'model.backbone.with_cp=True',
        'randomness.deterministic=True',  # new leaf
        'work_dir=elsewhere', 'experiment_name=x',  # Runner arguments
        'default_hooks.early_stop.type=EarlyStoppingHook',  # a new component, with its type
        'default_hooks.early_stop.monitor=oIoU']
    cfg = load_run_config(str(CONFIG), options_dict(options), str(tmp_path / 'work'))
    assert cfg.model.text_encoder.bert_config.hidden_size == 32  # a new section of a class
    assert cfg.default_hooks.early_stop.monitor == 'oIoU'
    assert cfg.test_dataloader.dataset.shuffle_expressions is True


def test_unknown_keyword_of_a_class_is_refused_when_built(tmp_path):
    # a new leaf under a class's section passes the check (no near-copy of a key there) ...
    cfg = load_run_config(str(CONFIG), options_dict(['model.decode_head.dropout=0.1']),
                          str(tmp_path / 'work'))
    cfg.merge_from_dict(tiny_model_overrides())
    with pytest.raises(TypeError, match="unexpected keyword argument 'dropout'"):
        MODELS.build(cfg.model)  # ... and the class refuses it by name


def test_train_py_refuses_a_wrong_key_before_writing(tmp_path, rrsisd_root, monkeypatch):
    work = tmp_path / 'work'
    monkeypatch.setenv('LOCAL_RANK', '0')  # the tools set it when absent
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(CONFIG), '--work-dir', str(work), '--cfg-options',
        *tiny_cli_options(rrsisd_root), 'train_cfg.max_epoch=1'])
    with pytest.raises(KeyError, match=r"train_cfg has no key 'max_epoch'; did you mean "
                                       r'train_cfg.max_epochs\?'):
        load_script('tools/train.py').main()
    assert not work.exists()


# ------------------------------------------------------------ tools/test.py checkpoints
@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny FIANet checkpoint, as mmengine's runner saves one."""
    torch.manual_seed(0)
    model = build_model(CONFIG.name, tiny_model_overrides())
    path = tmp_path_factory.mktemp('tiny') / 'tiny.pth'
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return path


def _corrupt(good: Path, path: Path) -> None:
    path.write_bytes(good.read_bytes()[:1000])


def _reference_layout(good: Path, path: Path) -> None:
    torch.save({'model': {'classifier.conv1_1.weight': torch.zeros(2, 4, 1, 1),
                          'backbone.layers.0.blocks.0.norm1.weight': torch.ones(4)}}, path)


def _another_architecture(good: Path, path: Path) -> None:
    model = build_model(CONFIG.name, {**tiny_model_overrides(), 'model.neck.num_blocks': 2})
    save_checkpoint({'state_dict': model.state_dict()}, str(path))


@pytest.mark.parametrize('make, error, fragments', [
    (_corrupt, ValueError, ['cannot read checkpoint', 'bad.pth']),
    (_reference_layout, ValueError, ['bad.pth is a checkpoint of the reference FIANet code',
                                     'tools/model_converters/fianet_official_to_mmseg.py']),
    (_another_architecture, ValueError, ['bad.pth does not fit the model of this config',
                                         "unexpected (e.g. ['neck.blocks.1."]),
    (None, FileNotFoundError, ['checkpoint', 'bad.pth does not exist']),
], ids=['corrupt', 'reference layout', 'another architecture', 'missing'])
def test_test_py_checks_the_checkpoint_before_testing(tmp_path, rrsisd_root, tiny_checkpoint,
                                                      monkeypatch, make, error, fragments):
    bad = tmp_path / 'bad.pth'
    if make is not None:
        make(tiny_checkpoint, bad)
    out, per_sample = tmp_path / 'masks', tmp_path / 'per_sample.jsonl'
    monkeypatch.setenv('LOCAL_RANK', '0')  # the tools set it when absent
    monkeypatch.setattr(sys, 'argv', [
        'test.py', str(CONFIG), str(bad), '--work-dir', str(tmp_path / 'work'), '--out', str(out),
        '--per-sample', str(per_sample), '--cfg-options', *tiny_test_options(rrsisd_root)])
    with pytest.raises(error) as info:
        load_script('tools/test.py').main()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert not out.exists() and not per_sample.exists()


def test_test_py_tests_a_fitting_checkpoint(tmp_path, rrsisd_root, tiny_checkpoint,
                                            monkeypatch):
    per_sample = tmp_path / 'per_sample.jsonl'
    monkeypatch.setenv('LOCAL_RANK', '0')  # the tools set it when absent
    monkeypatch.setattr(sys, 'argv', [
        'test.py', str(CONFIG), str(tiny_checkpoint), '--work-dir', str(tmp_path / 'work'),
        '--per-sample', str(per_sample), '--cfg-options', *tiny_test_options(rrsisd_root)])
    load_script('tools/test.py').main()
    test_lines = (rrsisd_root / 'test.jsonl').read_text().splitlines()
    assert len(per_sample.read_text().splitlines()) == len(test_lines) == 3


def test_test_py_predicts_with_the_checkpoint_weights(tmp_path, rrsisd_root, tiny_checkpoint,
                                                      monkeypatch):
    """A classifier bias of +50 for the object: only the checkpoint's weights mask everything."""
    checkpoint = torch.load(tiny_checkpoint, map_location='cpu', weights_only=False)
    bias = checkpoint['state_dict']['decode_head.conv_seg.bias']
    bias.copy_(torch.tensor([-50.0, 50.0]))
    biased = tmp_path / 'biased.pth'
    save_checkpoint(checkpoint, str(biased))
    out = tmp_path / 'masks'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', [
        'test.py', str(CONFIG), str(biased), '--work-dir', str(tmp_path / 'work'), '--out',
        str(out), '--cfg-options', *tiny_test_options(rrsisd_root)])
    load_script('tools/test.py').main()
    masks = sorted(out.glob('*.png'))
    assert len(masks) == 3
    assert all((np.asarray(Image.open(mask)) == 1).all() for mask in masks)
