"""Write a small synthetic referring data set in the RRSIS-D release layout.

Usage (from the repository root)::

    python data_prep/synthetic.py --out data/synthetic_raw [--num-images 600] \\
        [--image-size 128] [--seed 0] [--max-objects 5] [--object-scale 1.0]
        [--position-preference 0.0] [--overwrite]

then convert it like the real release::

    python data_prep/rrsisd.py --src data/synthetic_raw --out data/synthetic

What is drawn and written: :mod:`fianet_mmseg.datasets.synthetic` (and
docs/data_preparation.md).
"""
import argparse
import json

from fianet_mmseg.datasets.synthetic import generate_synthetic_rrsisd


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
