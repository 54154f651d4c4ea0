"""Segment many (image, expression) pairs, write their files and a summary table.

:func:`run_batch` reads each pair's image with
:func:`~fianet_mmseg.utils.image_io.read_image` (with the :class:`RasterOptions`),
predicts ``batch_size`` pairs per forward pass (a failing batch is retried one
pair at a time to find the bad one), writes the files of each pair
(:func:`~fianet_mmseg.apis.prediction_files.write_outputs`) to ``out_dir`` as
``<index>_<image name>.png`` (overlay), ``<index>_<image name>_mask.tif`` (for
TIFF sources, or with a raster option, when rasterio is installed; else
``_mask.png``) and ``<index>_<image name>.geojson`` (index = pair number from 0,
zero-padded), and the summary (``.csv``, or ``.json``) with one row per pair:
its status and error, phrases, object pixels and mean probability. A bad pair
(missing file, empty expression, unreadable image...) is reported with its
file and line and skipped; the others go on. :func:`predict_image` does the
same for one image. Command line: ``demo/image_demo.py``.
"""
from __future__ import annotations

import csv
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.utils import ProgressBar

from ..utils.image_io import DEFAULT_PERCENTILES, GeoImage, is_tiff, rasterio_available, read_image
from .inference import foreground_probability, inference_model
from .pairs import Job
from .prediction_files import OUTPUT_KINDS, OutputOptions, check_not_source, write_outputs

SUMMARY_FIELDS = ('index', 'source', 'image', 'expression', 'status', 'error', 'object_phrase',
                  'position_phrases', 'category', 'object_pixels', 'mean_probability',
                  'outputs')


@dataclass
class RasterOptions:
    """How images are read (see :func:`~fianet_mmseg.utils.image_io.read_image`)."""

    bands: Optional[Sequence[int]] = None
    window: Optional[Sequence[int]] = None
    bbox: Optional[Sequence[float]] = None
    stretch: str = 'auto'
    percentiles: Sequence[float] = DEFAULT_PERCENTILES

    @property
    def given(self) -> bool:
        """Whether any option differs from the defaults."""
        return (self.bands is not None or self.window is not None or self.bbox is not None
                or self.stretch != 'auto'
                or tuple(self.percentiles) != tuple(DEFAULT_PERCENTILES))

    def read(self, path: str) -> GeoImage:
        """The model's image of ``path`` read with these options."""
        return read_image(path, bands=self.bands, window=self.window, bbox=self.bbox,
                          stretch=self.stretch, percentiles=self.percentiles)


@dataclass
class BatchRun:
    """What a run wrote: output files (in pair order) and the summary rows of a batch."""

    written: List[str] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    summary: Optional[str] = None

    @property
    def failed(self) -> List[Dict[str, Any]]:
        return [row for row in self.rows if row['status'] != 'ok']


def single_image_targets(image: str, out: Optional[str] = None, overlay: Optional[str] = None,
                         geojson: Optional[str] = None) -> Dict[str, str]:
    """The files of one image: ``out`` is the mask when it ends in .tif / .tiff, else the
    overlay; with no path at all, ``<image name>_overlay.png`` in the current folder."""
    targets = {}
    if out:
        targets['mask' if is_tiff(out) else 'overlay'] = out
    if overlay:
        targets['overlay'] = overlay
    if geojson:
        targets['geojson'] = geojson
    if not targets:
        targets['overlay'] = f'{osp.splitext(osp.basename(image))[0]}_overlay.png'
    return targets


def predict_image(model, image: str, expression: str, targets: Dict[str, str],
                  raster: Optional[RasterOptions] = None,
                  output: Optional[OutputOptions] = None) -> BatchRun:
    """Segment one image and write the files ``targets`` names (kind -> path)."""
    geo = (raster or RasterOptions()).read(image)
    result = inference_model(model, geo, expression)
    written = write_outputs(result, geo, output or OutputOptions(), targets, [image])
    for kind, path in targets.items():
        print(f'{kind} written to {path}')
    return BatchRun(written=written)


def summary_row(job: Job, result=None, geo: Optional[GeoImage] = None,
                outputs: Sequence[str] = (), error: Optional[str] = None) -> Dict[str, Any]:
    """One row of the batch summary (:data:`SUMMARY_FIELDS`)."""
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


def _targets(job: Job, out_dir: str, save: Sequence[str], raster: RasterOptions,
             digits: int) -> Dict[str, str]:
    stem = osp.join(out_dir, f'{job.index:0{digits}d}_{osp.splitext(osp.basename(job.image))[0]}')
    geotiff = rasterio_available() and (is_tiff(job.image) or raster.given)
    names = dict(overlay=f'{stem}.png', mask=f'{stem}_mask.tif' if geotiff else f'{stem}_mask.png',
                 geojson=f'{stem}.geojson')
    return {kind: names[kind] for kind in OUTPUT_KINDS if kind in save}


def _predict_chunk(model, prepared: List[Tuple[Job, GeoImage]],
                   batch_size: int) -> List[Tuple[Any, Optional[str]]]:
    """``(result, error)`` per prepared job: one batch, else one by one to find the bad ones."""
    try:
        results = inference_model(model, [geo for _, geo in prepared],
                                  [job.expression for job, _ in prepared], batch_size=batch_size)
        return [(result, None) for result in results]
    except Exception:  # found again, with its pair, below
        outcomes = []
        for job, geo in prepared:
            try:
                outcomes.append((inference_model(model, geo, job.expression), None))
            except Exception as err:
                outcomes.append((None, f'{job.source}: {err}'))
        return outcomes


def run_batch(model, jobs: Sequence[Job], out_dir: str, save: Sequence[str] = ('overlay',),
              summary: Optional[str] = None, batch_size: int = 8,
              raster: Optional[RasterOptions] = None,
              output: Optional[OutputOptions] = None) -> BatchRun:
    """Segment every job, write its files (``save``: kinds) and the summary.

    Args:
        model: From :func:`~fianet_mmseg.apis.init_model`.
        jobs: From :func:`~fianet_mmseg.apis.pairs.read_pairs` or
            :func:`~fianet_mmseg.apis.pairs.folder_jobs`.
        out_dir: Folder of the files.
        save: Output kinds per pair (:data:`OUTPUT_KINDS`).
        summary: The summary table, ``.csv`` or ``.json`` (default
            ``<out_dir>/summary.csv``).
        batch_size: Pairs per forward pass.
        raster, output: Reading and output options.
    """
    raster, output = raster or RasterOptions(), output or OutputOptions()
    sources = [job.image for job in jobs if job.image]
    summary = summary or osp.join(out_dir, 'summary.csv')
    check_not_source(summary, sources)
    digits = len(str(len(jobs) - 1))
    rows: Dict[int, Dict[str, Any]] = {}
    written: Dict[int, List[str]] = {}
    progress = ProgressBar(len(jobs))
    for start in range(0, len(jobs), batch_size):
        prepared = []
        for job in jobs[start:start + batch_size]:
            if job.error is None:
                try:
                    prepared.append((job, raster.read(job.image)))
                    continue
                except Exception as err:
                    job.error = f'{job.source}: {err}'
            rows[job.index] = summary_row(job, error=job.error)
            progress.update()
        outcomes = _predict_chunk(model, prepared, batch_size) if prepared else []
        for (job, geo), (result, error) in zip(prepared, outcomes):
            outputs: List[str] = []
            if error is None:
                try:
                    outputs = write_outputs(result, geo, output,
                                            _targets(job, out_dir, save, raster, digits), sources)
                except Exception as err:
                    error = f'{job.source}: {err}'
            rows[job.index] = summary_row(job, result, geo, outputs, error)
            written[job.index] = outputs
            progress.update()
    run = BatchRun(rows=[rows[job.index] for job in jobs], summary=summary,
                   written=[path for job in jobs for path in written.get(job.index, [])])
    write_summary(summary, run.rows)
    print()
    for row in run.failed:
        print(f'error: {row["error"]}', file=sys.stderr)
    done = len(run.rows) - len(run.failed)
    print(f'{done} of {len(run.rows)} pairs done, {len(run.written)} files written to '
          f'{out_dir}; summary: {summary}')
    return run
