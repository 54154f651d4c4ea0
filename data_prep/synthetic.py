"""A small synthetic referring data set in the RRSIS-D release layout.

Aerial-like scenes (textured grass / soil / asphalt) hold 2-5 disjoint objects
of six categories (vehicle, storage tank, airplane, ship, tennis court,
building) in six colours and three sizes. Every object gets one reference
whose expression names the category plus the fewest of colour, size and
position that make it the only match in its image, e.g. "The storage tank",
"The red vehicle", "A large airplane", "The small blue ship on the right".

Positions are image regions of the object centre (the centre of its mask's
bounding box): thirds of the width (left / center / right) and of the height
(top / middle / bottom). A centre closer than ``REGION_MARGIN`` (share of the
image side) to a third's border has no region on that axis: position words
neither describe nor exclude it, so every position word is unambiguous.

Written files (as the release, see docs/data_preparation.md)::

    ROOT/rrsisd/refs(unc).p              # pickle: list of reference dicts
    ROOT/rrsisd/instances.json           # images, annotations, categories
    ROOT/images/rrsisd/JPEGImages/<5-digit id>.jpg
    ROOT/synthetic_meta.json             # not in the release: object attributes

``synthetic_meta.json`` keeps what the release format cannot: each object's
colour and size and the attributes each expression names (for tests and
analysis).

Usage (from the repository root)::

    python data_prep/synthetic.py --out data/synthetic_raw [--num-images 600] \
        [--image-size 128] [--seed 0] [--max-objects 5] [--object-scale 1.0]
        [--position-preference 0.0] [--overwrite]

then convert it like the real release::

    python data_prep/rrsisd.py --src data/synthetic_raw --out data/synthetic
"""
import argparse
import itertools
import json
import os
import os.path as osp
import pickle
import re
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

FORMAT_VERSION = 'fianet-mmseg synthetic rrsisd v1'
META_FILE = 'synthetic_meta.json'
REFS_FILE = osp.join('rrsisd', 'refs(unc).p')
INSTANCES_FILE = osp.join('rrsisd', 'instances.json')
IMAGE_DIR = osp.join('images', 'rrsisd', 'JPEGImages')
_IMAGE_NAME = re.compile(r'^\d{5}\.jpg$')

REFERENCE_IMAGE_SIZE = 128  # object sizes below are for this image side; scaled otherwise


@dataclass(frozen=True)
class Category:
    """A category: its RRSIS-D style name, its words in text and its sizes."""

    name: str                       # in instances.json (RRSIS-D spelling)
    phrase: str                     # in expressions
    category_id: int                # RRSIS-D's id where the category exists there
    lengths: Tuple[int, int, int]   # nominal length (px at 128 px) per size class


CATEGORIES: Tuple[Category, ...] = (
    Category('vehicle', 'vehicle', 18, (11, 16, 23)),
    Category('storagetank', 'storage tank', 15, (12, 17, 24)),
    Category('airplane', 'airplane', 2, (18, 26, 36)),
    Category('ship', 'ship', 13, (18, 26, 36)),
    Category('tenniscourt', 'tennis court', 16, (18, 25, 34)),
    Category('building', 'building', 20, (14, 20, 28)),  # not an RRSIS-D class: new id
)
SIZES = ('small', 'medium', 'large')
COLOURS: Dict[str, Tuple[int, int, int]] = {  # RGB
    'red': (200, 45, 40),
    'green': (60, 175, 70),
    'blue': (45, 85, 200),
    'white': (235, 235, 230),
    'yellow': (230, 200, 50),
    'gray': (150, 150, 155),
}
BACKGROUNDS: Dict[str, Tuple[int, int, int]] = {  # RGB
    'grass': (78, 102, 58),
    'soil': (128, 106, 80),
    'asphalt': (72, 72, 76),
}
HORIZONTAL = ('left', 'center', 'right')
VERTICAL = ('top', 'middle', 'bottom')
REGION_MARGIN = 0.04   # share of the image side around each third's border
OBJECT_GAP = 3         # px between objects (at 128 px)
SPLIT_SHARES = (('train', 0.8), ('val', 0.1), ('test', 0.1))


@dataclass
class SceneObject:
    """One drawn object and its attributes."""

    category: Category
    colour: str
    size: str
    polygons: List[List[float]]       # COCO polygons (x, y pairs, pixel-corner coordinates)
    mask: np.ndarray                  # (H, W) uint8 0/1, rasterised from ``polygons``
    angle: float
    anchor: Tuple[float, float]       # placement point (x, y) of the local frame
    length: float
    width: float
    centre: Tuple[float, float] = (0.0, 0.0)
    region: Tuple[int | None, int | None] = (None, None)  # (horizontal, vertical)
    named: Dict[str, str] = field(default_factory=dict)


# -- geometry ------------------------------------------------------------------------------
def _local_polygons(name: str, length: float, width: float) -> List[np.ndarray]:
    """Polygons ``(K, 2)`` of a shape in its frame: x along the length, centred at 0."""
    half_l, half_w = length / 2, width / 2
    if name in ('vehicle', 'tenniscourt', 'building'):
        return [np.array([[-half_l, -half_w], [half_l, -half_w], [half_l, half_w],
                          [-half_l, half_w]])]
    if name == 'storagetank':
        angles = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        return [np.stack([half_l * np.cos(angles), half_l * np.sin(angles)], axis=1)]
    if name == 'ship':   # flat stern at -x, pointed bow at +x
        return [np.array([[-half_l, -half_w], [0.45 * half_l, -half_w], [half_l, 0],
                          [0.45 * half_l, half_w], [-half_l, half_w]])]
    if name == 'airplane':  # fuselage, two swept wings, two tailplanes
        body = 0.08 * length
        fuselage = np.array([[-half_l, -body], [0.8 * half_l, -body], [half_l, 0],
                             [0.8 * half_l, body], [-half_l, body]])
        polygons = [fuselage]
        for side in (-1, 1):
            polygons.append(np.array([[0.22 * half_l, 0], [-0.22 * half_l, side * half_w],
                                      [-0.42 * half_l, side * half_w], [-0.12 * half_l, 0]]))
            polygons.append(np.array([[-0.7 * half_l, 0], [-0.92 * half_l, side * 0.36 * half_w],
                                      [-half_l, side * 0.36 * half_w], [-half_l, 0]]))
        return polygons
    raise ValueError(f'unknown category {name!r}')


def _shape_width(name: str, length: float, rng: np.random.Generator) -> float:
    """Width of a shape of the given length."""
    ratios = {'vehicle': 0.5, 'storagetank': 1.0, 'ship': 0.28, 'airplane': 0.95,
              'tenniscourt': 0.55}
    if name == 'building':
        return length * float(rng.uniform(0.6, 1.0))
    return length * ratios[name]


def _to_image(points: np.ndarray, angle: float, anchor: Tuple[float, float]) -> np.ndarray:
    """Local ``(K, 2)`` points -> image coordinates (rotation then translation)."""
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return points @ rotation.T + np.asarray(anchor)


def rasterise(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons -> ``(H, W)`` uint8 0/1 mask (pycocotools, union of the polygons)."""
    rles = mask_utils.frPyObjects([list(p) for p in polygons], height, width)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles)))


def _mask_centre(mask: np.ndarray) -> Tuple[float, float]:
    """Centre ``(x, y)`` of the mask's bounding box, in pixel-corner coordinates."""
    ys, xs = np.nonzero(mask)
    return (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2


def region_of(coordinate: float, image_side: int,
              margin: float = REGION_MARGIN) -> int | None:
    """Third (0, 1, 2) holding ``coordinate``; None within the margin of a border."""
    third, pad = image_side / 3, margin * image_side
    for index in range(3):
        low = index * third + (pad if index > 0 else -np.inf)
        high = (index + 1) * third - (pad if index < 2 else -np.inf)
        if low < coordinate < high:
            return index
    return None


# -- scene sampling ------------------------------------------------------------------------
def _place(obj_spec: Tuple[Category, str, str], occupied: np.ndarray, image_size: int,
           scale: float, rng: np.random.Generator, tries: int = 40) -> SceneObject | None:
    """Put one object where it fits inside the image, apart from ``occupied``."""
    category, colour, size = obj_spec
    length = category.lengths[SIZES.index(size)] * scale * float(rng.uniform(0.93, 1.07))
    width = _shape_width(category.name, length, rng)
    local = _local_polygons(category.name, length, width)
    reach = 0.5 * np.hypot(length, width) + 2
    if 2 * reach >= image_size:
        return None
    for _ in range(tries):
        angle = float(rng.uniform(0, np.pi))
        anchor = (float(rng.uniform(reach, image_size - reach)),
                  float(rng.uniform(reach, image_size - reach)))
        polygons = [np.round(_to_image(p, angle, anchor), 1).ravel().tolist() for p in local]
        mask = rasterise(polygons, image_size, image_size)
        if mask.any() and not (mask & occupied).any():
            return SceneObject(category, colour, size, polygons, mask, angle, anchor,
                               length, width)
    return None


def _sample_specs(rng: np.random.Generator,
                  max_objects: int = 5) -> List[Tuple[Category, str, str]]:
    """Categories, colours and sizes of 2 to ``max_objects`` objects, from small pools.

    Small pools make repeated categories, colours and sizes common, so that the
    category alone rarely tells the referred object.
    """
    count = int(rng.integers(2, max_objects + 1))
    num_categories = min(count, int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25])))
    num_colours = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3]))
    num_sizes = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    category_pool = rng.choice(len(CATEGORIES), num_categories, replace=False)
    colour_pool = rng.choice(list(COLOURS), num_colours, replace=False)
    size_pool = rng.choice(SIZES, num_sizes, replace=False)
    return [(CATEGORIES[int(rng.choice(category_pool))], str(rng.choice(colour_pool)),
             str(rng.choice(size_pool))) for _ in range(count)]


# -- expressions ---------------------------------------------------------------------------
def _position_options(obj: SceneObject) -> List[Tuple[str, int | None, int | None]]:
    """Position phrases usable for an object: (kind, horizontal, vertical) regions named."""
    horizontal, vertical = obj.region
    options = []
    if horizontal in (0, 2):
        options.append(('side', horizontal, None))
    if vertical in (0, 2):
        options.append(('edge', None, vertical))
    if horizontal in (0, 2) and vertical in (0, 2):
        options.append(('corner', horizontal, vertical))
    if horizontal == 1 and vertical == 1:
        options.append(('center', 1, 1))
    return options


def _excluded(other: SceneObject, target: SceneObject, attributes: Sequence) -> bool:
    """Whether naming ``attributes`` of the target certainly rules out ``other``."""
    if other.category != target.category:
        return True
    for attribute in attributes:
        if attribute == 'colour' and other.colour != target.colour:
            return True
        if attribute == 'size' and other.size != target.size:
            return True
        if isinstance(attribute, tuple):
            for named, actual in zip(attribute[1:], other.region, strict=True):
                if named is not None and actual is not None and named != actual:
                    return True
    return False


def _choose_attributes(target: SceneObject, others: Sequence[SceneObject],
                       rng: np.random.Generator,
                       position_preference: float = 0.0) -> list | None:
    """The cheapest set of attributes (besides the category) that leaves one match.

    Among equally cheap sets one is drawn at random; with probability
    ``position_preference`` the draw is only among those naming a position
    (when there are such sets).
    """
    optional = [['colour'], ['size'], _position_options(target)]
    candidates = []
    for use in itertools.product([False, True], repeat=3):
        choices = [options if chosen else [None] for options, chosen in
                   zip(optional, use, strict=True)]
        for combo in itertools.product(*choices):
            attributes = [a for a in combo if a is not None]
            if all(_excluded(other, target, attributes) for other in others):
                cost = len(attributes) + sum(0.5 for a in attributes
                                             if isinstance(a, tuple) and a[0] == 'corner')
                candidates.append((cost, attributes))
    if not candidates:
        return None
    best = min(cost for cost, _ in candidates)
    cheapest = [attributes for cost, attributes in candidates if cost == best]
    if position_preference > 0:
        with_position = [attributes for attributes in cheapest
                         if any(isinstance(a, tuple) for a in attributes)]
        if with_position and rng.random() < position_preference:
            cheapest = with_position
    return cheapest[int(rng.integers(len(cheapest)))]


def _position_phrase(position: tuple, rng: np.random.Generator) -> str:
    """Words for a position option, e.g. "on the upper left"."""
    kind, horizontal, vertical = position
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if kind == 'side':
        side = HORIZONTAL[horizontal]
        return pick([f'on the {side}', f'on the {side} side', f'at the {side}'])
    if kind == 'edge':
        edge = VERTICAL[vertical]
        return pick([f'at the {edge}', f'on the {edge}'])
    if kind == 'corner':
        side = HORIZONTAL[horizontal]
        upper = 'upper' if vertical == 0 else 'lower'
        top = VERTICAL[vertical]
        return pick([f'on the {upper} {side}', f'in the {upper} {side} corner',
                     f'at the {top} {side}'])
    return pick(['in the middle', 'in the center', 'in the middle of the image'])


def _expression(target: SceneObject, attributes: list, rng: np.random.Generator) -> str:
    """Expression text, first letter upper-case as in the release."""
    words = []
    if 'size' in attributes:
        words.append(target.size)
    if 'colour' in attributes:
        words.append(target.colour)
    words.append(target.category.phrase)
    article = 'an' if words[0][0] in 'aeiou' else 'a'
    if rng.random() < 0.7:
        article = 'the'
    text = ' '.join([article, *words])
    positions = [a for a in attributes if isinstance(a, tuple)]
    if positions:
        joiner = ' that is ' if rng.random() < 0.2 else ' '
        text += joiner + _position_phrase(positions[0], rng)
    return text[0].upper() + text[1:]


def _named(target: SceneObject, attributes: list) -> Dict[str, str]:
    """The attribute values an expression names (for the meta file)."""
    named = {'category': target.category.name}
    for attribute in attributes:
        if attribute in ('colour', 'size'):
            named[attribute] = getattr(target, attribute)
        else:
            _, horizontal, vertical = attribute
            if horizontal is not None:
                named['horizontal'] = HORIZONTAL[horizontal]
            if vertical is not None:
                named['vertical'] = VERTICAL[vertical]
    return named


def _sample_scene(image_size: int, rng: np.random.Generator, max_objects: int = 5,
                  object_scale: float = 1.0, position_preference: float = 0.0,
                  max_attempts: int = 500) -> Tuple[List[SceneObject], List[str], int]:
    """Objects of one image and their expressions; retries until all are describable."""
    scale = image_size / REFERENCE_IMAGE_SIZE * object_scale
    gap_kernel = np.ones((2 * max(1, round(OBJECT_GAP * scale)) + 1,) * 2, np.uint8)
    for attempt in range(1, max_attempts + 1):
        specs = sorted(_sample_specs(rng, max_objects),
                       key=lambda s: -s[0].lengths[SIZES.index(s[2])])
        occupied = np.zeros((image_size, image_size), np.uint8)
        objects = []
        for spec in specs:
            obj = _place(spec, occupied, image_size, scale, rng)
            if obj is None:
                break
            occupied |= cv2.dilate(obj.mask, gap_kernel)
            centre = _mask_centre(obj.mask)
            obj.centre = centre
            obj.region = (region_of(centre[0], image_size), region_of(centre[1], image_size))
            objects.append(obj)
        if len(objects) < len(specs):
            continue
        expressions = []
        for obj in objects:
            others = [o for o in objects if o is not obj]
            attributes = _choose_attributes(obj, others, rng, position_preference)
            if attributes is None:
                break
            obj.named = _named(obj, attributes)
            expressions.append(_expression(obj, attributes, rng))
        if len(expressions) == len(objects):
            return objects, expressions, attempt
    raise RuntimeError(f'no describable scene of {image_size} px after {max_attempts} tries')


# -- painting ------------------------------------------------------------------------------
def _background(kind: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """``(S, S, 3)`` float RGB texture: base colour, smooth blotches and pixel noise."""
    base = np.array(BACKGROUNDS[kind], np.float32)
    blotches = cv2.resize(rng.normal(0, 1, (6, 6, 3)).astype(np.float32),
                          (image_size, image_size), interpolation=cv2.INTER_CUBIC)
    shade = cv2.resize(rng.normal(0, 1, (12, 12)).astype(np.float32),
                       (image_size, image_size), interpolation=cv2.INTER_CUBIC)
    image = base + 3 * blotches + 10 * shade[..., None]
    if kind == 'soil':  # ploughed furrows
        angle = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:image_size, 0:image_size]
        image += 6 * np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 0.9)[..., None]
    return image + rng.normal(0, 5, image.shape)


def _detail_lines(obj: SceneObject) -> List[np.ndarray]:
    """Polylines ``(K, 2)`` in image coordinates drawn inside an object."""
    half_l, half_w = obj.length / 2, obj.width / 2
    name = obj.category.name
    if name == 'tenniscourt':  # inner outline, net, service lines
        inset_l, inset_w = 0.85 * half_l, 0.75 * half_w
        lines = [np.array([[-inset_l, -inset_w], [inset_l, -inset_w], [inset_l, inset_w],
                           [-inset_l, inset_w], [-inset_l, -inset_w]]),
                 np.array([[0, -half_w], [0, half_w]])]
        lines += [np.array([[x, -inset_w], [x, inset_w]]) for x in (-0.45 * half_l, 0.45 * half_l)]
        lines.append(np.array([[-0.45 * half_l, 0], [0.45 * half_l, 0]]))
    elif name == 'building':  # roof ridge
        lines = [np.array([[-0.7 * half_l, 0], [0.7 * half_l, 0]])]
    elif name == 'ship':  # deck line
        lines = [np.array([[-0.8 * half_l, 0], [0.35 * half_l, 0]])]
    elif name == 'vehicle':  # windscreen
        lines = [np.array([[0.35 * half_l, -0.7 * half_w], [0.35 * half_l, 0.7 * half_w]])]
    elif name == 'storagetank':  # roof ring
        angles = np.linspace(0, 2 * np.pi, 25)
        lines = [0.6 * half_l * np.stack([np.cos(angles), np.sin(angles)], axis=1)]
    else:
        lines = []
    return [_to_image(line, obj.angle, obj.anchor) for line in lines]


def _paint(objects: Sequence[SceneObject], image_size: int,
           rng: np.random.Generator) -> Tuple[np.ndarray, str]:
    """``(S, S, 3)`` uint8 RGB image of the objects on a textured background."""
    kind = str(rng.choice(list(BACKGROUNDS)))
    image = _background(kind, image_size, rng)
    union = np.zeros((image_size, image_size), np.uint8)
    for obj in objects:
        union |= obj.mask
    shift = np.float32([[1, 0, rng.integers(1, 3)], [0, 1, rng.integers(1, 3)]])
    shadow = cv2.warpAffine(union, shift, (image_size, image_size)).astype(bool)
    shadow &= ~union.astype(bool)
    image[shadow] *= 0.65
    erode_kernel = np.ones((3, 3), np.uint8)
    for obj in objects:
        inside = obj.mask.astype(bool)
        colour = np.array(COLOURS[obj.colour], np.float32)
        image[inside] = colour + rng.normal(0, 4, (int(inside.sum()), 3))
        lines = np.zeros(obj.mask.shape, np.uint8)
        scale = 1 << 4  # cv2 sub-pixel bits
        cv2.polylines(lines, [np.round(line * scale).astype(np.int32)
                              for line in _detail_lines(obj)],
                      isClosed=False, color=1, thickness=1, shift=4)
        if obj.category.name == 'tenniscourt':
            line_colour = np.float32((90, 90, 90) if obj.colour == 'white' else (240, 240, 240))
        else:
            line_colour = colour * 0.6
        image[lines.astype(bool) & inside] = line_colour
        edge = inside & ~cv2.erode(obj.mask, erode_kernel).astype(bool)
        image[edge] *= 0.75
    return np.clip(np.round(image), 0, 255).astype(np.uint8), kind


# -- writing -------------------------------------------------------------------------------
def _annotation(obj: SceneObject, ann_id: int, image_id: int, image_size: int,
                as_polygons: bool) -> dict:
    """An ``instances.json`` annotation in the release's conventions."""
    rle = mask_utils.encode(np.asfortranarray(obj.mask))
    x, y, w, h = (int(round(v)) for v in mask_utils.toBbox(rle))
    if as_polygons:
        segmentation = [list(p) for p in obj.polygons]
    else:
        segmentation = [{'size': [image_size, image_size], 'counts': rle['counts'].decode()}]
    area = 0.0  # geometric polygon area, like the release's (not a pixel count)
    for flat in obj.polygons:
        xs, ys = np.array(flat[0::2]), np.array(flat[1::2])
        area += 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
    return {'id': ann_id, 'image_id': image_id, 'bbox': [x, y, x + w, y + h],
            'area': round(area, 1), 'segmentation': segmentation,
            'categories_id': obj.category.category_id}


def _prepare_root(root: str, overwrite: bool) -> None:
    """Refuse a non-empty root unless ``overwrite``; then remove only our previous files."""
    if not osp.isdir(root):
        if osp.exists(root):
            raise NotADirectoryError(f'{root} exists and is not a directory')
        return
    if not os.listdir(root):
        return
    if not overwrite:
        raise FileExistsError(f'{root} is not empty; choose another output directory or '
                              'pass overwrite=True (--overwrite) to replace a synthetic data set')
    release_paths = [REFS_FILE, INSTANCES_FILE, IMAGE_DIR]
    if not osp.isfile(osp.join(root, META_FILE)) and any(
            osp.exists(osp.join(root, p)) for p in release_paths):
        raise FileExistsError(f'{root} holds RRSIS-D files but no {META_FILE}: it may be a '
                              'real release, refusing to overwrite it even with overwrite=True')
    for name in (REFS_FILE, INSTANCES_FILE, META_FILE):
        if osp.isfile(osp.join(root, name)):
            os.remove(osp.join(root, name))
    image_dir = osp.join(root, IMAGE_DIR)
    if osp.isdir(image_dir):
        for name in os.listdir(image_dir):
            if _IMAGE_NAME.match(name):
                os.remove(osp.join(image_dir, name))


def _split_names(num_images: int, rng: np.random.Generator) -> List[str]:
    """train/val/test per image index (80/10/10, at least one each), shuffled."""
    num_val = max(1, round(SPLIT_SHARES[1][1] * num_images))
    num_test = max(1, round(SPLIT_SHARES[2][1] * num_images))
    names = ['val'] * num_val + ['test'] * num_test
    names = ['train'] * (num_images - len(names)) + names
    return [names[i] for i in rng.permutation(num_images)]


def generate_synthetic_rrsisd(root: str, num_images: int = 600, image_size: int = 128,
                              seed: int = 0, overwrite: bool = False,
                              polygon_share: float = 0.3, max_objects: int = 5,
                              object_scale: float = 1.0,
                              position_preference: float = 0.0) -> dict:
    """Write a synthetic referring data set in the RRSIS-D layout under ``root``.

    Args:
        root: output directory (the root a user would give for RRSIS-D).
        num_images: images to draw (3 to 10000); about 3.5 references each.
        image_size: side of the square images in px (64 to 1024); object sizes
            scale with it (12-40 px at 128).
        seed: the same seed gives the same data set.
        overwrite: replace a previous synthetic data set in ``root``.
        polygon_share: share of annotations written as polygon lists instead
            of RLE (both forms occur in the release).
        max_objects: most objects per image (2 to 5); fewer makes the task easier.
        object_scale: multiplies the object sizes (0.5 to 2).
        position_preference: probability (0 to 1) that an expression names a
            position when that is one of the cheapest ways to single out its
            object (e.g. "the vehicle on the left" rather than "the red
            vehicle"); 0 draws among the cheapest ways alike. More position
            phrases give a model more to learn positions from.

    Returns:
        A summary: counts per split and category, how often images repeat a
        category or colour, how many expressions need more than the category.
    """
    if not 3 <= num_images <= 10000:
        raise ValueError(f'num_images must be within 3..10000, got {num_images}')
    if not 64 <= image_size <= 1024:
        raise ValueError(f'image_size must be within 64..1024, got {image_size}')
    if not 2 <= max_objects <= 5:
        raise ValueError(f'max_objects must be within 2..5, got {max_objects}')
    if not 0.5 <= object_scale <= 2:
        raise ValueError(f'object_scale must be within 0.5..2, got {object_scale}')
    if not 0 <= position_preference <= 1:
        raise ValueError(f'position_preference must be within 0..1, got {position_preference}')
    _prepare_root(root, overwrite)
    os.makedirs(osp.join(root, 'rrsisd'), exist_ok=True)
    os.makedirs(osp.join(root, IMAGE_DIR), exist_ok=True)

    rng = np.random.default_rng(seed)
    image_ids = 100 + np.cumsum(rng.integers(1, 8, num_images))  # five digits, gaps
    splits = _split_names(num_images, rng)
    images, annotations, refs, meta_objects = [], [], [], []
    attempts = repeated_category = repeated_colour = needs_more = 0
    for image_id, split in zip(image_ids.tolist(), splits, strict=True):
        objects, expressions, tries = _sample_scene(image_size, rng, max_objects,
                                                    object_scale, position_preference)
        attempts += tries
        pixels, background = _paint(objects, image_size, rng)
        file_name = f'{image_id:05d}.jpg'
        cv2.imwrite(osp.join(root, IMAGE_DIR, file_name), pixels[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({'id': image_id, 'file_name': file_name, 'height': image_size,
                       'width': image_size})
        repeated_category += len({o.category.name for o in objects}) < len(objects)
        repeated_colour += len({o.colour for o in objects}) < len(objects)
        for obj, text in zip(objects, expressions, strict=True):
            ann_id, ref_id, sent_id = len(annotations) + 1, len(refs), 50000 + len(refs)
            annotations.append(_annotation(obj, ann_id, image_id, image_size,
                                           bool(rng.random() < polygon_share)))
            sent = text.lower()
            refs.append({'ref_id': ref_id, 'ann_id': ann_id, 'image_id': image_id,
                         'split': split, 'file_name': file_name,
                         'category_id': obj.category.category_id, 'sent_ids': [sent_id],
                         'sentences': [{'raw': text, 'sent': sent, 'tokens': sent.split(),
                                        'sent_id': sent_id}]})
            needs_more += len(obj.named) > 1
            meta_objects.append({'ann_id': ann_id, 'image_id': image_id, 'ref_id': ref_id,
                                 'category': obj.category.name, 'colour': obj.colour,
                                 'size': obj.size, 'background': background,
                                 'named': obj.named})

    categories = [{'id': c.category_id, 'name': c.name} for c in CATEGORIES]
    with open(osp.join(root, INSTANCES_FILE), 'w', encoding='utf-8') as file:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories}, file)
    with open(osp.join(root, REFS_FILE), 'wb') as file:
        pickle.dump(refs, file, protocol=2)
    meta = {'format': FORMAT_VERSION, 'seed': seed, 'num_images': num_images,
            'image_size': image_size, 'max_objects': max_objects,
            'object_scale': object_scale, 'polygon_share': polygon_share,
            'position_preference': position_preference,
            'region_margin': REGION_MARGIN,
            'colours': {name: list(rgb) for name, rgb in COLOURS.items()},
            'sizes': list(SIZES),
            'categories': {c.name: c.phrase for c in CATEGORIES},
            'objects': meta_objects}
    with open(osp.join(root, META_FILE), 'w', encoding='utf-8') as file:
        json.dump(meta, file, indent=1)

    per_split = {name: {'images': splits.count(name),
                        'references': sum(r['split'] == name for r in refs)}
                 for name, _ in SPLIT_SHARES}
    return {
        'root': str(root),
        'images': num_images,
        'references': len(refs),
        'splits': per_split,
        'categories': {c.name: sum(o['category'] == c.name for o in meta_objects)
                       for c in CATEGORIES},
        'images_with_repeated_category': repeated_category / num_images,
        'images_with_repeated_colour': repeated_colour / num_images,
        'expressions_beyond_category': needs_more / len(refs),
        'scene_attempts_per_image': attempts / num_images,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output root directory')
    parser.add_argument('--num-images', type=int, default=600,
                        help='number of images (about 3 references each)')
    parser.add_argument('--image-size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--max-objects', type=int, default=5, help='most objects per image (2-5)')
    parser.add_argument('--object-scale', type=float, default=1.0,
                        help='multiplies object sizes (0.5-2)')
    parser.add_argument('--position-preference', type=float, default=0.0,
                        help='probability (0-1) of naming a position when that is one of '
                        'the cheapest ways to single out the object')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a synthetic data set already in --out')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        summary = generate_synthetic_rrsisd(args.out, num_images=args.num_images,
                                            image_size=args.image_size, seed=args.seed,
                                            overwrite=args.overwrite,
                                            max_objects=args.max_objects,
                                            object_scale=args.object_scale,
                                            position_preference=args.position_preference)
    except (FileExistsError, NotADirectoryError, ValueError) as error:
        raise SystemExit(f'error: {error}') from error
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
