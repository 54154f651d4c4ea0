"""Segment what an expression refers to: overlays, masks (GeoTIFF) and polygons (GeoJSON).

One image (overlay PNG)::

    python demo/image_demo.py IMAGE "the gray storage tank on the lower left" \\
        CONFIG CHECKPOINT [--out overlay.png] [--device cpu|cuda]

A GeoTIFF scene to a georeferenced mask and polygons (``pip install
"fianet-mmseg[geo]"``)::

    python demo/image_demo.py scene.tif "the storage tank on the lower left" CONFIG CHECKPOINT \\
        --bands 3 2 1 --window 2048 1024 512 512 --out mask.tif --geojson tanks.geojson \\
        [--geojson-crs EPSG:4326] [--simplify 1] [--overlay overlay.png]

Many pairs (one output set per pair and a summary table)::

    python demo/image_demo.py --pairs pairs.csv CONFIG CHECKPOINT --out-dir out/
    python demo/image_demo.py --folder scenes/ --expression "the ship" CONFIG CHECKPOINT \\
        --out-dir out/ [--save overlay mask geojson] [--summary out/summary.json]

Outputs of one image: ``--out`` ending in ``.tif`` / ``.tiff`` is the mask
(single-band uint8: 1 object, 0 background, 255 no data in the source),
georeferenced like the input (its window; needs rasterio); any other ``--out`` (or
``--overlay``; with no output option ``<image name>_overlay.png`` in the
current folder) is the overlay: the image's size, the mask filled
semi-transparently and outlined, the expression on a band at the bottom with
the decoupled object phrase (orange) and spatial phrases (cyan) underlined.
``--geojson`` writes the mask's polygons, each with the expression, the
object and position phrases, the category, its pixel count and its mean
foreground probability, in the source's CRS (``--geojson-crs`` reprojects;
images without georeferencing give pixel coordinates).

Every image (PNG, JPEG, TIFF / GeoTIFF... of any bit depth) is read by
:func:`fianet_mmseg.apis.read_image`, the reader of the Python API and the
data sets too: ``--bands`` picks the source bands (from 1) for R, G, B
(default the first three; grey is repeated), 16-bit and float data is
stretched per band between the 2nd and 98th percentiles of the valid pixels
(``--stretch``, ``--percentiles``), nodata and alpha 0 are kept out of the
statistics, EXIF orientation is ignored, and ``--window`` / ``--bbox`` (in the
scene's CRS; need rasterio) cut a part of a large scene: the model sees the
whole input at its test size (480x480 for the Swin-B configs).

Batch: ``--pairs`` is a CSV with a header holding the columns ``image`` and
``expression``, or JSON lines with the keys ``image`` (or ``img_path``) and
``expression``; relative image paths are resolved against the pairs file's
folder. ``--folder`` takes every image in a folder (not its subfolders) with
one ``--expression``. Outputs go to ``--out-dir`` as ``<index>_<image
name>.png`` (overlay), ``<index>_<image name>_mask.tif`` (for TIFF sources, or
with a raster option, when rasterio is installed; else ``_mask.png``; both 1
object, 0 background, the GeoTIFF 255 where the source has no data) and
``<index>_<image name>.geojson``, index = pair number from 0, zero-padded. A bad pair (missing
file, empty expression, unreadable image...) is reported with its file and line
and skipped; the others go on. The summary (``--summary``, default
``<out-dir>/summary.csv``; ``.json`` for JSON) has one row per pair with its
status and error. The exit status is 1 when a pair failed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

from fianet_mmseg.apis import (
    foreground_probability,
    inference_model,
    init_model,
    prediction_to_geojson,
    read_image,
    write_geojson,
    write_mask_geotiff,
)
from fianet_mmseg.apis.raster_input import (
    DEFAULT_PERCENTILES,
    STRETCH_MODES,
    GeoImage,
    is_tiff,
    rasterio_available,
)
from fianet_mmseg.apis.raster_output import mask_with_nodata
from fianet_mmseg.utils.jsonl import iter_jsonl_lines, parse_jsonl_line
from fianet_mmseg.visualization import as_image_mask, render_prediction

IMAGE_KEYS = ('image', 'img_path')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
SAVE_CHOICES = ('overlay', 'mask', 'geojson')
SUMMARY_FIELDS = ('index', 'source', 'image', 'expression', 'status', 'error', 'object_phrase',
                  'position_phrases', 'category', 'object_pixels', 'mean_probability',
                  'outputs')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FIANet demo: overlay, mask and polygons of the referred object',
        usage='%(prog)s IMAGE EXPRESSION CONFIG CHECKPOINT [--out FILE] [--geojson FILE]\n'
              '       %(prog)s --pairs FILE CONFIG CHECKPOINT --out-dir DIR\n'
              '       %(prog)s --folder DIR --expression TEXT CONFIG CHECKPOINT --out-dir DIR')
    parser.add_argument('positional', nargs='+', metavar='ARG',
                        help='IMAGE EXPRESSION CONFIG CHECKPOINT, or CONFIG CHECKPOINT with '
                             '--pairs / --folder')
    batch = parser.add_argument_group('batch')
    batch.add_argument('--pairs', help='CSV (columns image,expression) or JSONL (keys '
                       'image/img_path, expression) of pairs; relative image paths are '
                       "resolved against the file's folder")
    batch.add_argument('--folder', help='segment every image of this folder (with --expression)')
    batch.add_argument('--expression', help='the expression for the images of --folder')
    batch.add_argument('--out-dir', help='folder for the outputs of --pairs / --folder')
    batch.add_argument('--save', nargs='+', choices=SAVE_CHOICES, default=['overlay'],
                       help='outputs per pair (default: overlay)')
    batch.add_argument('--summary', help='summary table, .csv or .json (default: '
                       '<out-dir>/summary.csv)')
    batch.add_argument('--batch-size', type=int, default=8, help='pairs per forward pass')
    single = parser.add_argument_group('one image')
    single.add_argument('--out', help='overlay image, or the mask when it ends in .tif / .tiff '
                        '(with no output option: <image name>_overlay.png in the current '
                        'folder)')
    single.add_argument('--overlay', help='also write the overlay here (with a .tif --out)')
    single.add_argument('--geojson', help="the mask's polygons as GeoJSON")
    geo = parser.add_argument_group('rasters (GeoTIFF)')
    geo.add_argument('--bands', nargs='+', type=int, metavar='BAND',
                     help='source bands (from 1) for R G B, or one for grey (default: 1 2 3)')
    where = geo.add_mutually_exclusive_group()
    where.add_argument('--window', nargs=4, type=int,
                       metavar=('COL_OFF', 'ROW_OFF', 'WIDTH', 'HEIGHT'),
                       help='read this pixel window of the scene')
    where.add_argument('--bbox', nargs=4, type=float, metavar=('LEFT', 'BOTTOM', 'RIGHT', 'TOP'),
                       help="read the pixels this box (in the scene's CRS) touches")
    geo.add_argument('--stretch', choices=STRETCH_MODES, default='auto',
                     help='to 8 bit: auto (uint8 as is, else percentile), percentile, none '
                          '(clip)')
    geo.add_argument('--percentiles', nargs=2, type=float, default=list(DEFAULT_PERCENTILES),
                     metavar=('LOW', 'HIGH'), help='percentile stretch limits (default 2 98)')
    geo.add_argument('--geojson-crs', help='reproject the polygons, e.g. EPSG:4326 (default: '
                     "the source's CRS)")
    geo.add_argument('--simplify', type=float, default=0.0, metavar='PIXELS',
                     help='simplify the polygons with this tolerance in pixels (default: none)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    parser.add_argument('--alpha', type=float, default=0.5, help='mask opacity (0-1)')
    parser.add_argument('--overlay-scale', type=int, default=1, metavar='N',
                        help='enlarge the overlay N times (nearest neighbour), for small images')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.test_cfg.mode=whole')
    args = parser.parse_args(argv)
    batch_mode = bool(args.pairs or args.folder)
    if args.pairs and args.folder:
        parser.error('give --pairs or --folder, not both')
    if batch_mode:
        if len(args.positional) != 2:
            parser.error('with --pairs / --folder give CONFIG CHECKPOINT only')
        if not args.out_dir:
            parser.error('--pairs / --folder need --out-dir')
        for name in ('out', 'overlay', 'geojson'):
            if getattr(args, name):
                parser.error(f'--{name} is for one image; use --out-dir (and --save) with '
                             '--pairs / --folder')
        if args.folder and not (args.expression or '').strip():
            parser.error('--folder needs a non-empty --expression')
        if args.pairs and args.expression:
            parser.error('--expression is for --folder; a pairs file has its own')
        if args.summary and osp.splitext(args.summary)[1].lower() not in ('.csv', '.json'):
            parser.error(f'--summary must end in .csv or .json, got {args.summary}')
        args.image = None
        args.config, args.checkpoint = args.positional
    else:
        if len(args.positional) != 4:
            parser.error('give IMAGE EXPRESSION CONFIG CHECKPOINT (or --pairs FILE / --folder '
                         'DIR CONFIG CHECKPOINT)')
        if args.expression:
            parser.error('--expression is for --folder; give the expression after IMAGE')
        if args.overlay and args.out and not is_tiff(args.out):
            parser.error('--out is the overlay already; --overlay goes with a mask --out '
                         '(.tif)')
        args.image, args.expression, args.config, args.checkpoint = args.positional
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f'--alpha must be in [0, 1], got {args.alpha}')
    if args.overlay_scale < 1:
        parser.error(f'--overlay-scale must be >= 1, got {args.overlay_scale}')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be positive, got {args.batch_size}')
    if args.bands is not None and len(args.bands) not in (1, 3):
        parser.error(f'--bands takes 3 bands (R G B) or 1 (grey), got {len(args.bands)}')
    if args.simplify < 0:
        parser.error(f'--simplify must be >= 0, got {args.simplify}')
    return args


# ------------------------------------------------------------------------ pairs
class Job:
    """One (image, expression) pair of a batch; ``error`` set when it cannot run.

    ``source`` says where it comes from: ``"pairs.csv, line 3"`` or the image path.
    """

    def __init__(self, index: int, source: str, image: Optional[str],
                 expression: Optional[str], error: Optional[str] = None) -> None:
        self.index = index
        self.source = source
        self.image = image
        self.expression = expression
        self.error = error

    def __repr__(self) -> str:
        return (f'Job({self.index}, {self.source!r}, image={self.image!r}, expression='
                f'{self.expression!r}, error={self.error!r})')


def _job(path: str, index: int, line_no: int, image: object, expression: object) -> Job:
    """Check one pair of a pairs file; resolve its image path."""
    source = f'{path}, line {line_no}'
    job = Job(index, source, image if isinstance(image, str) else None,
              expression if isinstance(expression, str) else None)
    if not isinstance(image, str) or not image.strip():
        job.error = f'{source}: the image path is missing or empty'
    elif not isinstance(expression, str) or not expression.strip():
        job.error = f'{source}: the expression is missing or empty'
    else:
        job.image = osp.join(osp.dirname(osp.abspath(path)), image.strip())
        if not osp.isfile(job.image):
            job.error = f'{source}: image file {job.image} does not exist'
    return job


def read_pairs(path: str) -> List[Job]:
    """The pairs of a CSV or JSONL pairs file, bad ones with their ``error``.

    A bad row (bad JSON, missing or empty fields, missing image file) becomes a
    :class:`Job` whose ``error`` names the file and line; the others are kept.

    Raises:
        FileNotFoundError: The pairs file does not exist.
        ValueError: Unknown extension, bad CSV header, no pairs at all.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pairs file {path} does not exist')
    extension = osp.splitext(path)[1].lower()
    jobs: List[Job] = []
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
                jobs.append(_job(path, len(jobs), reader.line_num, row.get(image_key),
                                 row.get('expression')))
        elif extension in ('.jsonl', '.json'):
            for line_no, where, line in iter_jsonl_lines(path):
                try:
                    record = parse_jsonl_line(line, where)
                except ValueError as err:  # this row fails, the others go on
                    jobs.append(Job(len(jobs), where, None, None, str(err)))
                    continue
                image = next((record[key] for key in IMAGE_KEYS if key in record), None)
                jobs.append(_job(path, len(jobs), line_no, image, record.get('expression')))
        else:
            raise ValueError(f'{path}: unknown pairs file type {extension!r} (use .csv or '
                             '.jsonl)')
    if not jobs:
        raise ValueError(f'{path}: no pairs')
    return jobs


def folder_jobs(folder: str, expression: str) -> List[Job]:
    """One job per image file of ``folder`` (sorted by name), all with ``expression``.

    Raises:
        FileNotFoundError: No such folder.
        ValueError: No image file in it.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder} does not exist')
    names = sorted(name for name in os.listdir(folder)
                   if osp.splitext(name)[1].lower() in IMAGE_SUFFIXES
                   and osp.isfile(osp.join(folder, name)))
    if not names:
        raise ValueError(f'{folder}: no image files ({", ".join(IMAGE_SUFFIXES)})')
    return [Job(index, osp.join(folder, name), osp.join(folder, name), expression)
            for index, name in enumerate(names)]


# ----------------------------------------------------------------------- images
def raster_options_given(args: argparse.Namespace) -> bool:
    """Whether a raster option (bands, window, bbox, stretch) is given."""
    return (args.bands is not None or args.window is not None or args.bbox is not None
            or args.stretch != 'auto'
            or tuple(args.percentiles) != tuple(DEFAULT_PERCENTILES))


def mask_is_geotiff(path: str, args: argparse.Namespace) -> bool:
    """Whether a batch writes the mask of ``path`` as a (georeferenced) GeoTIFF."""
    return rasterio_available() and (is_tiff(path) or raster_options_given(args))


def load_input(path: str, args: argparse.Namespace) -> GeoImage:
    """The model's image of one file (:func:`read_image` with the raster options)."""
    return read_image(path, bands=args.bands, window=args.window, bbox=args.bbox,
                      stretch=args.stretch, percentiles=args.percentiles)


def overlay_for(result, alpha: float, rgb: Optional[np.ndarray] = None,
                valid: Optional[np.ndarray] = None, scale: int = 1) -> np.ndarray:
    """The BGR overlay of one inference result.

    Args:
        result: The ``SegDataSample``.
        alpha: Mask opacity.
        scale: Enlargement of the overlay (see :func:`render_prediction`).
        rgb: The RGB image predicted on (default: ``result.img_path`` read
            with :func:`read_image`).
        valid: Pixels with data; the mask is drawn only there.
    """
    image = read_image(result.img_path).image if rgb is None else rgb
    mask = as_image_mask(result.pred_sem_seg.data, image.shape[:2])  # same size or an error
    if valid is not None:
        mask &= valid
    phrases = result.metainfo
    overlay = render_prediction(image, mask, phrases.get('expression'),
                                phrases.get('object_phrase'), phrases.get('spatial_phrases'),
                                alpha=alpha, scale=scale)
    return mmcv.rgb2bgr(overlay)


def _check_not_source(path: str, sources: Sequence[str]) -> None:
    if any(osp.abspath(path) == osp.abspath(source) for source in sources if source):
        raise ValueError(f'refusing to overwrite the input image {path}')


def _write(path: str, image, sources: Sequence[str]) -> None:
    _check_not_source(path, sources)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, image):
        raise OSError(f'cannot write {path}')


def mask_tags(result) -> Dict[str, Any]:
    """GeoTIFF tags of a mask: the expression and its decoupling."""
    meta = result.metainfo
    return dict(expression=meta.get('expression'), object_phrase=meta.get('object_phrase'),
                position_phrases='; '.join(meta.get('spatial_phrases') or []),
                category=meta.get('decoupled_category'), values='1 object, 0 background, '
                '255 no data')


def write_outputs(result, geo: Optional[GeoImage], args: argparse.Namespace,
                  targets: Dict[str, str], sources: Sequence[str]) -> List[str]:
    """Write the outputs ``targets`` names (``overlay`` / ``mask`` / ``geojson`` -> path)."""
    written = []
    for kind, path in targets.items():
        _check_not_source(path, sources)
        if kind == 'overlay':
            _write(path, overlay_for(result, args.alpha, None if geo is None else geo.image,
                                     None if geo is None else geo.valid, args.overlay_scale),
                   sources)
        elif kind == 'mask':
            mask = result.pred_sem_seg.data[0].cpu().numpy()
            if is_tiff(path):
                write_mask_geotiff(path, mask, geo, tags=mask_tags(result))
            else:  # 1 object, 0 background (and no data)
                _write(path, (mask_with_nodata(mask, geo) == 1).astype(np.uint8), sources)
        elif kind == 'geojson':
            collection = prediction_to_geojson(result, geo, dst_crs=args.geojson_crs,
                                               simplify=args.simplify)
            write_geojson(path, collection, geo)
        written.append(path)
    return written


def summary_row(job: Job, result=None, geo: Optional[GeoImage] = None,
                outputs: Sequence[str] = (), error: Optional[str] = None) -> Dict[str, Any]:
    """One row of the batch summary."""
    row: Dict[str, Any] = dict(index=job.index, source=job.source, image=job.image,
                               expression=job.expression, status='error' if error else 'ok',
                               error=error, outputs=list(outputs))
    if result is not None:
        meta = result.metainfo
        mask = result.pred_sem_seg.data[0].cpu().numpy() > 0
        if geo is not None:
            mask &= geo.valid
        pixels = int(mask.sum())
        row.update(object_phrase=meta.get('object_phrase'),
                   position_phrases='; '.join(meta.get('spatial_phrases') or []) or None,
                   category=meta.get('decoupled_category'), object_pixels=pixels,
                   mean_probability=float(foreground_probability(result)[mask].mean())
                   if pixels else None)
    return {key: row.get(key) for key in SUMMARY_FIELDS}


def write_summary(path: str, rows: Sequence[Dict[str, Any]]) -> None:
    """The summary as CSV (lists joined by ``;``) or JSON (a list of rows)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if osp.splitext(path)[1].lower() == '.json':
        with open(path, 'w', encoding='utf-8') as file:
            json.dump(list(rows), file, indent=1, ensure_ascii=False)
            file.write('\n')
        return
    with open(path, 'w', encoding='utf-8', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ';'.join(value) if isinstance(value, list) else
                             ('' if value is None else value) for key, value in row.items()})


# ------------------------------------------------------------------------ runs
class DemoRun:
    """What a run wrote: output files (in pair order) and the summary rows of a batch."""

    def __init__(self, written: Optional[List[str]] = None,
                 rows: Optional[List[Dict[str, Any]]] = None,
                 summary: Optional[str] = None) -> None:
        self.written = written or []
        self.rows = rows or []
        self.summary = summary

    @property
    def failed(self) -> List[Dict[str, Any]]:
        return [row for row in self.rows if row['status'] != 'ok']


def run_single(model, args: argparse.Namespace) -> DemoRun:
    geo = load_input(args.image, args)
    result = inference_model(model, geo, args.expression)
    targets = {}
    if args.out:
        targets['mask' if is_tiff(args.out) else 'overlay'] = args.out
    if args.overlay:
        targets['overlay'] = args.overlay
    if args.geojson:
        targets['geojson'] = args.geojson
    if not targets:
        targets['overlay'] = f'{osp.splitext(osp.basename(args.image))[0]}_overlay.png'
    written = write_outputs(result, geo, args, targets, [args.image])
    for kind, path in targets.items():
        print(f'{kind} written to {path}')
    return DemoRun(written=written)


def _targets(job: Job, args: argparse.Namespace, digits: int) -> Dict[str, str]:
    stem = osp.join(args.out_dir, f'{job.index:0{digits}d}_'
                                  f'{osp.splitext(osp.basename(job.image))[0]}')
    names = dict(overlay=f'{stem}.png', mask=f'{stem}_mask.tif' if mask_is_geotiff(job.image, args)
                 else f'{stem}_mask.png', geojson=f'{stem}.geojson')
    return {kind: names[kind] for kind in SAVE_CHOICES if kind in args.save}


def _predict_chunk(model, prepared: List[Tuple[Job, Any, Optional[GeoImage]]],
                   batch_size: int) -> List[Tuple[Any, Optional[str]]]:
    """``(result, error)`` per prepared job: one batch, else one by one to find the bad ones."""
    try:
        results = inference_model(model, [item for _, item, _ in prepared],
                                  [job.expression for job, _, _ in prepared],
                                  batch_size=batch_size)
        return [(result, None) for result in results]
    except Exception:  # found again, with its pair, below
        outcomes = []
        for job, item, _ in prepared:
            try:
                outcomes.append((inference_model(model, item, job.expression), None))
            except Exception as err:
                outcomes.append((None, f'{job.source}: {err}'))
        return outcomes


def run_batch(model, args: argparse.Namespace) -> DemoRun:
    jobs = read_pairs(args.pairs) if args.pairs else folder_jobs(args.folder, args.expression)
    sources = [job.image for job in jobs if job.image]
    summary = args.summary or osp.join(args.out_dir, 'summary.csv')
    _check_not_source(summary, sources)
    digits = len(str(len(jobs) - 1))
    run = DemoRun(summary=summary)
    rows: Dict[int, Dict[str, Any]] = {}
    written: Dict[int, List[str]] = {}
    progress = ProgressBar(len(jobs))
    for start in range(0, len(jobs), args.batch_size):
        prepared = []
        for job in jobs[start:start + args.batch_size]:
            if job.error is None:
                try:
                    geo = load_input(job.image, args)
                    prepared.append((job, geo, geo))
                    continue
                except Exception as err:
                    job.error = f'{job.source}: {err}'
            rows[job.index] = summary_row(job, error=job.error)
            progress.update()
        outcomes = _predict_chunk(model, prepared, args.batch_size) if prepared else []
        for (job, _, geo), (result, error) in zip(prepared, outcomes):
            outputs: List[str] = []
            if error is None:
                try:
                    outputs = write_outputs(result, geo, args, _targets(job, args, digits),
                                            sources)
                except Exception as err:
                    error = f'{job.source}: {err}'
            rows[job.index] = summary_row(job, result, geo, outputs, error)
            written[job.index] = outputs
            progress.update()
    run.rows = [rows[job.index] for job in jobs]
    run.written = [path for job in jobs for path in written.get(job.index, [])]
    write_summary(summary, run.rows)
    print()
    for row in run.failed:
        print(f'error: {row["error"]}', file=sys.stderr)
    done = len(run.rows) - len(run.failed)
    print(f'{done} of {len(run.rows)} pairs done, {len(run.written)} files written to '
          f'{args.out_dir}; summary: {summary}')
    return run


def run_demo(argv: Optional[Sequence[str]] = None) -> DemoRun:
    """Parse ``argv``, load the model and run one image or a batch."""
    args = parse_args(argv)
    if args.pairs and not osp.isfile(args.pairs):
        raise FileNotFoundError(f'pairs file {args.pairs} does not exist')
    if args.image is not None and not osp.isfile(args.image):
        raise FileNotFoundError(f'image file {args.image} does not exist')
    model = init_model(args.config, args.checkpoint, device=args.device,
                       cfg_options=args.cfg_options)
    return run_batch(model, args) if args.image is None else run_single(model, args)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the demo; returns the written files (in pair order for a batch)."""
    return run_demo(argv).written


if __name__ == '__main__':
    sys.exit(1 if run_demo().failed else 0)
