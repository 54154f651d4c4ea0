"""Segment what an expression refers to and save an overlay.

One image::

    python demo/image_demo.py IMAGE "the gray storage tank on the lower left" \
        CONFIG CHECKPOINT [--out overlay.png] [--device cpu|cuda]

Many (image, expression) pairs::

    python demo/image_demo.py --pairs pairs.csv CONFIG CHECKPOINT --out-dir overlays/

The overlay has the image's size: the predicted mask filled semi-transparently
and outlined, and the expression on a band at the bottom with the decoupled
object phrase (orange) and spatial phrases (cyan) underlined.

Pairs file: CSV with a header holding the columns ``image`` and ``expression``,
or JSON lines with the keys ``image`` (or ``img_path``) and ``expression``.
Relative image paths are resolved against the pairs file's folder. Overlays
are written to ``--out-dir`` as ``<index>_<image name>.png`` (index = pair
number from 0, zero-padded), so pairs sharing an image do not collide.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

from fianet_mmseg.apis import inference_model, init_model
from fianet_mmseg.visualization import render_prediction

IMAGE_KEYS = ('image', 'img_path')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FIANet demo: overlay the mask of the referred object',
        usage='%(prog)s IMAGE EXPRESSION CONFIG CHECKPOINT [--out FILE]\n'
              '       %(prog)s --pairs FILE CONFIG CHECKPOINT --out-dir DIR')
    parser.add_argument('positional', nargs='+', metavar='ARG',
                        help='IMAGE EXPRESSION CONFIG CHECKPOINT, or CONFIG CHECKPOINT with '
                             '--pairs')
    parser.add_argument('--pairs', help='CSV (columns image,expression) or JSONL (keys '
                        'image/img_path, expression) of pairs; relative image paths are '
                        "resolved against the file's folder")
    parser.add_argument('--out', help='overlay PNG of one image (default: '
                        '<image name>_overlay.png in the current folder)')
    parser.add_argument('--out-dir', help='folder for the overlays of --pairs')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    parser.add_argument('--batch-size', type=int, default=8, help='pairs per forward pass')
    parser.add_argument('--alpha', type=float, default=0.5, help='mask opacity (0-1)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.test_cfg.mode=whole')
    args = parser.parse_args(argv)
    if args.pairs:
        if len(args.positional) != 2:
            parser.error('with --pairs give CONFIG CHECKPOINT only')
        if not args.out_dir:
            parser.error('--pairs needs --out-dir')
        if args.out:
            parser.error('--out is for one image; use --out-dir with --pairs')
        args.image = args.expression = None
        args.config, args.checkpoint = args.positional
    else:
        if len(args.positional) != 4:
            parser.error('give IMAGE EXPRESSION CONFIG CHECKPOINT (or --pairs FILE CONFIG '
                         'CHECKPOINT)')
        args.image, args.expression, args.config, args.checkpoint = args.positional
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f'--alpha must be in [0, 1], got {args.alpha}')
    return args


def _pair(path: str, line_no: int, image: object, expression: object) -> Tuple[str, str]:
    """Check one pair of a pairs file; resolve its image path."""
    where = f'{path}, line {line_no}'
    if not isinstance(image, str) or not image.strip():
        raise ValueError(f'{where}: the image path is missing or empty')
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f'{where}: the expression is missing or empty')
    image = osp.join(osp.dirname(osp.abspath(path)), image.strip())
    if not osp.isfile(image):
        raise FileNotFoundError(f'{where}: image file {image} does not exist')
    return image, expression


def read_pairs(path: str) -> List[Tuple[str, str]]:
    """``[(absolute image path, expression), ...]`` from a CSV or JSONL pairs file.

    Raises:
        FileNotFoundError: The file, or an image it names, does not exist.
        ValueError: Unknown extension, bad header, bad JSON, missing or empty
            fields; the message names the file and line.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pairs file {path} does not exist')
    extension = osp.splitext(path)[1].lower()
    pairs = []
    with open(path, encoding='utf-8', newline='') as file:
        if extension == '.csv':
            reader = csv.DictReader(file)
            columns = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = columns
            image_key = next((key for key in IMAGE_KEYS if key in columns), None)
            if image_key is None or 'expression' not in columns:
                raise ValueError(f'{path}, line 1: the header must name the columns image and '
                                 f'expression, got {columns}')
            for row in reader:
                if not any((value or '').strip() for value in row.values() if
                           isinstance(value, str)):
                    continue
                pairs.append(_pair(path, reader.line_num, row.get(image_key),
                                   row.get('expression')))
        elif extension in ('.jsonl', '.json'):
            for line_no, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{path}, line {line_no}: not valid JSON ({err})') from err
                if not isinstance(record, dict):
                    raise ValueError(f'{path}, line {line_no}: expected a JSON object')
                image = next((record[key] for key in IMAGE_KEYS if key in record), None)
                pairs.append(_pair(path, line_no, image, record.get('expression')))
        else:
            raise ValueError(f'{path}: unknown pairs file type {extension!r} (use .csv or '
                             '.jsonl)')
    if not pairs:
        raise ValueError(f'{path}: no pairs')
    return pairs


def overlay_for(result, alpha: float) -> np.ndarray:
    """The BGR overlay of one inference result (image read from its path)."""
    image = mmcv.imread(result.img_path, channel_order='rgb')
    phrases = result.metainfo
    overlay = render_prediction(image, result.pred_sem_seg.data, phrases.get('expression'),
                                phrases.get('object_phrase'), phrases.get('spatial_phrases'),
                                alpha=alpha)
    return mmcv.rgb2bgr(overlay)


def _write(path: str, image, sources: Sequence[str]) -> None:
    if any(osp.abspath(path) == osp.abspath(source) for source in sources):
        raise ValueError(f'refusing to overwrite the input image {path}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, image):
        raise OSError(f'cannot write {path}')


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the demo; returns the written overlay paths."""
    args = parse_args(argv)
    if args.pairs:
        pairs = read_pairs(args.pairs)
    else:
        if not osp.isfile(args.image):
            raise FileNotFoundError(f'image file {args.image} does not exist')
        pairs = [(args.image, args.expression)]
    sources = [image for image, _ in pairs]
    model = init_model(args.config, args.checkpoint, device=args.device,
                       cfg_options=args.cfg_options)
    written = []
    if not args.pairs:
        result = inference_model(model, args.image, args.expression)
        out = args.out or f'{osp.splitext(osp.basename(args.image))[0]}_overlay.png'
        _write(out, overlay_for(result, args.alpha), sources)
        print(f'overlay written to {out}')
        return [out]
    digits = len(str(len(pairs) - 1))
    progress = ProgressBar(len(pairs))
    for start in range(0, len(pairs), args.batch_size):
        chunk = pairs[start:start + args.batch_size]
        results = inference_model(model, [p[0] for p in chunk], [p[1] for p in chunk],
                                  batch_size=args.batch_size)
        for index, result in enumerate(results, start=start):
            name = osp.splitext(osp.basename(result.img_path))[0]
            out = osp.join(args.out_dir, f'{index:0{digits}d}_{name}.png')
            _write(out, overlay_for(result, args.alpha), sources)
            written.append(out)
            progress.update()
    print(f'\n{len(written)} overlays written to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
