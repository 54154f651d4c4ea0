"""Compare the black boxes painted on the device after the resize with the reference's boxes.

The reference (docs/reference.md 6c) paints 20-60 black 32x32 boxes on the ORIGINAL image and
then resizes it (Pillow's antialiased bilinear filter); the GPU data path
(``configs/fianet_swin-b_rrsisd_gpu-datapath.py``) draws the same boxes in the loader but
``BatchBlackBoxes`` paints them on the device, after the resize. For each image this draws one
set of boxes and prints, in grey levels (0-255) of the network input, the largest and mean
difference between the two, the mean over the pixels the boxes reach, the share of pixels more
than one grey level off, and the largest difference out of the boxes' reach (0: identical);
for image files also what the loader's steps cost per image in this process (decoding,
painting the boxes of a selected reference, resizing). Examples::

    python tools/analysis_tools/black_boxes_on_device.py data/rrsisd_raw/images/rrsisd/JPEGImages
    python tools/analysis_tools/black_boxes_on_device.py --textured 8 --image-size 800
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import fianet_mmseg  # noqa: F401  (the mmcv stand-ins before mmseg loads)
from fianet_mmseg.benchmarking.data_path import (
    compare_black_boxes,
    loader_step_times,
    read_rgb,
    textured_image,
)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('images', nargs='*', help='image files or folders of images')
    add('--limit', type=int, default=50, help='most images to read (default: 50)')
    add('--textured', type=int, default=0,
        help='also this many generated textured images (smooth colours + noise)')
    add('--image-size', type=int, default=800, help='side of the generated images')
    add('--size', type=int, nargs=2, default=(480, 480), metavar=('H', 'W'),
        help='network input size (default: 480 480)')
    add('--seed', type=int, default=0, help="seed of numpy's generator for the boxes")
    args = parser.parse_args(argv)
    if not args.images and not args.textured:
        parser.error('give image files / folders or --textured N')
    return args


def image_paths(inputs: Sequence[str], limit: int) -> list:
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f'no such image or folder: {item}')
    return [str(p) for p in paths[:limit]]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    paths = image_paths(args.images, args.limit)
    images = list(read_rgb(paths))
    images += [textured_image(args.image_size, seed) for seed in range(args.textured)]
    result = compare_black_boxes(images, tuple(args.size), seed=args.seed)
    print(f'{"image":>5} {"boxes":>5} {"max":>6} {"mean":>7} {"in reach":>8} '
          f'{"mean there":>10} {">1 level":>8} {"max out of reach":>16}')
    for index, row in enumerate([*result['images'], dict(result['all'], boxes='-')]):
        name = index if index < len(result['images']) else 'all'
        print(f'{name:>5} {row["boxes"]:>5} {row["max"]:6.2f} {row["mean"]:7.4f} '
              f'{row["in_reach"]:8.2%} {row["mean_in_reach"]:10.3f} {row["share_over_1"]:8.3%} '
              f'{row["max_out_of_reach"]:16.2g}')
    record = dict(size=list(args.size), seed=args.seed, **result['all'], images=len(images))
    if paths:
        times = loader_step_times(paths, tuple(args.size), args.seed)
        print(f'loader steps per image (this process): decode {times["decode_ms"]:.1f} ms, '
              f'boxes painted {times["boxes_ms"]:.2f} ms, resize {times["resize_ms"]:.1f} ms')
        record.update(times)
    print(json.dumps(record))
    return record


if __name__ == '__main__':
    main()
