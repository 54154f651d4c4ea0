"""The synthetic data set written in the RRSIS-D release layout (refs pickle, instances, JPEGs)."""
from __future__ import annotations

import json
import os
import os.path as osp
import pickle
import re
from typing import List

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .objects import CATEGORIES, COLOURS, REGION_MARGIN, SIZES, SceneObject
from .scene import paint, sample_scene

FORMAT_VERSION = 'fianet-mmseg synthetic rrsisd v1'
META_FILE = 'synthetic_meta.json'
REFS_FILE = osp.join('rrsisd', 'refs(unc).p')
INSTANCES_FILE = osp.join('rrsisd', 'instances.json')
IMAGE_DIR = osp.join('images', 'rrsisd', 'JPEGImages')
_IMAGE_NAME = re.compile(r'^\d{5}\.jpg$')
SPLIT_SHARES = (('train', 0.8), ('val', 0.1), ('test', 0.1))


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
        objects, expressions, tries = sample_scene(image_size, rng, max_objects,
                                                    object_scale, position_preference)
        attempts += tries
        pixels, background = paint(objects, image_size, rng)
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
