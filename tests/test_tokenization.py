"""ExpressionEncoder / load_tokenizer with the real uncased BERT vocabulary.

Wordpiece indices in the expectations are counted by hand from the tokens the
tests check first (``[CLS]`` is index 0).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import demo_text_encoder

from fianet_mmseg.constants import TEXT_KEYS
from fianet_mmseg.text import DecoupledText, ExpressionEncoder, TextDecoupler, load_tokenizer
from fianet_mmseg.utils import resolve_pretrained

CLS, SEP = 101, 102
L = 12


@pytest.fixture(scope='module')
def vocab_dir() -> Path:
    return Path(resolve_pretrained(demo_text_encoder()))


@pytest.fixture(scope='module')
def tokenizer(vocab_dir):
    return load_tokenizer(demo_text_encoder())


@pytest.fixture(scope='module')
def encoder(tokenizer) -> ExpressionEncoder:
    return ExpressionEncoder(tokenizer, L)


def ones(length: int, *indices: int) -> np.ndarray:
    mask = np.zeros(length, dtype=np.int64)
    mask[list(indices)] = 1
    return mask


def test_split_words_are_covered_whole(tokenizer, encoder):
    expression = 'The leftmost overpass on the left'
    # The words really split: [CLS] the left ##most over ##pass on the left [SEP]
    assert tokenizer.tokenize(expression) == ['the', 'left', '##most', 'over', '##pass', 'on',
                                              'the', 'left']
    decoupled = DecoupledText(expression, (13, 21), 'overpass', ((4, 12), (22, 33)))
    assert decoupled.object_phrase == 'overpass'
    assert decoupled.spatial_phrases == ['leftmost', 'on the left']
    out = encoder(expression, decoupled)
    np.testing.assert_array_equal(out['attention_mask'], ones(L, *range(10)))
    np.testing.assert_array_equal(out['object_mask'], ones(L, 4, 5))
    np.testing.assert_array_equal(out['position_mask'], ones(L, 2, 3, 6, 7, 8))


@pytest.mark.parametrize('expression,word,pieces,indices', [
    ('bikeway along the road', 'bikeway', ['bike', '##way'], (1, 2)),
    ('impervious surface', 'impervious', ['imp', '##er', '##vious'], (1, 2, 3)),
    ('the storagetanks', 'storagetanks', ['storage', '##tan', '##ks'], (2, 3, 4)),
    ('heavy-duty vehicle', 'heavy-duty', ['heavy', '-', 'duty'], (1, 2, 3)),
])
def test_object_span_of_multi_piece_word(tokenizer, encoder, expression, word, pieces, indices):
    assert tokenizer.tokenize(word) == pieces
    start = expression.index(word)
    out = encoder(expression, DecoupledText(expression, (start, start + len(word)), None, ()))
    np.testing.assert_array_equal(out['object_mask'], ones(L, *indices))


def test_with_the_decoupler(tokenizer, encoder):
    expression = 'A tennis court on the lower left'
    # [CLS] a tennis court on the lower left [SEP]
    out = encoder(expression, TextDecoupler('rrsisd')(expression))
    np.testing.assert_array_equal(out['input_ids'][:9],
                                  [CLS] + tokenizer.convert_tokens_to_ids(
                                      ['a', 'tennis', 'court', 'on', 'the', 'lower', 'left'])
                                  + [SEP])
    np.testing.assert_array_equal(out['object_mask'], ones(L, 2, 3))
    np.testing.assert_array_equal(out['position_mask'], ones(L, 4, 5, 6, 7))


def test_special_tokens_and_padding_never_in_masks(encoder):
    expression = 'a gray tank'
    whole = DecoupledText(expression, (0, len(expression)), None, ((0, len(expression)),))
    out = encoder(expression, whole)
    # [CLS] a gray tank [SEP] pad ...
    np.testing.assert_array_equal(out['attention_mask'], ones(L, 0, 1, 2, 3, 4))
    np.testing.assert_array_equal(out['object_mask'], ones(L, 1, 2, 3))
    np.testing.assert_array_equal(out['position_mask'], ones(L, 1, 2, 3))
    assert out['input_ids'][0] == CLS and out['input_ids'][4] == SEP
    assert not out['input_ids'][5:].any()


def test_shapes_and_dtypes(encoder):
    out = encoder('car', DecoupledText('car', (0, 3), 'car', ()))
    assert tuple(out) == TEXT_KEYS
    for value in out.values():
        assert isinstance(value, np.ndarray)
        assert value.shape == (L,) and value.dtype == np.int64


def test_ids_match_the_tokenizer_call(tokenizer, encoder):
    expression = 'The Basketball court is on the right of the TENNIS court'
    reference = tokenizer(expression)['input_ids']
    out = encoder(expression)
    np.testing.assert_array_equal(out['input_ids'], reference[:L])


def test_fallbacks(encoder):
    expression = 'the gray tank on the left'  # [CLS] the gray tank on the left [SEP]
    attention = ones(L, *range(8))
    no_object = encoder(expression, DecoupledText(expression, None, None, ((14, 25),)))
    np.testing.assert_array_equal(no_object['object_mask'], attention)
    np.testing.assert_array_equal(no_object['position_mask'], ones(L, 4, 5, 6))
    no_spatial = encoder(expression, DecoupledText(expression, (4, 13), None, ()))
    np.testing.assert_array_equal(no_spatial['object_mask'], ones(L, 2, 3))
    np.testing.assert_array_equal(no_spatial['position_mask'], attention)
    off = encoder(expression, None)
    for key in TEXT_KEYS[1:]:
        np.testing.assert_array_equal(off[key], attention)


def test_truncation_like_the_reference(tokenizer):
    expression = 'the gray tank on the left of the big white building'  # 11 words
    full = tokenizer(expression)['input_ids']
    assert len(full) == 13 and full[-1] == SEP
    out = ExpressionEncoder(tokenizer, 8)(
        expression, DecoupledText(expression, (43, 51), 'building', ((14, 51),)))
    np.testing.assert_array_equal(out['input_ids'], full[:8])  # the slice loses [SEP]
    assert SEP not in out['input_ids']
    np.testing.assert_array_equal(out['attention_mask'], np.ones(8, dtype=np.int64))
    # The object ("building", piece 11) was cut away: whole-expression fallback.
    np.testing.assert_array_equal(out['object_mask'], np.ones(8, dtype=np.int64))
    np.testing.assert_array_equal(out['position_mask'], ones(8, 4, 5, 6, 7))


def test_no_truncation_raises(tokenizer):
    expression = 'the gray tank on the left of the big white building'
    with pytest.raises(ValueError, match=r'the gray tank on the left.*13 tokens.*max_length=8'):
        ExpressionEncoder(tokenizer, 8, truncate=False)(expression)
    out = ExpressionEncoder(tokenizer, 13, truncate=False)(expression)  # exactly fits
    assert out['input_ids'][12] == SEP


@pytest.mark.parametrize('expression', ['', '   ', '\n\t'])
def test_empty_expression(encoder, expression):
    with pytest.raises(ValueError, match='empty'):
        encoder(expression)


def test_decoupling_of_another_string(encoder):
    with pytest.raises(ValueError, match='not of the expression'):
        encoder('a car', DecoupledText('a van', (2, 5), 'van', ()))


def test_bad_max_length(tokenizer):
    with pytest.raises(ValueError, match='max_length'):
        ExpressionEncoder(tokenizer, 1)


def test_encoder_takes_a_name(vocab_dir):
    car_id = (vocab_dir / 'vocab.txt').read_text(encoding='utf-8').split('\n').index('car')
    out = ExpressionEncoder(str(vocab_dir), 6)('Car')
    assert out['input_ids'].tolist() == [CLS, car_id, SEP, 0, 0, 0]


def test_bare_vocab_directory(vocab_dir, tmp_path):
    shutil.copy(vocab_dir / 'vocab.txt', tmp_path / 'vocab.txt')
    tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.tokenize('The leftmost') == ['the', 'left', '##most']


def test_broken_vocabulary_guard(vocab_dir, tmp_path):
    tiny = tmp_path / 'tiny'
    tiny.mkdir()
    (tiny / 'vocab.txt').write_text('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncar\n')
    with pytest.raises(ValueError, match='only 6 entries'):
        load_tokenizer(str(tiny))

    from transformers import BertTokenizerFast

    trap = BertTokenizerFast(vocab_file=str(vocab_dir / 'vocab.txt'))
    if len(trap) >= 1000:
        pytest.skip('this transformers version reads vocab_file')
    with pytest.raises(ValueError, match='vocabulary'):
        ExpressionEncoder(trap, L)


def test_needs_a_fast_tokenizer():
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match='fast tokenizer'):
        ExpressionEncoder(Slow(), L)


def test_load_errors_name_the_path(tmp_path):
    missing = tmp_path / 'no_tokenizer_here'
    with pytest.raises(OSError, match='no_tokenizer_here'):
        load_tokenizer(str(missing))
    with pytest.raises(OSError, match='no_such_module_xyz'):
        load_tokenizer('package://no_such_module_xyz/model')


def test_decouple_tool_prints_the_wordpieces_of_each_mask(vocab_dir, capsys):
    """tools/analysis_tools/decouple.py: the phrases, then the wordpieces each mask covers."""
    from conftest import load_script

    load_script('tools/analysis_tools/decouple.py').main(
        ['The gray storage tank on the lower left', 'a ship', '--max-length', '12',
         '--tokenizer', str(vocab_dir)])
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[3] == ['attention_mask:', '[CLS]', 'the', 'gray', 'storage', 'tank', 'on',
                        'the', 'lower', 'left', '[SEP]']
    assert lines[4] == ['object_mask:', 'gray', 'storage', 'tank']
    assert lines[5] == ['position_mask:', 'on', 'the', 'lower', 'left']
    # no position phrase: the position mask is the attention mask (docs/reference.md 6)
    assert lines[8] == ['spatial:', '-']
    assert lines[10] == ['object_mask:', 'ship']
    assert lines[11][0] == 'position_mask:' and lines[11][1:] == lines[9][1:]
