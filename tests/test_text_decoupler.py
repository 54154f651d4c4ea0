"""TextDecoupler: object phrase, category and spatial phrases of referring expressions.

Expectations are written by hand from the conventions in the docstring of
fianet_mmseg/text/decoupler.py and decoupling_rules.py.
"""
from __future__ import annotations

import json

import pytest

from fianet_mmseg.text import DecoupledText, TextDecoupler
from fianet_mmseg.text.lexicon import LEXICON_FILE, load_lexicon, plural, term_variants


@pytest.fixture(scope='module')
def decouplers() -> dict:
    return {name: TextDecoupler(name) for name in (None, 'rrsisd', 'refsegrs')}


# (expression, object phrase, category, spatial phrases)
RRSISD_STYLE = [
    ('The gray small windmill', 'gray small windmill', 'windmill', []),
    ('A tennis court on the lower left', 'tennis court', 'tennis court', ['on the lower left']),
    ('The airport in the middle', 'airport', 'airport', ['in the middle']),
    ('A oval ground track field', 'oval ground track field', 'ground track field', []),
    ('The basketball court is on the right of the tennis court in the middle',
     'basketball court', 'basketball court',
     ['on the right of the tennis court', 'in the middle']),
    ('The expressway toll station in the middle', 'expressway toll station',
     'expressway toll station', ['in the middle']),
    ('A windmill on the right', 'windmill', 'windmill', ['on the right']),
    ('A large frustum of a cone chimney', 'large frustum of a cone chimney', 'chimney', []),
    ('The baseball field on the top', 'baseball field', 'baseball field', ['on the top']),
    ('the gray storage tank on the left', 'gray storage tank', 'storage tank', ['on the left']),
    ('the leftmost tennis court', 'tennis court', 'tennis court', ['leftmost']),
    ('the upper storage tank', 'storage tank', 'storage tank', ['upper']),
    ('The storage tank on the lower left of the roundabout', 'storage tank', 'storage tank',
     ['on the lower left of the roundabout']),
    ('The vehicle in the upper left corner', 'vehicle', 'vehicle', ['in the upper left corner']),
    ('The ship on the far left', 'ship', 'ship', ['on the far left']),
    ('The dam is located in the middle', 'dam', 'dam', ['located in the middle']),
    ('A bridge over the river', 'bridge', 'bridge', ['over the river']),
    ('The overpass crossing the river', 'overpass', 'overpass', ['crossing the river']),
    ('The chimney next to the white building', 'chimney', 'chimney',
     ['next to the white building']),
    ('The harbor on the upper right of the image', 'harbor', 'harbor',
     ['on the upper right of the image']),
    ('The train station at the bottom', 'train station', 'train station', ['at the bottom']),
    ('The golf field surrounded by trees', 'golf field', 'golf field', ['surrounded by trees']),
    ('The stadium near the road', 'stadium', 'stadium', ['near the road']),
    ('The airplane in front of the terminal building', 'airplane', 'airplane',
     ['in front of the terminal building']),
    ('The bottom right storage tank', 'storage tank', 'storage tank', ['bottom right']),
    ('The plane on the top left', 'plane', 'airplane', ['on the top left']),
    ('Two white aircraft parked on the apron', 'Two white aircraft', 'airplane',
     ['parked on the apron']),
    ('The boat docked at the harbor on the right', 'boat', 'ship',
     ['docked at the harbor', 'on the right']),
    ('The large tank', 'large tank', 'storage tank', []),
    ('A baseball diamond in the lower right', 'baseball diamond', 'baseball field',
     ['in the lower right']),
    ('The small upper tank', 'small upper tank', 'storage tank', ['upper']),
    ('The ship left of the bridge', 'ship', 'ship', ['left of the bridge']),
    ('The tank is leftmost', 'tank', 'storage tank', ['leftmost']),
    ('On the left is a storage tank', 'storage tank', 'storage tank', ['On the left']),
    ('There is a ship next to it on the left', 'ship', 'ship', ['next to it', 'on the left']),
    ('The second storage tank from the left', 'second storage tank', 'storage tank',
     ['from the left']),
    ('The vehicle which is parked next to the building', 'vehicle', 'vehicle',
     ['parked next to the building']),
    ('The vehicle on the road between the bridge and the river', 'vehicle', 'vehicle',
     ['on the road', 'between the bridge and the river']),
    ('The tennis court on the top and left', 'tennis court', 'tennis court',
     ['on the top and left']),
    ('The storage tank and the ship', 'storage tank', 'storage tank', []),
    ('The white and gray storage tank', 'white and gray storage tank', 'storage tank', []),
    ('The ship lying directly below the bridge', 'ship', 'ship',
     ['lying directly below the bridge']),
    ('The windmill right next to the road', 'windmill', 'windmill', ['right next to the road']),
    ('A ship sailing on the sea', 'ship', 'ship', ['sailing on the sea']),
    ('A ship parked', 'ship', 'ship', []),
]

SPELLING = [  # release spellings, plurals, hyphens, capitals, punctuation
    ('storagetank', 'storagetank', 'storage tank', []),
    ('The tenniscourt on the left', 'tenniscourt', 'tennis court', ['on the left']),
    ('groundtrackfield', 'groundtrackfield', 'ground track field', []),
    ('Expressway-Service-area on the left side of the expressway', 'Expressway-Service-area',
     'expressway service area', ['on the left side of the expressway']),
    ('The Storage Tanks On The Left', 'Storage Tanks', 'storage tank', ['On The Left']),
    ('THE WINDMILL IN THE MIDDLE', 'WINDMILL', 'windmill', ['IN THE MIDDLE']),
    ('The ship, on the far left.', 'ship', 'ship', ['on the far left']),
    ('Two white storage tanks in the upper-left corner of the image', 'Two white storage tanks',
     'storage tank', ['in the upper-left corner of the image']),
    ('The  airport   in the middle', 'airport', 'airport', ['in the middle']),
]

UNKNOWN_OR_NONE = [
    ('The red thing on the left', 'red thing', None, ['on the left']),
    ('on the left', None, None, ['on the left']),
    ('The leftmost one', 'one', None, ['leftmost']),
    ('The left of the image', None, None, ['left of the image']),
]

REFSEGRS_STYLE = [
    ('car', 'car', 'car', []),
    ('road marking', 'road marking', 'road marking', []),
    ('heavy-duty vehicle', 'heavy-duty vehicle', 'vehicle', []),
    ('light-duty vehicle driving on the road', 'light-duty vehicle', 'vehicle',
     ['driving on the road']),
    ('building along the road', 'building', 'building', ['along the road']),
    ('low vegetation surrounded by building', 'low vegetation', 'low vegetation',
     ['surrounded by building']),
    ('building with a parking lot', 'building', 'building', []),
    ('The building with a red roof on the left', 'building', 'building', ['on the left']),
    ('trailer in the parking area', 'trailer', 'trailer', ['in the parking area']),
    ('long truck', 'long truck', 'truck', []),
    ('cars parked along the road', 'cars', 'car', ['parked along the road']),
    ('trees', 'trees', 'tree', []),
    ('impervious surface', 'impervious surface', 'impervious surface', []),
    ('bikeway next to the sidewalk', 'bikeway', 'bikeway', ['next to the sidewalk']),
    ('white van on the road', 'white van', 'van', ['on the road']),
    ('bus in the middle of the road', 'bus', 'bus', ['in the middle of the road']),
    ('road markings on the left lane', 'road markings', 'road marking', ['on the left lane']),
    ('sidewalk between the building and the road', 'sidewalk', 'sidewalk',
     ['between the building and the road']),
    ('Heavy-Duty Vehicles parked in the parking lot', 'Heavy-Duty Vehicles', 'vehicle',
     ['parked in the parking lot']),
    ('buildings', 'buildings', 'building', []),
    ('grass near the trees', 'grass', 'low vegetation', ['near the trees']),
    ('trees planted along the road', 'trees', 'tree', ['planted along the road']),
]


def _check(result: DecoupledText, expression: str, obj, category, spatial) -> None:
    assert result.expression == expression
    assert result.object_phrase == obj
    assert result.category == category
    assert result.spatial_phrases == spatial
    # The phrases are read through the spans: they must be offsets into the raw string.
    if obj is not None:
        start, end = result.object_span
        assert expression[start:end] == obj
    assert [expression[s:e] for s, e in result.spatial_spans] == spatial


@pytest.mark.parametrize('expression,obj,category,spatial',
                         RRSISD_STYLE + SPELLING + UNKNOWN_OR_NONE)
def test_rrsisd_style(decouplers, expression, obj, category, spatial):
    _check(decouplers['rrsisd'](expression), expression, obj, category, spatial)


@pytest.mark.parametrize('expression,obj,category,spatial', REFSEGRS_STYLE)
def test_refsegrs_style(decouplers, expression, obj, category, spatial):
    _check(decouplers['refsegrs'](expression), expression, obj, category, spatial)


def test_at_least_sixty_expressions():
    assert len(RRSISD_STYLE + SPELLING + UNKNOWN_OR_NONE + REFSEGRS_STYLE) >= 60


@pytest.mark.parametrize('expression,expected', [
    # (None: both data sets) a category's own name wins over the other's synonym
    ('car', {None: 'car', 'rrsisd': 'vehicle', 'refsegrs': 'car'}),
    ('the truck on the road', {None: 'truck', 'rrsisd': 'vehicle', 'refsegrs': 'truck'}),
    ('The gray storage tank on the left',
     {None: 'storage tank', 'rrsisd': 'storage tank', 'refsegrs': None}),
    ('road', {None: 'road', 'rrsisd': None, 'refsegrs': 'road'}),
    ('heavy-duty vehicle', {None: 'vehicle', 'rrsisd': 'vehicle', 'refsegrs': 'vehicle'}),
])
def test_category_depends_on_dataset(decouplers, expression, expected):
    assert {name: d(expression).category for name, d in decouplers.items()} == expected


# RRSIS-D release category names (instances.json) -> canonical name.
RELEASE_NAMES = {
    'Expressway-Service-area': 'expressway service area',
    'Expressway-toll-station': 'expressway toll station',
    'airplane': 'airplane', 'airport': 'airport', 'baseballfield': 'baseball field',
    'basketballcourt': 'basketball court', 'bridge': 'bridge', 'chimney': 'chimney',
    'dam': 'dam', 'golffield': 'golf field', 'groundtrackfield': 'ground track field',
    'harbor': 'harbor', 'overpass': 'overpass', 'ship': 'ship', 'stadium': 'stadium',
    'storagetank': 'storage tank', 'tenniscourt': 'tennis court',
    'trainstation': 'train station', 'vehicle': 'vehicle', 'windmill': 'windmill',
}


@pytest.mark.parametrize('name,canonical', sorted(RELEASE_NAMES.items()))
def test_rrsisd_release_names(decouplers, name, canonical):
    result = decouplers['rrsisd'](name)
    assert (result.object_phrase, result.category) == (name, canonical)


def test_categories(decouplers):
    assert decouplers['rrsisd'].categories == sorted(set(RELEASE_NAMES.values()))
    assert decouplers['refsegrs'].categories == [
        'road', 'vehicle', 'car', 'van', 'building', 'truck', 'trailer', 'bus', 'road marking',
        'bikeway', 'sidewalk', 'tree', 'low vegetation', 'impervious surface']
    both = decouplers[None].categories
    assert len(both) == 20 + 14 - 1  # 'vehicle' is in both
    assert set(both) == set(RELEASE_NAMES.values()) | set(decouplers['refsegrs'].categories)


def test_spans_are_character_offsets():
    result = TextDecoupler()('The Storage Tanks On The Left')
    assert result.object_span == (4, 17)
    assert result.spatial_spans == ((18, 29),)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match=r"'coco'.*rrsisd.*refsegrs"):
        TextDecoupler('coco')


def test_empty_and_bad_input(decouplers):
    for text in ('', '   '):
        result = decouplers[None](text)
        assert (result.object_span, result.category, result.spatial_spans) == (None, None, ())
    with pytest.raises(TypeError, match='str'):
        decouplers[None](None)


def test_decoupled_text_checks_spans():
    with pytest.raises(ValueError, match='inside the expression'):
        DecoupledText('a car', (2, 9), 'car', ())
    with pytest.raises(ValueError, match='inside the expression'):
        DecoupledText('a car', None, None, ((3, 3),))
    text = DecoupledText('a car on the road', [2, 5], 'car', [[6, 17]])
    assert text.object_span == (2, 5) and text.spatial_spans == ((6, 17),)
    assert text.object_phrase == 'car' and text.spatial_phrases == ['on the road']


def test_spacy_model_is_gone():
    """The decoupler runs its rules on spaCy's blank English tokeniser only."""
    decoupler = TextDecoupler('rrsisd')
    assert decoupler.nlp.pipe_names == ['fianet_decoupling_rules']
    with pytest.raises(TypeError, match='spacy_model'):
        TextDecoupler('rrsisd', spacy_model='en_core_web_sm')


def test_lexicon_variants():
    assert plural('bus') == 'buses' and plural('lorry') == 'lorries'
    assert plural('chimney') == 'chimneys' and plural('tree') == 'trees'
    variants = term_variants('Storage Tank')
    for form in ('storage tank', 'storage tanks', 'storage-tank', 'storagetank',
                 'storagetanks'):
        assert form in variants
    assert 'heavy-duty vehicles' in term_variants('heavy-duty vehicle')


def test_lexicon_errors_name_file_and_key(tmp_path):
    with open(LEXICON_FILE, encoding='utf-8') as file:
        raw = json.load(file)
    del raw['spatial']['prepositions']
    broken = tmp_path / 'missing_key.json'
    broken.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r'missing_key\.json.*spatial\.prepositions'):
        load_lexicon(None, str(broken))

    with open(LEXICON_FILE, encoding='utf-8') as file:
        raw = json.load(file)
    raw['categories']['rrsisd']['ship'].append('tank')  # also a storage tank synonym
    clash = tmp_path / 'clash.json'
    clash.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"clash\.json.*'tank'"):
        load_lexicon('rrsisd', str(clash))
