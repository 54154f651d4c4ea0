"""Referring segmentation of a whole scene: windows at the model's scale, streamed, blended.

Example::

    from fianet_mmseg.apis import init_model
    from fianet_mmseg.apis.scene import SceneInferencer

    model = init_model(CONFIG, CHECKPOINT, device='cuda')
    inferencer = SceneInferencer(model, gsd=0.5, batch_size=8)
    summary = inferencer('scene.tif', 'the storage tank on the lower left', 'out/')

writes ``out/mask.tif``, ``out/probability.tif`` (Cloud-Optimised GeoTIFFs on
the scene's grid), ``out/polygons.gpkg``, ``out/polygons.geojson`` and
``out/summary.json``. How: :mod:`.plan` (scale, windows, text),
:mod:`.reader` (windows read through rasterio), :mod:`.store` (finished
batches on disk: resumable), :mod:`.blend` and :mod:`.assemble` (block-wise
outputs), :mod:`.positions` (the position phrases at the scene's scale).

Several processes (``torchrun --nproc-per-node N``; the caller initialises
``torch.distributed``, gloo on CPU or NCCL on GPU): batch ``b`` goes to
process ``b mod N``, process 0 writes the outputs when all are done. The
outputs are byte-identical to one process's, and to an interrupted run
continued with ``resume=True``: batches hold fixed windows, and blending adds
windows in a fixed order (with the same threads per process: float sums of a
forward pass may differ in the last bit between thread counts).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import resource
import shutil
import time
import warnings
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from ..inference import foreground_probability, inference_model
from ..raster_input import DEFAULT_PERCENTILES
from .assemble import OUTPUT_FILES, applied_phrases, assemble
from .plan import ScenePlan, make_plan, model_fingerprint
from .store import WindowStore, write_json_atomic

WORK_DIR = 'work'
#: GDAL's block cache during a run, MiB: GDAL's default (5% of the RAM) would keep up to that
#: much of the scene and the outputs' blocks, growing with the scene.
GDAL_CACHE_MB = 64
Progress = Callable[[str, float], None]


class SceneWarning(UserWarning):
    """A warning about a scene run (its GSD, its CRS, phrases not applied)."""


def distributed() -> Tuple[int, int]:
    """``(rank, world size)`` of an initialised ``torch.distributed`` group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(value: Any) -> List[Any]:
    """Every process's ``value`` (a barrier); ``[value]`` in one process."""
    import torch.distributed as dist

    if distributed()[1] == 1:
        return [value]
    values: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def _synchronised(step: Callable[[], Any], rank_zero_only: bool = False) -> Any:
    """Run ``step`` (on process 0 only if asked), then raise on every process if any failed."""
    rank, _ = distributed()
    result, error = None, None
    if not rank_zero_only or rank == 0:
        try:
            result = step()
        except Exception as err:  # re-raised below, on every process
            error = err
    errors = [e for e in _gather(None if error is None else f'{type(error).__name__}: {error}')
              if e is not None]
    if error is not None:
        raise error
    if errors:
        raise RuntimeError(f'another process failed: {errors[0]}')
    return result


def peak_memory_mb() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class SceneInferencer:
    """Referring segmentation over a raster of any size (see the module).

    Args:
        model: A model from :func:`~fianet_mmseg.apis.init_model` (or any
            module with ``cfg`` and ``test_step`` that ``inference_model``
            accepts).
        gsd: Windows' metres per pixel (None: the config's ``gsd``, else the
            scene's own).
        source_gsd: The scene's metres per pixel where it has no CRS.
        stride: Step between windows in model pixels, an int or ``(x, y)``
            (default 3/4 of the window).
        batch_size: Windows per forward pass.
        position: ``'scene'``, ``'window'`` or ``'ignore'`` (see
            :mod:`.positions`; None: ``scene`` for more than one window).
        bands, stretch, percentiles: The scene's bands and 8-bit stretch
            (see :mod:`.reader`).
        dst_crs: Vectors' CRS: None (GeoPackage in the source's CRS, GeoJSON
            in EPSG:4326), ``'source'``, or any CRS rasterio reads.
        simplify: Polygon simplification tolerance, map units (0: none).
        min_area: Smallest object kept, m^2 (pixels without a GSD).
        keep_work: Keep the work folder (window probabilities) after success.
        show_progress: A progress bar (windows/s, ETA) on stderr (process 0).
    """

    def __init__(self, model: nn.Module, gsd: Optional[float] = None,
                 source_gsd: Optional[float] = None, stride: Optional[Any] = None,
                 batch_size: int = 4, position: Optional[str] = None,
                 bands: Optional[Sequence[int]] = None, stretch: str = 'auto',
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                 dst_crs: Optional[str] = None, simplify: float = 0.0, min_area: float = 0.0,
                 keep_work: bool = False, show_progress: bool = True) -> None:
        self.model = model
        self.plan_options = dict(gsd=gsd, source_gsd=source_gsd, stride=stride,
                                 batch_size=batch_size, position=position, bands=bands,
                                 stretch=stretch, percentiles=percentiles)
        if simplify < 0 or min_area < 0:
            raise ValueError(f'simplify and min_area must be >= 0, got {simplify}, {min_area}')
        self.dst_crs = dst_crs
        self.simplify = float(simplify)
        self.min_area = float(min_area)
        self.keep_work = keep_work
        self.show_progress = show_progress
        self._model_id: Optional[str] = None

    def plan(self, scene: str, expression: str) -> ScenePlan:
        """The run's plan (scale, windows, texts, warnings); close ``plan.reader`` after use."""
        plan = make_plan(self.model, str(scene), expression, **self.plan_options)
        if self._model_id is None:
            self._model_id = model_fingerprint(self.model)
        plan.model_id = self._model_id
        return plan

    # ----------------------------------------------------------------- folders
    @staticmethod
    def _prepare(out_dir: str, plan: ScenePlan, resume: bool, overwrite: bool) -> WindowStore:
        """Check / make the output folder (process 0); the store of the run."""
        outputs = [osp.abspath(osp.join(out_dir, name)) for name in OUTPUT_FILES.values()]
        work = osp.join(out_dir, WORK_DIR)
        if osp.abspath(plan.scene) in outputs or \
                osp.abspath(plan.scene).startswith(osp.abspath(work) + os.sep):
            raise ValueError(f'the scene {plan.scene} is where an output goes: choose another '
                             '--out-dir')
        store = WindowStore(work)
        if resume:
            stored = store.read_plan()
            if stored is None:
                done = osp.isfile(osp.join(out_dir, OUTPUT_FILES['summary']))
                raise FileNotFoundError(
                    f'{out_dir}: nothing to resume (no {WORK_DIR}/plan.json)'
                    + ('; the run there is complete (use --overwrite to run again)' if done
                       else ''))
            current = json.loads(json.dumps(plan.fingerprint()))
            changed = sorted(key for key in set(stored) | set(current)
                             if stored.get(key) != current.get(key))
            if changed:
                raise ValueError(f'{out_dir}: --resume of another run: {", ".join(changed)} '
                                 f'differ (stored {[stored.get(k) for k in changed]}, now '
                                 f'{[current.get(k) for k in changed]})')
            return store
        if osp.isdir(out_dir) and os.listdir(out_dir):
            if not overwrite:
                raise FileExistsError(f'the output folder {out_dir} exists and is not empty: '
                                      'give --overwrite to replace its outputs, or --resume '
                                      'to continue an interrupted run')
            for path in outputs:
                if osp.isfile(path):
                    os.remove(path)
            shutil.rmtree(work, ignore_errors=True)
        elif osp.exists(out_dir) and not osp.isdir(out_dir):
            raise FileExistsError(f'{out_dir} exists and is not a folder')
        os.makedirs(out_dir, exist_ok=True)
        store.create(plan.fingerprint())
        return store

    # ----------------------------------------------------------------- windows
    def _predict(self, images: List[np.ndarray], text: str) -> List[np.ndarray]:
        """Foreground probability ``(h, w)`` of each RGB window, one forward pass."""
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
        results = inference_model(self.model, bgr, [text] * len(bgr), batch_size=len(bgr))
        return [foreground_probability(result) for result in results]

    def _run_windows(self, plan: ScenePlan, store: WindowStore,
                     progress: Optional[Progress]) -> Dict[str, int]:
        """Infer this process's unfinished batches; counts for the summary."""
        rank, world = distributed()
        starts = plan.windows
        width, height = plan.grid.window
        mine = [(number, batch) for number, batch in enumerate(plan.grid.batches(plan.batch_size))
                if number % world == rank]
        todo = [(number, batch) for number, batch in mine if not store.done(number)]
        total = sum(len(batch) for _, batch in todo)
        bar = None
        if self.show_progress and rank == 0 and total:
            from tqdm import tqdm

            bar = tqdm(total=total, unit='window', desc='windows', dynamic_ncols=True)
        inferred = empty = done = 0
        try:
            for number, batch in todo:
                images, indices, skipped = [], [], []
                valids = []
                for index in batch:
                    image, valid = plan.reader.read_window(
                        plan.grid.source_window(*starts[index]), (height, width))
                    if not valid.any():
                        skipped.append(index)
                        continue
                    images.append(image)
                    valids.append(valid)
                    indices.append(index)
                probabilities = np.zeros((len(images), height, width), np.float32)
                if images:
                    for slot, (probability, valid) in enumerate(
                            zip(self._predict(images, plan.window_text), valids)):
                        probabilities[slot] = np.where(valid, probability, np.nan)
                store.save(number, indices, skipped, probabilities)
                inferred += len(indices)
                empty += len(skipped)
                done += len(batch)
                if bar is not None:
                    bar.update(len(batch))
                if progress is not None and rank == 0:
                    progress('windows', done / total)
        finally:
            if bar is not None:
                bar.close()
        return dict(inferred=inferred, empty=empty)

    # --------------------------------------------------------------------- run
    def __call__(self, scene: str, expression: str, out_dir: str, resume: bool = False,
                 overwrite: bool = False,
                 progress: Optional[Progress] = None) -> Optional[Dict[str, Any]]:
        """Segment what ``expression`` refers to in ``scene``; write the outputs to ``out_dir``.

        Args:
            resume: Continue the interrupted run in ``out_dir``.
            overwrite: Replace the outputs of an earlier run in ``out_dir``
                (only this tool's files; anything else there stays).
            progress: Called on process 0 with ``(stage, fraction done)``,
                stage ``'windows'`` or ``'outputs'``.

        Returns:
            dict | None: The summary (also ``out_dir/summary.json``) on process
            0; None on the others.

        Raises:
            FileExistsError: ``out_dir`` is not empty, without ``overwrite`` /
                ``resume``.
            ValueError, FileNotFoundError: Bad input (see :func:`~.plan.make_plan`).
        """
        import rasterio

        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            return self._run(scene, expression, str(out_dir), resume, overwrite, progress)

    def _run(self, scene: str, expression: str, out_dir: str, resume: bool, overwrite: bool,
             progress: Optional[Progress]) -> Optional[Dict[str, Any]]:
        started = time.perf_counter()
        rank, world = distributed()
        plan = _synchronised(lambda: self.plan(scene, expression))
        try:
            for message in plan.warnings if rank == 0 else []:
                warnings.warn(message, SceneWarning, stacklevel=2)
            _synchronised(lambda: self._prepare(out_dir, plan, resume, overwrite),
                          rank_zero_only=True)
            store = WindowStore(osp.join(out_dir, WORK_DIR))
            reused = len(store.finished())
            windows_started = time.perf_counter()
            counts = _synchronised(lambda: self._run_windows(plan, store, progress))
            window_seconds = time.perf_counter() - windows_started
            everyone = _gather(dict(counts, memory=peak_memory_mb()))
            if rank != 0:
                return None
            result = assemble(
                plan, store, store.folder, out_dir, dst_crs=self.dst_crs,
                simplify=self.simplify, min_area=self.min_area,
                timestamp=datetime.fromtimestamp(os.stat(plan.scene).st_mtime, timezone.utc)
                .strftime('%Y-%m-%dT%H:%M:%S.000Z'),
                progress=None if progress is None else
                (lambda done, total: progress('outputs', done / total)))
            seconds = time.perf_counter() - started
            summary = self._summary(plan, store, everyone, reused, result, seconds,
                                    window_seconds, world)
            write_json_atomic(osp.join(out_dir, OUTPUT_FILES['summary']), summary)
            if not self.keep_work:
                shutil.rmtree(store.folder, ignore_errors=True)
            return summary
        finally:
            plan.reader.close()

    def _summary(self, plan: ScenePlan, store: WindowStore, everyone: List[Dict[str, Any]],
                 reused: int, result: Dict[str, Any], seconds: float, window_seconds: float,
                 world: int) -> Dict[str, Any]:
        reader, grid, parts = plan.reader, plan.grid, plan.parts
        inferred = sum(item['inferred'] for item in everyone)
        area_km2 = None
        if plan.source_gsd is not None:
            area_km2 = reader.width * reader.height * plan.source_gsd[0] * plan.source_gsd[1] \
                / 1e6
        return dict(
            scene=dict(path=osp.abspath(plan.scene), width=reader.width, height=reader.height,
                       crs=None if reader.crs is None else str(reader.crs),
                       bands=list(reader.bands), stretch_limits=reader.limits,
                       gsd_m=None if plan.source_gsd is None else list(plan.source_gsd),
                       area_km2=area_km2),
            gsd=dict(used_m=plan.target_gsd, source=plan.gsd_source, model_m=plan.model_gsd,
                     scale=list(grid.scale)),
            windows=dict(size=list(grid.window), stride=list(grid.stride),
                         total=len(plan.windows), with_data=len(store.index()),
                         skipped_no_data=len(store.empty_windows()),
                         inferred_this_run=inferred, batch_size=plan.batch_size,
                         batches=len(grid.batches(plan.batch_size)),
                         batches_reused=reused, processes=world),
            text=dict(expression=parts.expression, position_mode=plan.position,
                      window_expression=plan.window_text, object_phrase=parts.object_phrase,
                      position_phrases=parts.position_phrases, category=parts.category,
                      position_applied=applied_phrases(plan),
                      position_rule=parts.rule.describe() if plan.position == 'scene'
                      else None,
                      position_not_applied=parts.unresolved if plan.position == 'scene'
                      else [] if plan.position == 'window' else parts.position_phrases),
            objects=dict(found=result['components_found'],
                         below_min_area=result['components_below_min_area'],
                         selected=result['components_selected'], min_area=self.min_area),
            vectors=dict(crs=result['crs'], simplify=self.simplify),
            seconds=round(seconds, 3), window_seconds=round(window_seconds, 3),
            windows_per_second=round(inferred / window_seconds, 3) if window_seconds else None,
            km2_per_minute=None if area_km2 is None else round(area_km2 / (seconds / 60), 4),
            peak_memory_mb=round(max(peak_memory_mb(), *(e['memory'] for e in everyone)), 1),
            warnings=plan.warnings,
            outputs=dict(OUTPUT_FILES))
