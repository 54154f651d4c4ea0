"""The synthetic RRSIS-D-layout generator: format, masks, expressions, determinism."""
import json
import os
import pickle
import platform
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import load_script
from pycocotools import mask as mask_utils

import fianet_mmseg.apis.synthetic_demo as demo
from fianet_mmseg.datasets import synthetic
from fianet_mmseg.datasets.synthetic import generate_synthetic_rrsisd
from fianet_mmseg.utils.cpu_process import tune_cpu_process

FIXTURE = Path(__file__).parent / 'fixtures' / 'formats' / 'rrsisd'
REPO = Path(__file__).resolve().parents[1]

# The test's own reading of the expressions (independent of the generator).
CATEGORY_PHRASES = {'storage tank': 'storagetank', 'tennis court': 'tenniscourt',
                    'vehicle': 'vehicle', 'airplane': 'airplane', 'ship': 'ship',
                    'building': 'building'}
COLOURS_RGB = {'red': (200, 45, 40), 'green': (60, 175, 70), 'blue': (45, 85, 200),
               'white': (235, 235, 230), 'yellow': (230, 200, 50), 'gray': (150, 150, 155)}
SIZE_WORDS = ('small', 'medium', 'large')
FILLER_WORDS = {'the', 'a', 'an', 'on', 'at', 'in', 'that', 'is', 'side', 'corner', 'of',
                'image'}


def load_dataset(root: Path):
    with open(root / 'rrsisd' / 'refs(unc).p', 'rb') as file:
        refs = pickle.load(file)
    instances = json.loads((root / 'rrsisd' / 'instances.json').read_text())
    meta = json.loads((root / 'synthetic_meta.json').read_text())
    return refs, instances, meta


def decode(segmentation, height, width) -> np.ndarray:
    """Either release form -> (H, W) bool: decoded maps summed, > 0."""
    if isinstance(segmentation[0], dict):
        maps = mask_utils.decode(segmentation)
    else:
        maps = mask_utils.decode(mask_utils.frPyObjects(segmentation, height, width))
    return maps.sum(axis=2) > 0


def parse(expression: str) -> dict:
    """Category, colour, size and position words of an expression."""
    text = expression.lower()
    named = {}
    for phrase, name in CATEGORY_PHRASES.items():
        if phrase in text:
            named['category'] = name
            text = text.replace(phrase, ' ')
    words = text.split()
    for word in words:
        if word in COLOURS_RGB:
            named['colour'] = word
        elif word in SIZE_WORDS:
            named['size'] = word
        elif word in ('upper', 'top'):
            named['vertical'] = 0
        elif word in ('lower', 'bottom'):
            named['vertical'] = 2
        elif word in ('left', 'right'):
            named['horizontal'] = 0 if word == 'left' else 2
        elif word in ('middle', 'center'):
            named['horizontal'] = named['vertical'] = 1
        else:
            assert word in FILLER_WORDS, f'unexpected word {word!r} in {expression!r}'
    return named


def third(coordinate: float, side: int, margin: float = 2.0):
    """Third of the image holding the coordinate, None within ``margin`` px of a border."""
    for index in range(3):
        low, high = index * side / 3, (index + 1) * side / 3
        if (index == 0 or coordinate >= low + margin) and \
                (index == 2 or coordinate <= high - margin):
            return index
    return None


def _load_objects(tmp_path_factory, **options):
    root = tmp_path_factory.mktemp('synthetic')
    summary = generate_synthetic_rrsisd(str(root), num_images=40, seed=3, **options)
    refs, instances, meta = load_dataset(root)
    height_width = {image['id']: (image['height'], image['width'])
                    for image in instances['images']}
    objects = {}
    for ann in instances['annotations']:
        height, width = height_width[ann['image_id']]
        mask = decode(ann['segmentation'], height, width)
        ys, xs = np.nonzero(mask)
        objects[ann['id']] = dict(ann=ann, mask=mask,
                                  centre=((xs.min() + xs.max() + 1) / 2,
                                          (ys.min() + ys.max() + 1) / 2))
    for record in meta['objects']:
        objects[record['ann_id']].update(record)
    return dict(root=root, summary=summary, refs=refs, instances=instances, meta=meta,
                objects=objects)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return _load_objects(tmp_path_factory)


@pytest.fixture(scope='module')
def demo_dataset(tmp_path_factory):
    """The demo's options: small images, position phrases preferred."""
    return _load_objects(tmp_path_factory, image_size=64, max_objects=3, object_scale=1.7,
                         position_preference=1.0)


def test_layout_and_keys_match_the_release(dataset):
    with open(FIXTURE / 'rrsisd' / 'refs(unc).p', 'rb') as file:
        release_refs = pickle.load(file)
    release = json.loads((FIXTURE / 'rrsisd' / 'instances.json').read_text())
    refs, instances = dataset['refs'], dataset['instances']

    assert isinstance(refs, list) and len(refs) == dataset['summary']['references']
    assert {frozenset(r) for r in refs} == {frozenset(release_refs[0])}
    assert {frozenset(s) for r in refs for s in r['sentences']} == \
        {frozenset(release_refs[0]['sentences'][0])}
    assert set(instances) == set(release)
    for part in ('images', 'annotations', 'categories'):
        assert {frozenset(x) for x in instances[part]} == {frozenset(release[part][0])}, part
    assert 'categories_id' in instances['annotations'][0]
    assert {c['name'] for c in instances['categories']} == \
        {'vehicle', 'storagetank', 'airplane', 'ship', 'tenniscourt', 'building'}

    image_dir = dataset['root'] / 'images' / 'rrsisd' / 'JPEGImages'
    ids = [image['id'] for image in instances['images']]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert any(b - a > 1 for a, b in zip(ids, ids[1:], strict=False))  # not contiguous
    for image in instances['images']:
        assert image['file_name'] == f"{image['id']:05d}.jpg"
        pixels = cv2.imread(str(image_dir / image['file_name']))
        assert pixels.shape == (image['height'], image['width'], 3)
    assert sorted(os.listdir(image_dir)) == sorted(i['file_name'] for i in instances['images'])


def test_references_agree_with_annotations(dataset):
    refs, instances = dataset['refs'], dataset['instances']
    annotations = {a['id']: a for a in instances['annotations']}
    images = {i['id']: i for i in instances['images']}
    split_of_image = {}
    for ref in refs:
        ann = annotations[ref['ann_id']]
        assert ann['image_id'] == ref['image_id']
        assert ann['categories_id'] == ref['category_id']
        assert images[ref['image_id']]['file_name'] == ref['file_name']
        assert ref['split'] in ('train', 'val', 'test')
        assert split_of_image.setdefault(ref['image_id'], ref['split']) == ref['split']
        assert ref['sent_ids'] == [s['sent_id'] for s in ref['sentences']]
        for sentence in ref['sentences']:
            assert sentence['sent'] == sentence['raw'].lower()
            assert sentence['tokens'] == sentence['sent'].split()
    # one reference per object
    assert sorted(r['ann_id'] for r in refs) == sorted(annotations)
    assert set(split_of_image.values()) == {'train', 'val', 'test'}
    assert list(split_of_image.values()).count('train') == 32  # 80 % of 40 images


def test_masks_are_the_drawn_objects(dataset):
    instances, objects = dataset['instances'], dataset['objects']
    image_dir = dataset['root'] / 'images' / 'rrsisd' / 'JPEGImages'
    forms = {type(o['ann']['segmentation'][0]) for o in objects.values()}
    assert forms == {dict, list}  # RLE and polygons both occur
    for o in objects.values():
        if isinstance(o['ann']['segmentation'][0], dict):
            assert isinstance(o['ann']['segmentation'][0]['counts'], str)
    by_image = defaultdict(list)
    for o in objects.values():
        by_image[o['ann']['image_id']].append(o)
    for image in instances['images']:
        rgb = cv2.imread(str(image_dir / image['file_name']))[..., ::-1].astype(float)
        members = by_image[image['id']]
        assert 2 <= len(members) <= 5
        union = np.zeros((image['height'], image['width']), int)
        for o in members:
            mask = o['mask']
            assert 12 <= mask.sum() < 0.2 * mask.size
            ys, xs = np.nonzero(mask)
            assert o['ann']['bbox'] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            union += mask
            # the pixels under the mask show the object's colour
            core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            median = np.median(rgb[core], axis=0)
            nearest = min(COLOURS_RGB, key=lambda c: np.linalg.norm(median - COLOURS_RGB[c]))
            assert nearest == o['colour'], (image['file_name'], o['ann_id'])
            # and the pixels around it do not
            ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            ring &= ~cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            around = np.median(rgb[ring], axis=0)
            assert np.linalg.norm(around - COLOURS_RGB[o['colour']]) > 40
        assert union.max() == 1  # disjoint objects


@pytest.mark.parametrize('data', ['dataset', 'demo_dataset'])
def test_every_expression_names_exactly_one_object(data, request):
    dataset = request.getfixturevalue(data)
    objects, size = dataset['objects'], dataset['meta']['image_size']
    by_image = defaultdict(list)
    for o in objects.values():
        by_image[o['ann']['image_id']].append(o)
    for ref in dataset['refs']:
        named = parse(ref['sentences'][0]['raw'])
        assert 'category' in named, ref['sentences'][0]['raw']

        def matches(o, named=named):
            """Named attributes hold, or cannot be ruled out (centre near a border)."""
            regions = {'horizontal': third(o['centre'][0], size),
                       'vertical': third(o['centre'][1], size)}
            return (o['category'] == named['category']
                    and o['colour'] == named.get('colour', o['colour'])
                    and o['size'] == named.get('size', o['size'])
                    and all(regions[axis] in (None, named[axis])
                            for axis in ('horizontal', 'vertical') if axis in named))

        found = [o['ann_id'] for o in by_image[ref['image_id']] if matches(o)]
        assert found == [ref['ann_id']], ref['sentences'][0]['raw']
        referred = objects[ref['ann_id']]
        for axis, coordinate in (('horizontal', 0), ('vertical', 1)):
            if axis in named:  # the referred object itself is clearly in the named third
                assert third(referred['centre'][coordinate], size) == named[axis]


def test_size_words_follow_the_mask_area(dataset):
    by_image_category = defaultdict(list)
    for o in dataset['objects'].values():
        by_image_category[o['ann']['image_id'], o['category']].append(o)
    compared = 0
    for group in by_image_category.values():
        for a in group:
            for b in group:
                if SIZE_WORDS.index(a['size']) < SIZE_WORDS.index(b['size']):
                    assert b['mask'].sum() > 1.3 * a['mask'].sum()
                    compared += 1
    assert compared > 0


def test_text_is_needed(dataset):
    by_image = defaultdict(list)
    for o in dataset['objects'].values():
        by_image[o['ann']['image_id']].append(o)
    repeated_category = sum(len({o['category'] for o in group}) < len(group)
                            for group in by_image.values())
    repeated_colour = sum(len({o['colour'] for o in group}) < len(group)
                          for group in by_image.values())
    assert repeated_category >= 0.5 * len(by_image)
    assert repeated_colour >= 0.5 * len(by_image)
    beyond_category = [len(parse(r['sentences'][0]['raw'])) > 1 for r in dataset['refs']]
    assert np.mean(beyond_category) >= 0.4
    # and the kinds of words vary: every attribute kind serves in some expression
    kinds = {key for r in dataset['refs'] for key in parse(r['sentences'][0]['raw'])}
    assert kinds == {'category', 'colour', 'size', 'horizontal', 'vertical'}


def test_same_seed_same_data_set(tmp_path):
    generate_synthetic_rrsisd(str(tmp_path / 'a'), num_images=6, seed=11)
    generate_synthetic_rrsisd(str(tmp_path / 'b'), num_images=6, seed=11)
    generate_synthetic_rrsisd(str(tmp_path / 'c'), num_images=6, seed=12)
    a, b, c = (load_dataset(tmp_path / name) for name in 'abc')
    assert a == b
    assert a[0] != c[0]
    images = Path('images', 'rrsisd', 'JPEGImages')
    for name in os.listdir(tmp_path / 'a' / images):
        assert (tmp_path / 'a' / images / name).read_bytes() == \
            (tmp_path / 'b' / images / name).read_bytes()


def test_refuses_to_overwrite(tmp_path):
    root = tmp_path / 'out'
    root.mkdir()
    (root / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not empty'):
        generate_synthetic_rrsisd(str(root), num_images=5)
    assert os.listdir(root) == ['notes.txt']

    generate_synthetic_rrsisd(str(root), num_images=8, overwrite=True)
    generate_synthetic_rrsisd(str(root), num_images=4, overwrite=True)
    refs, instances, _ = load_dataset(root)
    assert len(instances['images']) == 4
    assert len(os.listdir(root / 'images' / 'rrsisd' / 'JPEGImages')) == 4  # stale ones gone
    assert (root / 'notes.txt').read_text() == 'mine'


def test_refuses_to_overwrite_what_may_be_a_real_release(tmp_path):
    root = tmp_path / 'release'
    shutil.copytree(FIXTURE, root)
    before = sorted(p.name for p in root.rglob('*'))
    with pytest.raises(FileExistsError, match='real release'):
        generate_synthetic_rrsisd(str(root), num_images=5, overwrite=True)
    assert sorted(p.name for p in root.rglob('*')) == before


def test_command_line(tmp_path, capsys):
    cli = load_script('data_prep/synthetic.py')
    cli.main(['--out', str(tmp_path / 'd'), '--num-images', '5', '--image-size', '96',
              '--seed', '4'])
    summary = json.loads(capsys.readouterr().out)
    assert summary['images'] == 5
    _, instances, _ = load_dataset(tmp_path / 'd')
    assert {(i['height'], i['width']) for i in instances['images']} == {(96, 96)}
    with pytest.raises(SystemExit, match='not empty'):
        cli.main(['--out', str(tmp_path / 'd'), '--num-images', '5'])


def test_the_rrsisd_converter_reads_it(dataset, tmp_path):
    from fianet_mmseg.datasets.converters import convert_rrsisd

    convert_rrsisd(str(dataset['root']), str(tmp_path / 'converted'))
    records = [json.loads(line) for split in ('train', 'val', 'test')
               for line in (tmp_path / 'converted' / f'{split}.jsonl').read_text().splitlines()]
    expressions = {r['ref_id']: r['sentences'][0]['raw'] for r in dataset['refs']}
    assert len(records) == len(expressions)
    assert {r['ref_id']: r['expression'] for r in records} == expressions


def _annotations(root: Path) -> list:
    return json.loads((root / 'rrsisd' / 'instances.json').read_text())['annotations']


def test_position_preference_picks_a_position_among_equally_cheap_ways():
    """Two small vehicles, red on the left and blue on the right: "the red vehicle" and
    "the vehicle on the left" both single out the red one at the same cost."""
    vehicle = synthetic.CATEGORIES[0]

    def scene_object(colour, horizontal):
        return synthetic.SceneObject(vehicle, colour, 'small', [], np.zeros((4, 4), np.uint8),
                                     0.0, (0.0, 0.0), 10.0, 5.0, region=(horizontal, 1))

    red, blue = scene_object('red', 0), scene_object('blue', 2)
    rng = np.random.default_rng(0)
    even = [synthetic.choose_attributes(red, [blue], rng) for _ in range(40)]
    assert {str(a) for a in even} == {"['colour']", "[('side', 0, None)]"}
    preferred = [synthetic.choose_attributes(red, [blue], rng, position_preference=1.0)
                 for _ in range(40)]
    assert all(a == [('side', 0, None)] for a in preferred)


def test_position_preference_is_recorded_and_checked(tmp_path):
    generate_synthetic_rrsisd(str(tmp_path / 'pos'), num_images=5, seed=4, image_size=64,
                              position_preference=1.0)
    meta = json.loads((tmp_path / 'pos' / 'synthetic_meta.json').read_text())
    assert meta['position_preference'] == 1.0 and meta['image_size'] == 64
    with pytest.raises(ValueError, match='position_preference'):
        generate_synthetic_rrsisd(str(tmp_path / 'bad'), num_images=5, position_preference=2)


def test_difficulty_options(tmp_path):
    """``max_objects`` caps objects per image; ``object_scale`` grows the objects."""
    generate_synthetic_rrsisd(str(tmp_path / 'base'), num_images=30, seed=5)
    generate_synthetic_rrsisd(str(tmp_path / 'few'), num_images=30, seed=5, max_objects=2)
    generate_synthetic_rrsisd(str(tmp_path / 'big'), num_images=30, seed=5, object_scale=1.5)
    per_image = defaultdict(int)
    for ann in _annotations(tmp_path / 'few'):
        per_image[ann['image_id']] += 1
    assert max(per_image.values()) == 2
    base_counts = defaultdict(int)
    for ann in _annotations(tmp_path / 'base'):
        base_counts[ann['image_id']] += 1
    assert max(base_counts.values()) > 2

    def mean_bbox_area(root):
        boxes = [a['bbox'] for a in _annotations(root)]
        return np.mean([(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes])

    assert mean_bbox_area(tmp_path / 'big') > 1.6 * mean_bbox_area(tmp_path / 'base')
    with pytest.raises(ValueError, match='max_objects'):
        generate_synthetic_rrsisd(str(tmp_path / 'bad'), num_images=5, max_objects=6)


def test_demo_prepares_data_as_the_config_says_and_reuses_it(tmp_path, capsys):
    raw, out = str(tmp_path / 'raw'), str(tmp_path / 'converted')
    options = dict(num_images=12, max_objects=2, seed=3)
    demo.prepare_data(options, raw, out)
    meta = json.loads((tmp_path / 'raw' / 'synthetic_meta.json').read_text())
    assert meta['num_images'] == 12 and meta['max_objects'] == 2
    test_lines = (tmp_path / 'converted' / 'test.jsonl').read_text().splitlines()
    assert test_lines
    image = os.path.realpath(os.path.join(out, json.loads(test_lines[0])['img_path']))
    assert image.startswith(os.path.realpath(raw))
    capsys.readouterr()

    demo.prepare_data(options, raw, out)  # same options: nothing regenerated
    assert 'using the converted synthetic data' in capsys.readouterr().out

    demo.prepare_data(dict(options, num_images=15), raw, out)  # other options: regenerated
    assert json.loads((tmp_path / 'raw' / 'synthetic_meta.json').read_text())['num_images'] == 15
    records = sum(len((tmp_path / 'converted' / f'{s}.jsonl').read_text().splitlines())
                  for s in ('train', 'val', 'test'))
    assert records == len(json.loads(
        (tmp_path / 'raw' / 'synthetic_meta.json').read_text())['objects'])

    user_dir = tmp_path / 'user'
    user_dir.mkdir()
    (user_dir / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError):
        demo.prepare_data(options, str(user_dir), out)
    assert (user_dir / 'notes.txt').read_text() == 'mine'


# ------------------------------------------------------------------ the demo script
def test_demo_scores_by_expression_type_by_hand(tmp_path):
    raw = tmp_path / 'raw'
    raw.mkdir()
    named = [{'category': 'ship', 'horizontal': 'left'}, {'category': 'ship', 'colour': 'red'},
             {'category': 'ship', 'colour': 'red', 'vertical': 'top'},
             {'category': 'ship', 'size': 'small'}, {'category': 'ship'}]
    (raw / 'synthetic_meta.json').write_text(json.dumps(
        {'objects': [{'ref_id': i, 'named': n} for i, n in enumerate(named)]}))
    ious = [0.6, 0.4, 0.2, 0.5, 1.0]
    samples = tmp_path / 'samples.jsonl'
    samples.write_text(''.join(json.dumps({'ref_id': i, 'IoU': iou}) + '\n'
                               for i, iou in enumerate(ious)))
    scores = demo.scores_by_expression_type(str(samples), str(raw))
    # position wins over colour (ref 2); the others by their one attribute
    assert scores['position'] == dict(count=2, p50=50.0, miou=pytest.approx(40.0))
    assert scores['colour'] == dict(count=1, p50=0.0, miou=pytest.approx(40.0))
    assert scores['size'] == dict(count=1, p50=100.0, miou=pytest.approx(50.0))
    assert scores['category only'] == dict(count=1, p50=100.0, miou=pytest.approx(100.0))


class _FakeRunner:
    """What :class:`RunTimeEstimate` reads from mmengine's Runner."""

    def __init__(self):
        self.iter, self.max_iters, self.max_epochs = 0, 400, 4
        self.train_dataloader = type('Loader', (), {'batch_size': 16})()


def _run_estimate(demo, monkeypatch, step_s, **kwargs):
    clock = {'now': 100.0}
    monkeypatch.setattr(demo.time, 'perf_counter', lambda: clock['now'])
    monkeypatch.setattr(demo.time, 'time', lambda: clock['now'])
    hook = demo.RunTimeEstimate(start=100.0 - 30.0, eval_samples=160, skip=5, measure=20,
                                **kwargs)
    runner = _FakeRunner()
    for index in range(25):
        runner.iter = index
        clock['now'] += step_s
        hook.after_train_iter(runner, index)
    return hook


def test_demo_run_time_estimate_by_hand(monkeypatch, capsys):
    hook = _run_estimate(demo, monkeypatch, step_s=0.5, budget_s=900)
    # 30 s before training + 25 steps done + 375 steps left at 0.5 s + the test passes:
    # 160 samples at EVAL_COST of a training sample (0.5 s / 16) each
    expected = 30 + 25 * 0.5 + 375 * 0.5 + 160 * demo.EVAL_COST * 0.5 / 16
    assert hook.estimate['step_s'] == pytest.approx(0.5)
    assert hook.estimate['total_s'] == pytest.approx(expected)
    out = capsys.readouterr().out
    assert out.startswith('demo: 0.50 s per training step (iterations 6-25, batch 16): '
                          f'400 steps, about {expected / 60:.1f} min in all')
    assert 'slower than the demo is sized for' not in out


def test_demo_run_time_estimate_warns_and_stops(monkeypatch, capsys):
    with pytest.raises(demo.EstimateDoneError):
        _run_estimate(demo, monkeypatch, step_s=3.0, budget_s=900, stop=True)
    out = capsys.readouterr().out
    # about 20 min in all: what is not training (30 s before it, the test passes) plus
    # whole epochs of 100 steps of 3 s must fit in the 15 min budget
    fixed = 30 + 160 * demo.EVAL_COST * 3.0 / 16
    fit = int((900 - fixed) // 300)
    assert 'slower than the demo is sized for (15 min on 2 CPU cores)' in out
    assert f'--epochs {fit}`' in out


def test_demo_cpu_settings_respect_the_user(monkeypatch):
    monkeypatch.setenv('MALLOC_ARENA_MAX', '2')
    assert tune_cpu_process() == {}  # the user chose the allocator: nothing changed
    for name in [name for name in os.environ if name.startswith('MALLOC_')]:
        monkeypatch.delenv(name)
    expected = {'mallopt': 'freed memory kept'} if platform.libc_ver()[0] == 'glibc' else {}
    assert tune_cpu_process() == expected
