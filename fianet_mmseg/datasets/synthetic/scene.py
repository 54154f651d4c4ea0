"""Synthetic scenes: objects placed apart on a textured background, each describable."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .expressions import choose_attributes, expression_text, named_attributes
from .objects import (
    BACKGROUNDS,
    CATEGORIES,
    COLOURS,
    OBJECT_GAP,
    REFERENCE_IMAGE_SIZE,
    SIZES,
    Category,
    SceneObject,
    local_polygons,
    mask_centre,
    rasterise,
    region_of,
    shape_width,
    to_image,
)


def place(obj_spec: Tuple[Category, str, str], occupied: np.ndarray, image_size: int,
           scale: float, rng: np.random.Generator, tries: int = 40) -> SceneObject | None:
    """Put one object where it fits inside the image, apart from ``occupied``."""
    category, colour, size = obj_spec
    length = category.lengths[SIZES.index(size)] * scale * float(rng.uniform(0.93, 1.07))
    width = shape_width(category.name, length, rng)
    local = local_polygons(category.name, length, width)
    reach = 0.5 * np.hypot(length, width) + 2
    if 2 * reach >= image_size:
        return None
    for _ in range(tries):
        angle = float(rng.uniform(0, np.pi))
        anchor = (float(rng.uniform(reach, image_size - reach)),
                  float(rng.uniform(reach, image_size - reach)))
        polygons = [np.round(to_image(p, angle, anchor), 1).ravel().tolist() for p in local]
        mask = rasterise(polygons, image_size, image_size)
        if mask.any() and not (mask & occupied).any():
            return SceneObject(category, colour, size, polygons, mask, angle, anchor,
                               length, width)
    return None


def sample_specs(rng: np.random.Generator,
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


def sample_scene(image_size: int, rng: np.random.Generator, max_objects: int = 5,
                  object_scale: float = 1.0, position_preference: float = 0.0,
                  max_attempts: int = 500) -> Tuple[List[SceneObject], List[str], int]:
    """Objects of one image and their expressions; retries until all are describable."""
    scale = image_size / REFERENCE_IMAGE_SIZE * object_scale
    gap_kernel = np.ones((2 * max(1, round(OBJECT_GAP * scale)) + 1,) * 2, np.uint8)
    for attempt in range(1, max_attempts + 1):
        specs = sorted(sample_specs(rng, max_objects),
                       key=lambda s: -s[0].lengths[SIZES.index(s[2])])
        occupied = np.zeros((image_size, image_size), np.uint8)
        objects = []
        for spec in specs:
            obj = place(spec, occupied, image_size, scale, rng)
            if obj is None:
                break
            occupied |= cv2.dilate(obj.mask, gap_kernel)
            centre = mask_centre(obj.mask)
            obj.centre = centre
            obj.region = (region_of(centre[0], image_size), region_of(centre[1], image_size))
            objects.append(obj)
        if len(objects) < len(specs):
            continue
        expressions = []
        for obj in objects:
            others = [o for o in objects if o is not obj]
            attributes = choose_attributes(obj, others, rng, position_preference)
            if attributes is None:
                break
            obj.named = named_attributes(obj, attributes)
            expressions.append(expression_text(obj, attributes, rng))
        if len(expressions) == len(objects):
            return objects, expressions, attempt
    raise RuntimeError(f'no describable scene of {image_size} px after {max_attempts} tries')


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
    return [to_image(line, obj.angle, obj.anchor) for line in lines]


def paint(objects: Sequence[SceneObject], image_size: int,
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
