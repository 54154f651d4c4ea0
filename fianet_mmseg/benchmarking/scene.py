"""Scene inference measured: peak memory against the scene's size, and the streamed path's
overhead (the work of ``tools/analysis_tools/benchmark_scene.py``; :func:`scene_benchmark`).

Synthetic scenes (uint8 RGB GeoTIFFs in UTM 33N at 0.5 m, textured ground with
bright discs, written block by block) of each of ``sizes``:

* **Memory**: each scene goes through ``demo/rs_image_inference.py`` in its own
  process; the peak resident memory is that process's (``summary.json``,
  ``getrusage``), next to the size of a uint8 RGB copy of the scene; the
  growth is counted from the smallest scene (same model, same batches).
* **Overhead**: in one process, the windows of an ``overhead_size`` scene
  through :class:`~fianet_mmseg.apis.scene.SceneInferencer` (reading, storing,
  blending, components, COGs, vectors) against a plain loop of
  ``inference_model`` calls on the same windows, already in memory, in the same
  batches, with the same text; the two alternate ``rounds`` times and the
  ratio is taken per round (median and range). Within each streamed run, the
  time outside its ``inference_model`` calls over the time inside them (immune
  to the machine's drift between the two runs of a round).

Without a checkpoint the config's model is saved with its initial weights
(random, the text encoder's pretrained) and used as the checkpoint. One record
per measurement, then a summary record.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction

TEXT = 'the storage tank on the lower left'
GSD = 0.5
ORIGIN = (500000.0, 4650000.0)
#: The folder that holds the imported ``fianet_mmseg`` (the CLI's processes import the same).
PACKAGE_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def resize_option(config: str, window: int) -> str:
    """``--cfg-options`` key of the test pipeline's Resize scale."""
    cfg = Config.fromfile(config)
    steps = cfg.test_dataloader.dataset.pipeline
    index = next(i for i, step in enumerate(steps) if step['type'] == 'Resize')
    return f'test_dataloader.dataset.pipeline.{index}.scale=({window},{window})'


def write_scene(path: str, side: int, seed: int = 0) -> str:
    """A ``side`` x ``side`` synthetic scene, written in 512-pixel blocks (never whole)."""
    import cv2
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    count = max(1, (side // 256) ** 2)
    discs = np.column_stack([rng.uniform(0, side, count), rng.uniform(0, side, count),
                             rng.uniform(10, 30, count)])
    profile = dict(driver='GTiff', width=side, height=side, count=3, dtype='uint8',
                   crs='EPSG:32633', transform=Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1]),
                   tiled=True, blockxsize=512, blockysize=512, compress='deflate')
    with rasterio.open(path, 'w', **profile) as dst:
        for row in range(0, side, 512):
            for col in range(0, side, 512):
                h, w = min(512, side - row), min(512, side - col)
                block_rng = np.random.default_rng([seed, row, col])
                ground = cv2.GaussianBlur(block_rng.uniform(40, 110, (h, w)).astype(np.float32),
                                          (0, 0), 1.5)
                rows, cols = np.mgrid[row:row + h, col:col + w] + 0.5
                for x, y, r in discs:
                    if x + r < col or x - r > col + w or y + r < row or y - r > row + h:
                        continue
                    ground[(cols - x) ** 2 + (rows - y) ** 2 <= r * r] = 230
                block = np.clip(ground, 0, 255).astype(np.uint8)
                dst.write(np.repeat(block[None], 3, axis=0), window=Window(col, row, w, h))
    return path



def cli_run(cli: str, scene: str, config: str, checkpoint: str, out_dir: str,
            options: List[str], batch_size: int) -> dict:
    """The scene CLI ``cli`` (``demo/rs_image_inference.py``) in its own process; its summary."""
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [sys.executable, cli, scene, TEXT, config, checkpoint, '--out-dir', out_dir,
               '--batch-size', str(batch_size), '--no-progress', '--cfg-options', *options]
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([PACKAGE_ROOT, os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f'{" ".join(command)}\n{done.stderr[-3000:]}')
    with open(osp.join(out_dir, 'summary.json'), encoding='utf-8') as file:
        return json.load(file)



def overhead(model, scene: str, out_dir: str, batch_size: int, rounds: int) -> dict:
    """Per round: the streamed path / a plain loop of ``inference_model`` on the same windows,
    and the streamed path's time outside its ``inference_model`` calls / inside them (timed in
    the same run, so the machine's drift between runs does not enter)."""
    from ..apis import foreground_probability, inference_model
    from ..apis.scene import SceneInferencer
    from ..apis.scene import inferencer as inferencer_module

    inside = []

    def timed_inference_model(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inference_model(*args, **kwargs)
        finally:
            inside.append(time.perf_counter() - started)

    inferencer = SceneInferencer(model, batch_size=batch_size, show_progress=False)
    plan = inferencer.plan(scene, TEXT)
    height, width = plan.grid.window[1], plan.grid.window[0]
    windows = [np.ascontiguousarray(plan.reader.read_window(
        plan.grid.source_window(*start), (height, width))[0][..., ::-1])
        for start in plan.windows]
    text = plan.window_text
    plan.reader.close()

    def plain() -> None:
        for start in range(0, len(windows), batch_size):
            batch = windows[start:start + batch_size]
            for result in inference_model(model, batch, [text] * len(batch),
                                          batch_size=len(batch)):
                foreground_probability(result)

    def streamed() -> None:
        inferencer(scene, TEXT, out_dir, overwrite=True)

    plain()  # warm-up
    times = dict(plain=[], streamed=[], streamed_model=[])
    inferencer_module.inference_model = timed_inference_model  # the streamed path's calls
    try:
        for _ in range(rounds):
            for name, step in (('plain', plain), ('streamed', streamed)):
                inside.clear()
                started = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - started)
            times['streamed_model'].append(sum(inside))
    finally:
        inferencer_module.inference_model = inference_model
    ratios = [s / p for s, p in zip(times['streamed'], times['plain'])]
    outside = [(s - m) / m for s, m in zip(times['streamed'], times['streamed_model'])]
    return dict(kind='overhead', scene_side=int(plan.reader.width), windows=len(windows),
                batch_size=batch_size, plain_s=times['plain'], streamed_s=times['streamed'],
                streamed_model_s=times['streamed_model'],
                outside_model_fraction=outside,
                outside_model_fraction_median=statistics.median(outside),
                ratio_median=statistics.median(ratios), ratio_min=min(ratios),
                ratio_max=max(ratios),
                plain_windows_per_s=[len(windows) / t for t in times['plain']],
                streamed_windows_per_s=[len(windows) / t for t in times['streamed']])



def scene_benchmark(cli: str, config: str, checkpoint: Optional[str] = None,
                    window: int = 480, sizes: Sequence[int] = (1024, 4096, 8192),
                    overhead_size: int = 2048, rounds: int = 3, batch_size: int = 4,
                    work_dir: str = '/tmp/fianet_scene_bench', only: Optional[str] = None,
                    cfg_options: Optional[dict] = None) -> Iterator[dict]:
    """The measurements, one record at a time: ``memory`` per scene side (unless
    ``only='overhead'``), ``overhead`` (unless ``only='memory'``), then ``summary``.

    Args:
        cli: Path of the scene CLI (``demo/rs_image_inference.py``) run per memory record.
        config: Model config; its test pipeline's Resize is set to ``window`` pixels.
        checkpoint: Checkpoint; None saves the config's initial weights to ``work_dir``.
        cfg_options: More config overrides (``--cfg-options``).
    """
    from .. import register_all_modules
    from ..apis import init_model

    register_all_modules()
    os.makedirs(work_dir, exist_ok=True)
    options = [resize_option(config, window)] + [
        f'{key}={value}' for key, value in (cfg_options or {}).items()]
    parsed = argparse.ArgumentParser()
    parsed.add_argument('--cfg-options', nargs='+', action=DictAction)
    model_options = parsed.parse_args(['--cfg-options', *options]).cfg_options
    model = init_model(config, checkpoint, cfg_options=model_options)
    if checkpoint is None:
        checkpoint = osp.join(work_dir, 'initial_weights.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    machine = dict(cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
                   torch=torch.__version__)
    records = []
    for side in (list(sizes) if only != 'overhead' else []):
        scene = write_scene(osp.join(work_dir, f'scene_{side}.tif'), side)
        summary = cli_run(cli, scene, config, checkpoint, osp.join(work_dir, f'out_{side}'),
                          options, batch_size)
        record = dict(kind='memory', scene_side=side, uint8_rgb_copy_mb=3 * side * side / 2**20,
                      peak_memory_mb=summary['peak_memory_mb'],
                      windows=summary['windows']['total'], seconds=summary['seconds'],
                      windows_per_second=summary['windows_per_second'],
                      objects_found=summary['objects']['found'], **machine)
        records.append(record)
        yield record
        os.remove(scene)
    summary = dict(kind='summary', window=window, batch_size=batch_size)
    if records:
        floor = records[0]['peak_memory_mb']
        summary['growth_mb'] = {r['scene_side']: round(r['peak_memory_mb'] - floor, 1)
                                for r in records}
    if only != 'memory':
        scene = write_scene(osp.join(work_dir, 'scene_overhead.tif'), overhead_size)
        record = overhead(model, scene, osp.join(work_dir, 'out_overhead'), batch_size, rounds)
        yield record
        summary['overhead_ratio_median'] = record['ratio_median']
        summary['outside_model_fraction_median'] = record['outside_model_fraction_median']
    yield summary
