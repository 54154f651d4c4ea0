"""The reference's own text masks (docs/reference.md 6b), quirks included.

Each case gives the expression with hand-written Penn Treebank tags (the tagger
is injected: NLTK's tagger data cannot be downloaded here) and the expected
masks written by hand from the rules of 6b, as lists of mask positions (word
``i`` is written at ``i + 1``; ``ATT`` = the attention mask). Words come from
``NLTKWordTokenizer`` (what ``nltk.word_tokenize`` applies to each sentence; all
expressions are one sentence). The wordpieces each case relies on are checked
against the real uncased BERT vocabulary first.
"""
from __future__ import annotations

import json
import pickle
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from conftest import CONFIGS, demo_text_encoder, require
from mmengine.config import Config

from fianet_mmseg.text import ExpressionEncoder, ReferenceMaskBuilder, load_tokenizer
from fianet_mmseg.text.reference_masks import (
    NLTK_DOWNLOAD_COMMAND,
    REFERENCE_CATEGORIES,
    check_nltk_data,
    data_free_word_tokenize,
)

nltk = require('nltk', 'pip install "fianet-mmseg[reference]"')

ATT = 'attention'
LENGTH = {'rrsisd': 22, 'refsegrs': 20}


@dataclass
class Case:
    dataset: str
    expression: str
    tagged: str  # 'word/TAG word/TAG ...', words exactly as NLTK splits them
    pieces: str  # wordpieces of the expression, without [CLS] / [SEP]
    object: Sequence[int]  # object mask positions
    position: Sequence[int] | str  # position mask positions, or ATT
    categories: Tuple[str, ...] = ()  # found, in text order
    kept: Tuple[str, ...] = ()  # kept PP phrases
    dropped: Tuple[str, ...] = ()  # PP phrases dropped for "of"
    # wordpieces under the object / position masks (the word -> wordpiece drift)
    object_pieces: Optional[List[str]] = None
    position_pieces: Optional[List[str]] = None

    @property
    def words(self) -> List[str]:
        return [item.rsplit('/', 1)[0] for item in self.tagged.split()]

    @property
    def tags(self) -> List[str]:
        return [item.rsplit('/', 1)[1] for item in self.tagged.split()]


CASES = {
    # ------------------------------------------------------------- RRSIS-D (L = 22)
    'plain': Case(
        'rrsisd', 'The gray storage tank on the lower left',
        'The/DT gray/JJ storage/NN tank/NN on/IN the/DT lower/JJR left/NN',
        'the gray storage tank on the lower left',
        [3, 4], [5, 6, 7, 8], categories=('storage tank',), kept=('on the lower left',)),
    'no-phrase': Case(
        'rrsisd', 'A oval ground track field',
        'A/DT oval/JJ ground/NN track/NN field/NN', 'a oval ground track field',
        [3, 4, 5], ATT, categories=('ground track field',)),
    'two-categories-of-phrase': Case(
        'rrsisd', 'The basketball court is on the right of the tennis court in the middle',
        'The/DT basketball/NN court/NN is/VBZ on/IN the/DT right/NN of/IN the/DT tennis/NN '
        'court/NN in/IN the/DT middle/NN',
        'the basketball court is on the right of the tennis court in the middle',
        [2, 3, 10, 11], [5, 6, 7, 12, 13, 14],
        categories=('basketball court', 'tennis court'), kept=('on the right', 'in the middle'),
        dropped=('of the tennis',)),
    'leftmost-overpass': Case(
        'rrsisd', 'the leftmost overpass', 'the/DT leftmost/JJS overpass/NN',
        'the left ##most over ##pass', [3], ATT, categories=('overpass',),
        object_pieces=['##most']),
    'leftmost-overpass-phrase': Case(
        'rrsisd', 'The leftmost overpass on the upper right',
        'The/DT leftmost/JJS overpass/NN on/IN the/DT upper/JJ right/NN',
        'the left ##most over ##pass on the upper right', [3], [4, 5, 6, 7],
        categories=('overpass',), kept=('on the upper right',),
        object_pieces=['##most'], position_pieces=['over', '##pass', 'on', 'the']),
    'capitalised-category-missed': Case(
        'rrsisd', 'Airplane on the left', 'Airplane/NN on/IN the/DT left/NN',
        'airplane on the left', [], [2, 3, 4], kept=('on the left',)),
    'offshore-dropped': Case(
        'rrsisd', 'The ship in the offshore area on the left',
        'The/DT ship/NN in/IN the/DT offshore/JJ area/NN on/IN the/DT left/NN',
        'the ship in the offshore area on the left', [2], [7, 8, 9],
        categories=('ship',), kept=('on the left',), dropped=('in the offshore area',)),
    'second-on-remarks-first': Case(
        'rrsisd', 'The vehicle on the bridge on the left',
        'The/DT vehicle/NN on/IN the/DT bridge/NN on/IN the/DT left/NN',
        'the vehicle on the bridge on the left', [2, 5], [3, 4, 5],
        categories=('vehicle', 'bridge'), kept=('on the bridge', 'on the left')),
    'plural-windmills': Case(
        'rrsisd', 'The windmills on the right',
        'The/DT windmills/NNS on/IN the/DT right/NN', 'the windmill ##s on the right',
        [2], [3, 4, 5], categories=('windmill',), kept=('on the right',),
        object_pieces=['windmill'], position_pieces=['##s', 'on', 'the']),
    'ship-inside-shipping': Case(
        'rrsisd', 'The shipping vessel in the harbor',
        'The/DT shipping/NN vessel/NN in/IN the/DT harbor/NN',
        'the shipping vessel in the harbor', [2, 6], [4, 5, 6],
        categories=('ship', 'harbor'), kept=('in the harbor',)),
    'same-first-word-categories': Case(
        'rrsisd', 'The expressway service area next to the expressway toll station',
        'The/DT expressway/NN service/NN area/NN next/JJ to/TO the/DT expressway/NN toll/NN '
        'station/NN',
        'the expressway service area next to the expressway toll station', [2, 3, 4], ATT,
        categories=('expressway service area', 'expressway toll station')),
    'dam-inside-damaged': Case(
        'rrsisd', 'The bridge near the damaged building',
        'The/DT bridge/NN near/IN the/DT damaged/JJ building/NN',
        'the bridge near the damaged building', [2, 5], [3, 4, 5, 6],
        categories=('bridge', 'dam'), kept=('near the damaged building',)),
    'of-the-image-dropped': Case(
        'rrsisd', 'The stadium in the middle of the image',
        'The/DT stadium/NN in/IN the/DT middle/NN of/IN the/DT image/NN',
        'the stadium in the middle of the image', [2], [3, 4, 5],
        categories=('stadium',), kept=('in the middle',), dropped=('of the image',)),
    'relative-clause': Case(
        'rrsisd', 'A chimney which is at the bottom',
        'A/DT chimney/NN which/WDT is/VBZ at/IN the/DT bottom/NN',
        'a chimney which is at the bottom', [2], [5, 6, 7],
        categories=('chimney',), kept=('at the bottom',)),
    'rule-3-left-as-vbd': Case(
        'rrsisd', 'The baseball field on the lower left',
        'The/DT baseball/NN field/NN on/IN the/DT lower/JJR left/VBD',
        'the baseball field on the lower left', [2, 3], [4, 5, 6, 7],
        categories=('baseball field',), kept=('on the lower left',)),
    'vbd-without-adjective-no-chunk': Case(
        'rrsisd', 'The golf field on the left',
        'The/DT golf/NN field/NN on/IN the/DT left/VBD', 'the golf field on the left',
        [2, 3], ATT, categories=('golf field',)),
    'rule-2-adjective': Case(
        'rrsisd', 'A train station on the right',
        'A/DT train/NN station/NN on/IN the/DT right/JJ', 'a train station on the right',
        [2, 3], [4, 5, 6], categories=('train station',), kept=('on the right',)),
    'plural-airplanes': Case(
        'rrsisd', 'Two airplanes parked at the airport',
        'Two/CD airplanes/NNS parked/VBN at/IN the/DT airport/NN',
        'two airplanes parked at the airport', [2, 6], [4, 5, 6],
        categories=('airplane', 'airport'), kept=('at the airport',)),
    'chunk-stops-before-plural': Case(
        'rrsisd', 'The vehicle between the storage tanks',
        'The/DT vehicle/NN between/IN the/DT storage/NN tanks/NNS',
        'the vehicle between the storage tanks', [2, 5, 6], [3, 4, 5],
        categories=('vehicle', 'storage tank'), kept=('between the storage',)),
    'plural-noun-no-chunk': Case(
        'rrsisd', 'The ships near the docks', 'The/DT ships/NNS near/IN the/DT docks/NNS',
        'the ships near the docks', [2], ATT, categories=('ship',)),
    'truncated-rrsisd': Case(
        'rrsisd',
        'The white storage tank which is located at the very bottom right corner of the '
        'image is near the small gray overpass on the left',
        'The/DT white/JJ storage/NN tank/NN which/WDT is/VBZ located/VBN at/IN the/DT very/RB '
        'bottom/JJ right/JJ corner/NN of/IN the/DT image/NN is/VBZ near/IN the/DT small/JJ '
        'gray/JJ overpass/NN on/IN the/DT left/NN',
        'the white storage tank which is located at the very bottom right corner of the image '
        'is near the small gray over ##pass on the left',
        # overpass (word 21) would be written at 22, "on the left" at 23..25: cut
        [3, 4], [18, 19, 20, 21],
        categories=('storage tank', 'overpass'), kept=('near the small gray', 'on the left'),
        dropped=('of the image',)),
    'truncated-no-phrase': Case(
        'rrsisd',
        'A large white storage tank and a small gray storage tank and a vehicle and a ship '
        'and a bridge and a dam',
        'A/DT large/JJ white/JJ storage/NN tank/NN and/CC a/DT small/JJ gray/JJ storage/NN '
        'tank/NN and/CC a/DT vehicle/NN and/CC a/DT ship/NN and/CC a/DT bridge/NN and/CC '
        'a/DT dam/NN',
        'a large white storage tank and a small gray storage tank and a vehicle and a ship '
        'and a bridge and a dam',
        # the second storage tank is not marked; dam (word 22) would be written at 23
        [4, 5, 14, 17, 20], ATT,
        categories=('storage tank', 'vehicle', 'ship', 'bridge', 'dam')),
    # ----------------------------------------------------------- RefSegRS (L = 20)
    'single-word': Case('refsegrs', 'car', 'car/NN', 'car', [1], ATT, categories=('car',)),
    'road-inside-road-marking': Case(
        'refsegrs', 'road marking', 'road/NN marking/NN', 'road marking', [1, 2], ATT,
        categories=('road marking', 'road')),
    'roof-dropped': Case(
        'refsegrs', 'vehicle parked on the roof of the building',
        'vehicle/NN parked/VBN on/IN the/DT roof/NN of/IN the/DT building/NN',
        'vehicle parked on the roof of the building', [1, 8], ATT,
        categories=('vehicle', 'building'), dropped=('on the roof', 'of the building')),
    'along': Case(
        'refsegrs', 'building along the road', 'building/NN along/IN the/DT road/NN',
        'building along the road', [1, 4], [2, 3, 4],
        categories=('building', 'road'), kept=('along the road',)),
    'by-without-determiner': Case(
        'refsegrs', 'low vegetation surrounded by building',
        'low/JJ vegetation/NN surrounded/VBN by/IN building/NN',
        'low vegetation surrounded by building', [1, 2, 5], [4, 5],
        categories=('low vegetation', 'building'), kept=('by building',)),
    'car-inside-cars': Case(
        'refsegrs', 'cars parked along the sidewalk',
        'cars/NNS parked/VBN along/IN the/DT sidewalk/NN', 'cars parked along the sidewalk',
        [1, 5], [3, 4, 5], categories=('car', 'sidewalk'), kept=('along the sidewalk',)),
    'car-inside-scar': Case(
        'refsegrs', 'a scar of bare soil next to the road',
        'a/DT scar/NN of/IN bare/JJ soil/NN next/JJ to/TO the/DT road/NN',
        'a scar of bare soil next to the road', [2, 9], ATT,
        categories=('car', 'road'), dropped=('of bare soil',)),
    'scar-before-car': Case(
        'refsegrs', 'the scar near the car', 'the/DT scar/NN near/IN the/DT car/NN',
        'the scar near the car', [2], [3, 4, 5], categories=('car',), kept=('near the car',)),
    'tree-inside-street': Case(
        'refsegrs', 'the van on the street', 'the/DT van/NN on/IN the/DT street/NN',
        'the van on the street', [2, 5], [3, 4, 5],
        categories=('van', 'tree'), kept=('on the street',)),
    'bikeway-drift': Case(
        'refsegrs', 'bikeway beside the white truck',
        'bikeway/NN beside/IN the/DT white/JJ truck/NN', 'bike ##way beside the white truck',
        [1, 5], [2, 3, 4, 5], categories=('bikeway', 'truck'),
        kept=('beside the white truck',),
        object_pieces=['bike', 'white'], position_pieces=['##way', 'beside', 'the', 'white']),
    'impervious-drift': Case(
        'refsegrs', 'impervious surface between the buildings',
        'impervious/JJ surface/NN between/IN the/DT buildings/NNS',
        'imp ##er ##vious surface between the buildings', [1, 2, 5], ATT,
        categories=('impervious surface', 'building'),
        object_pieces=['imp', '##er', 'between']),
    'with-phrase-kept': Case(
        'refsegrs', 'the truck with a trailer on the road',
        'the/DT truck/NN with/IN a/DT trailer/NN on/IN the/DT road/NN',
        'the truck with a trailer on the road', [2, 5, 8], [3, 4, 5, 6, 7, 8],
        categories=('truck', 'trailer', 'road'), kept=('with a trailer', 'on the road')),
    'in-front-of': Case(
        'refsegrs', 'the bus in front of the building',
        'the/DT bus/NN in/IN front/NN of/IN the/DT building/NN',
        'the bus in front of the building', [2, 7], [3, 4],
        categories=('bus', 'building'), kept=('in front',), dropped=('of the building',)),
    'no-category': Case(
        'refsegrs', 'the white thing on the left',
        'the/DT white/JJ thing/NN on/IN the/DT left/NN', 'the white thing on the left',
        [], [4, 5, 6], kept=('on the left',)),
    'no-category-no-phrase': Case(
        'refsegrs', 'the parking lot', 'the/DT parking/NN lot/NN', 'the parking lot', [], ATT),
    'hyphen-drift': Case(
        'refsegrs', 'heavy-duty vehicle driving on the road',
        'heavy-duty/JJ vehicle/NN driving/VBG on/IN the/DT road/NN',
        'heavy - duty vehicle driving on the road', [2, 6], [4, 5, 6],
        categories=('vehicle', 'road'), kept=('on the road',),
        object_pieces=['-', 'on'], position_pieces=['vehicle', 'driving', 'on']),
    'phrase-retokenised-longer': Case(
        # leaves "at the st." (3 words) -> word_tokenize gives at / the / st / . (4)
        'refsegrs', 'the bus at the st. john road',
        'the/DT bus/NN at/IN the/DT st./NN john/NNP road/NN',
        'the bus at the st . john road', [2, 7], [3, 4, 5, 6],
        categories=('bus', 'road'), kept=('at the st.',)),
    'truncated-phrase-past-L': Case(
        'refsegrs',
        'the long white truck and the small blue car and the dark gray van parked next to '
        'the building beside the road',
        'the/DT long/JJ white/JJ truck/NN and/CC the/DT small/JJ blue/JJ car/NN and/CC the/DT '
        'dark/JJ gray/JJ van/NN parked/VBN next/JJ to/TO the/DT building/NN beside/IN the/DT '
        'road/NN',
        'the long white truck and the small blue car and the dark gray van parked next to '
        'the building beside the road',
        # road (word 21) would be written at 22; "beside the road" (word 19) at 20..22:
        # both cut, and a phrase was kept, so no fallback: all-zero position mask
        [4, 9, 14, 19], [],
        categories=('truck', 'car', 'van', 'building', 'road'), kept=('beside the road',)),
}


def positions(length: int, indices: Sequence[int]) -> np.ndarray:
    mask = np.zeros(length, dtype=np.int64)
    mask[list(indices)] = 1
    return mask


class CaseTagger:
    """A pos_tag that knows the tags of one case's words only (picklable)."""

    def __init__(self, case_: Case) -> None:
        self.case = case_

    def __call__(self, words: List[str]) -> List[Tuple[str, str]]:
        assert words == self.case.words
        return list(zip(words, self.case.tags))


@pytest.fixture(scope='module')
def tokenizer():
    return load_tokenizer(demo_text_encoder())


@pytest.fixture(scope='module')
def encoders(tokenizer) -> Dict[str, ExpressionEncoder]:
    return {name: ExpressionEncoder(tokenizer, length) for name, length in LENGTH.items()}


def test_at_least_thirty_cases_of_both_datasets():
    per_dataset = {name: sum(c.dataset == name for c in CASES.values()) for name in LENGTH}
    assert len(CASES) >= 30 and min(per_dataset.values()) >= 10


@pytest.mark.parametrize('name', list(CASES))
def test_reference_masks(name, tokenizer, encoders):
    c = CASES[name]
    length = LENGTH[c.dataset]
    pieces = c.pieces.split()
    # the inputs the expectations rely on: NLTK's words and the real wordpieces
    assert data_free_word_tokenize(c.expression) == c.words
    assert tokenizer.tokenize(c.expression) == pieces
    tokens = (['[CLS]', *pieces, '[SEP]'] + ['[PAD]'] * length)[:length]
    used = min(len(pieces) + 2, length)
    ids = np.zeros(length, dtype=np.int64)
    ids[:used] = tokenizer.convert_tokens_to_ids(tokens[:used])
    attention = positions(length, range(used))

    builder = ReferenceMaskBuilder(c.dataset, tokenizer=encoders[c.dataset],
                                   word_tokenize=data_free_word_tokenize,
                                   pos_tag=CaseTagger(c))
    out = builder(c.expression)

    np.testing.assert_array_equal(out.input_ids, ids)
    np.testing.assert_array_equal(out.attention_mask, attention)
    np.testing.assert_array_equal(out.object_mask, positions(length, c.object))
    expected_position = attention if c.position == ATT else positions(length, c.position)
    np.testing.assert_array_equal(out.position_mask, expected_position)
    assert out.position_fallback == (c.position == ATT)
    assert out.categories == c.categories
    assert out.phrases == c.kept
    assert out.dropped_phrases == c.dropped
    for mask in out.tensors().values():
        assert mask.shape == (length,) and mask.dtype == np.int64
    if c.object_pieces is not None:
        assert [tokens[i] for i in np.flatnonzero(out.object_mask)] == c.object_pieces
    if c.position_pieces is not None:
        assert [tokens[i] for i in np.flatnonzero(out.position_mask)] == c.position_pieces


def test_truncation_loses_sep(tokenizer, encoders):
    c = CASES['truncated-rrsisd']
    out = ReferenceMaskBuilder('rrsisd', tokenizer=encoders['rrsisd'],
                               word_tokenize=data_free_word_tokenize,
                               pos_tag=CaseTagger(c))(c.expression)
    full = tokenizer(c.expression)['input_ids']
    assert len(full) == 28 and full[-1] == tokenizer.sep_token_id
    np.testing.assert_array_equal(out.input_ids, full[:22])
    assert tokenizer.sep_token_id not in out.input_ids.tolist()
    assert out.attention_mask.all()


def test_object_mask_needs_no_tagger_nor_tokenizer():
    def no_tagger(words):
        raise AssertionError('the object mask must not tag')

    builder = ReferenceMaskBuilder('refsegrs', word_tokenize=data_free_word_tokenize,
                                   pos_tag=no_tagger)
    mask, found = builder.object_mask('the scar near the car')
    np.testing.assert_array_equal(mask, positions(20, [2]))
    assert found == ('car',)
    with pytest.raises(ValueError, match='tokenizer='):
        builder.encode('car')


def test_category_lists_and_lengths():
    assert len(REFERENCE_CATEGORIES['rrsisd']) == 20
    assert len(REFERENCE_CATEGORIES['refsegrs']) == 14
    builder = ReferenceMaskBuilder('RefSegRS', word_tokenize=data_free_word_tokenize)
    assert builder.max_length == 20 and builder.dataset == 'refsegrs'
    assert ReferenceMaskBuilder('rrsisd', word_tokenize=str.split).max_length == 22
    with pytest.raises(ValueError, match="'rrsisd', 'refsegrs'"):
        ReferenceMaskBuilder('refcoco')


def test_bad_tagger_output_is_named():
    builder = ReferenceMaskBuilder('rrsisd', word_tokenize=data_free_word_tokenize,
                                   pos_tag=lambda words: [(w, 'NN') for w in words[:-1]])
    with pytest.raises(ValueError, match='pos_tag must return one'):
        builder.phrases(['a', 'ship'])


# ------------------------------------------------------------------- NLTK errors
def test_missing_nltk_names_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'nltk', None)  # `import nltk` -> ImportError
    with pytest.raises(ImportError, match='pip install nltk'):
        ReferenceMaskBuilder('rrsisd', word_tokenize=str.split, pos_tag=lambda w: w)


def test_missing_nltk_data_names_the_download_command(monkeypatch):
    asked = []

    def find(resource, *args, **kwargs):
        asked.append(resource)
        raise LookupError(resource)

    monkeypatch.setattr(nltk.data, 'find', find)
    builder = ReferenceMaskBuilder('rrsisd')  # defaults: checked on first use
    with pytest.raises(LookupError) as err:
        builder.word_tokenize('a ship')
    assert NLTK_DOWNLOAD_COMMAND in str(err.value) and "'punkt_tab'" in str(err.value)
    with pytest.raises(LookupError, match='averaged_perceptron_tagger_eng'):
        builder.pos_tag(['a', 'ship'])
    assert asked == ['tokenizers/punkt_tab', 'taggers/averaged_perceptron_tagger_eng']
    with pytest.raises(LookupError) as err:
        check_nltk_data()
    assert NLTK_DOWNLOAD_COMMAND == ('python -m nltk.downloader punkt_tab '
                                     'averaged_perceptron_tagger_eng')
    assert "['punkt_tab', 'averaged_perceptron_tagger_eng']" in str(err.value)


def test_injected_callables_need_no_nltk_data(monkeypatch, encoders):
    def find(resource, *args, **kwargs):
        raise LookupError(resource)

    monkeypatch.setattr(nltk.data, 'find', find)
    c = CASES['along']
    out = ReferenceMaskBuilder('refsegrs', tokenizer=encoders['refsegrs'],
                               word_tokenize=data_free_word_tokenize,
                               pos_tag=CaseTagger(c))(c.expression)
    np.testing.assert_array_equal(out.position_mask, positions(20, [2, 3, 4]))


def test_default_tagger_is_used_when_data_present(monkeypatch):
    monkeypatch.setattr(nltk.data, 'find', lambda resource, *a, **k: resource)
    monkeypatch.setattr(nltk, 'pos_tag', lambda words: [(w, 'NN') for w in words])
    builder = ReferenceMaskBuilder('refsegrs', word_tokenize=data_free_word_tokenize)
    # by/NN is no preposition: no chunk
    assert builder.phrases(['road', 'by', 'building']) == ([], [])


# ------------------------------------------------------------------ transform
def reference_transform(case_: Case, **kwargs):
    from mmseg.registry import TRANSFORMS

    cfg = dict(type='DecoupleAndTokenize', tokenizer=demo_text_encoder(),
               max_length=LENGTH[case_.dataset], dataset=case_.dataset,
               decoupling='reference', word_tokenize=data_free_word_tokenize,
               pos_tag=CaseTagger(case_))
    cfg.update(kwargs)
    return TRANSFORMS.build(cfg)


def test_transform_reference_mode_end_to_end(tokenizer):
    from mmseg.registry import TRANSFORMS

    c = CASES['two-categories-of-phrase']
    transform = reference_transform(c)
    assert transform.decoupling == 'reference'
    results = transform(dict(expression=c.expression))
    np.testing.assert_array_equal(results['object_mask'], positions(22, c.object))
    np.testing.assert_array_equal(results['position_mask'], positions(22, c.position))
    np.testing.assert_array_equal(results['attention_mask'], positions(22, range(16)))
    assert results['decoupled_category'] == ('basketball court', 'tennis court')
    assert results['object_phrase'] == 'basketball court'
    assert results['spatial_phrases'] == ['on the right', 'in the middle']
    packed = TRANSFORMS.build(dict(type='PackRefSegInputs'))(results)
    sample = packed['data_samples']
    assert sample.object_mask.tolist() == positions(22, c.object).tolist()
    assert sample.spatial_phrases == ['on the right', 'in the middle']
    # the project's decoupler gives other masks for the same text (word-piece spans)
    project = TRANSFORMS.build(dict(type='DecoupleAndTokenize', tokenizer=demo_text_encoder(),
                                    max_length=22, dataset='rrsisd'))
    assert project.decoupling == 'project'
    assert not np.array_equal(project(dict(expression=c.expression))['position_mask'],
                              results['position_mask'])
    # the transform survives pickling into dataloader workers
    clone = pickle.loads(pickle.dumps(reference_transform(CASES['along'])))
    out = clone(dict(expression=CASES['along'].expression))
    np.testing.assert_array_equal(out['position_mask'], positions(20, [2, 3, 4]))


def test_transform_all_zero_object_mask_and_no_category():
    c = CASES['no-category-no-phrase']
    results = reference_transform(c)(dict(expression=c.expression))
    assert not results['object_mask'].any()
    np.testing.assert_array_equal(results['position_mask'], positions(20, range(5)))
    assert results['object_phrase'] is None and results['decoupled_category'] == ()
    assert results['spatial_phrases'] == []


def test_transform_modes_and_errors():
    from mmseg.registry import TRANSFORMS

    def build(**kwargs):
        return TRANSFORMS.build(dict(type='DecoupleAndTokenize', tokenizer=demo_text_encoder(),
                                     max_length=12, **kwargs))

    off = build(decoupling='none')
    out = off(dict(expression='the ship on the left'))
    for key in ('object_mask', 'position_mask'):
        np.testing.assert_array_equal(out[key], out['attention_mask'])
    with pytest.raises(ValueError, match='dataset'):
        build(decoupling='reference')
    with pytest.raises(ValueError, match="dataset = one of \\['rrsisd', 'refsegrs'\\]"):
        build(decoupling='reference', dataset='refcoco')
    with pytest.raises(ValueError, match="'project', 'reference', 'none'"):
        build(decoupling='nltk')
    with pytest.raises(TypeError, match="unexpected keyword argument 'decouple'"):
        build(decouple=False)  # the former alias of decoupling='none'
    with pytest.raises(ValueError, match="for decoupling='reference' only"):
        build(pos_tag=nltk.pos_tag)


# -------------------------------------------------------------------- configs
@pytest.mark.parametrize('dataset,length', [('rrsisd', 22), ('refsegrs', 20)])
def test_reference_text_configs(dataset, length):
    base = Config.fromfile(str(CONFIGS / f'fianet_swin-b_{dataset}.py'))
    cfg = Config.fromfile(str(CONFIGS / f'fianet_swin-b_{dataset}_reference-text.py'))
    for loader in ('val_dataloader', 'test_dataloader'):
        pipeline = cfg[loader].dataset.pipeline
        base_pipeline = base[loader].dataset.pipeline
        assert len(pipeline) == len(base_pipeline)
        for step, base_step in zip(pipeline, base_pipeline):
            if step['type'] == 'DecoupleAndTokenize':
                assert step['decoupling'] == 'reference'
                assert step['dataset'] == dataset and step['max_length'] == length
                assert {k: v for k, v in step.items() if k != 'decoupling'} == base_step
            else:
                assert step == base_step
    assert cfg.test_pipeline == cfg.test_dataloader.dataset.pipeline
    # training and the model are the base config's
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.model == base.model


# ------------------------------------------------------------ measurement tool
def test_compare_tool_object_part_without_tagger(tmp_path, monkeypatch, capsys):
    from conftest import load_script

    from fianet_mmseg.text import mask_agreement

    tool = load_script('tools/analysis_tools/compare_text_masks.py')
    # as on a machine without NLTK data: data-free words, position part refused
    monkeypatch.setattr(mask_agreement, 'missing_nltk_data', lambda names: list(names))
    data = tmp_path / 'test.jsonl'
    data.write_text(json.dumps({'expression': 'car'}) + '\n\n'
                    + json.dumps({'expression': 'building along the road'}) + '\n')
    report = tool.main([str(tmp_path), '--dataset', 'refsegrs'])
    # car: both [1]; building along the road: project "building" [1], reference
    # building + road [1, 4] -> IoU 1/2
    assert report['object_mask'] == dict(expressions=2, exact_equal=0.5, mean_iou=0.75)
    assert report['position_mask'] is None
    assert 'position masks NOT compared' in capsys.readouterr().out
    with pytest.raises(ValueError, match='not overwriting'):
        tool.main([str(data), '--dataset', 'refsegrs', '--out', str(data)])
    data.write_text(json.dumps({'expression': 'car'}) + '\n{"expr": "car"}\n')
    with pytest.raises(ValueError, match=r'test\.jsonl, line 2: no non-empty string field'):
        tool.main([str(data), '--dataset', 'refsegrs'])


class DictTagger:
    """Hand-written tags of whole expressions (picklable)."""

    def __init__(self, tagged: Sequence[str]) -> None:
        self.tags = {tuple(i.rsplit('/', 1)[0] for i in t.split()):
                     [i.rsplit('/', 1)[1] for i in t.split()] for t in tagged}

    def __call__(self, words: List[str]) -> List[Tuple[str, str]]:
        return list(zip(words, self.tags[tuple(words)]))


def test_reference_text_config_runs_on_converted_data(rrsisd_root, tokenizer):
    from mmengine.runner import Runner

    assert tokenizer.tokenize('A large frustum of a cone chimney') == [
        'a', 'large', 'fr', '##ust', '##um', 'of', 'a', 'cone', 'chimney']

    cfg = Config.fromfile(str(CONFIGS / 'fianet_swin-b_rrsisd_reference-text.py'))
    loader = cfg.test_dataloader.copy()
    loader.update(batch_size=3, num_workers=0, persistent_workers=False, pin_memory=False)
    loader.dataset.data_root = str(rrsisd_root)
    tagger = DictTagger([
        'A/DT large/JJ frustum/NN of/IN a/DT cone/NN chimney/NN',
        'The/DT baseball/NN field/NN on/IN the/DT top/NN',
        'The/DT tennis/NN court/NN on/IN the/DT right/NN'])
    for step in loader.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step.update(tokenizer=demo_text_encoder(), word_tokenize=data_free_word_tokenize,
                        pos_tag=tagger)
    samples = next(iter(Runner.build_dataloader(loader)))['data_samples']
    expected = {  # object, position (word i at i + 1)
        # "of a cone" dropped -> attention: [CLS] a large fr ##ust ##um of a cone chimney [SEP]
        'A large frustum of a cone chimney': ([7], list(range(11))),
        'The baseball field on the top': ([2, 3], [4, 5, 6]),
        'The tennis court on the right': ([2, 3], [4, 5, 6]),
    }
    assert sorted(s.expression for s in samples) == sorted(expected)
    for sample in samples:
        obj, pos = expected[sample.expression]
        assert sample.object_mask.tolist() == positions(22, obj).tolist()
        assert sample.position_mask.tolist() == positions(22, pos).tolist()
