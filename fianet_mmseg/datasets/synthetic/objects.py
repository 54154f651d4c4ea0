"""The synthetic scenes' vocabulary and geometry: categories, colours, sizes, regions, shapes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

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


def local_polygons(name: str, length: float, width: float) -> List[np.ndarray]:
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


def shape_width(name: str, length: float, rng: np.random.Generator) -> float:
    """Width of a shape of the given length."""
    ratios = {'vehicle': 0.5, 'storagetank': 1.0, 'ship': 0.28, 'airplane': 0.95,
              'tenniscourt': 0.55}
    if name == 'building':
        return length * float(rng.uniform(0.6, 1.0))
    return length * ratios[name]


def to_image(points: np.ndarray, angle: float, anchor: Tuple[float, float]) -> np.ndarray:
    """Local ``(K, 2)`` points -> image coordinates (rotation then translation)."""
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return points @ rotation.T + np.asarray(anchor)


def rasterise(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons -> ``(H, W)`` uint8 0/1 mask (pycocotools, union of the polygons)."""
    rles = mask_utils.frPyObjects([list(p) for p in polygons], height, width)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles)))


def mask_centre(mask: np.ndarray) -> Tuple[float, float]:
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
