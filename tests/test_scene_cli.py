"""demo/rs_image_inference.py end to end with the tiny FIANet: outputs, SIGKILL and --resume,
two processes (torchrun, gloo), errors.

Every run uses one intra-op thread (``OMP_NUM_THREADS=1``), as torchrun gives each of its
processes: the same windows then give the same bits in every process.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import BASE_CONFIG, REPO, make_tiny_checkpoint, require, tiny_test_options
from scene_helpers import mosaic, write_scene

rasterio = require('rasterio', 'pip install "fianet-mmseg[geo]"')

CLI = str(REPO / 'demo' / 'rs_image_inference.py')
CONFIG = BASE_CONFIG
TEXT = 'the storage tank on the lower left'
OUTPUTS = ('mask.tif', 'probability.tif', 'polygons.gpkg', 'polygons.geojson')
#: 250 x 200 pixels, 96-pixel windows every 72: 4 x 3 windows, batches of 2: 6 batches
BATCHES = 6


@pytest.fixture(scope='module')
def setup(rrsisd_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('scene_cli')
    checkpoint = make_tiny_checkpoint(rrsisd_root, folder / 'tiny.pth')
    image, _ = mosaic(200, 250, [(60, 150, 14), (180, 60, 16)], seed=5)
    scene = write_scene(folder / 'scene.tif', image, gsd=0.5)
    return dict(scene=scene, checkpoint=str(checkpoint), folder=folder,
                options=tiny_test_options(rrsisd_root))


def command(setup, out_dir, *extra, launcher=(sys.executable,)):
    return [*launcher, CLI, setup['scene'], TEXT, CONFIG, setup['checkpoint'], '--out-dir',
            str(out_dir), '--batch-size', '2', *extra, '--cfg-options', *setup['options']]


def env():
    return dict(os.environ, OMP_NUM_THREADS='1')


def run(args, ok=True):
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env(),
                          cwd=REPO)
    if ok:
        assert done.returncode == 0, done.stderr[-4000:]
    return done


def outputs(folder) -> dict:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope='module')
def reference(setup):
    """One uninterrupted run in one process."""
    out = setup['folder'] / 'reference'
    done = run(command(setup, out))
    return out, done


@pytest.mark.slow
def test_cli_writes_every_output(setup, reference):
    out, done = reference
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, 'summary.json'])
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['windows']['total'] == 12 and summary['windows']['batches'] == BATCHES
    assert summary['text']['position_mode'] == 'scene'
    assert summary['text']['window_expression'] == 'the storage tank'
    assert summary['text']['position_applied'] == 'on the lower left'
    assert summary['gsd']['used_m'] is None and summary['scene']['gsd_m'] == [0.5, 0.5]
    for key in ('seconds', 'windows_per_second', 'km2_per_minute', 'peak_memory_mb'):
        assert summary[key] > 0
    with rasterio.open(out / 'mask.tif') as src, rasterio.open(setup['scene']) as source:
        assert src.crs == source.crs and src.transform == source.transform
        values = set(np.unique(src.read(1)).tolist())
        assert values <= {0, 1} and src.nodata == 255
        assert src.tags()['expression'] == TEXT
    assert '12 windows inferred' in done.stdout and 'window' in done.stderr  # the progress bar


@pytest.mark.slow
def test_sigkill_then_resume_gives_byte_identical_outputs(setup, reference):
    out = setup['folder'] / 'killed'
    process = subprocess.Popen(command(setup, out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env(), cwd=REPO)
    batches = out / 'work' / 'batches'
    deadline = time.monotonic() + 600
    try:
        while len(list(batches.glob('*.json')) if batches.is_dir() else []) < 2:
            assert process.poll() is None, 'the run ended before it could be killed'
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    finished = len(list(batches.glob('*.json')))
    assert 2 <= finished < BATCHES and not (out / 'summary.json').exists()
    done = run(command(setup, out, '--resume'))
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['windows']['batches_reused'] >= finished
    assert f'{summary["windows"]["batches_reused"]} batches reused' in done.stdout
    assert outputs(out) == outputs(reference[0])


@pytest.mark.slow
def test_two_processes_give_the_outputs_of_one(setup, reference):
    out = setup['folder'] / 'two'
    launcher = (sys.executable, '-m', 'torch.distributed.run', '--standalone',
                '--nproc-per-node', '2')
    run(command(setup, out, '--no-progress', launcher=launcher))
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['windows']['processes'] == 2
    assert summary['windows']['inferred_this_run'] == 12
    assert outputs(out) == outputs(reference[0])


@pytest.mark.slow
def test_cli_errors(setup, reference):
    done = run(command(setup, reference[0]), ok=False)
    assert done.returncode == 1
    assert 'error: the output folder' in done.stderr and 'give --overwrite' in done.stderr
    args = command(setup, setup['folder'] / 'no_object')
    args[args.index(TEXT)] = 'on the lower left'
    done = run(args, ok=False)
    assert done.returncode == 1 and "error: the expression 'on the lower left' has no object " \
        'phrase' in done.stderr


@pytest.mark.slow
def test_scene_benchmark_cli(setup, tmp_path, capsys):
    """tools/analysis_tools/benchmark_scene.py: a memory record through the scene CLI's own
    process, the overhead record timed in this one, then the summary; the timing hook on the
    scene path's model calls is removed afterwards."""
    from conftest import load_script

    from fianet_mmseg.apis import inference_model
    from fianet_mmseg.apis.scene import inferencer as inferencer_module

    tool = load_script('tools/analysis_tools/benchmark_scene.py')
    tool.main([CONFIG, '--checkpoint', setup['checkpoint'], '--window', '96', '--sizes', '100',
               '--overhead-size', '100', '--rounds', '1', '--batch-size', '2',
               '--work-dir', str(tmp_path), '--cfg-options', *setup['options']])
    memory, overhead, summary = [json.loads(line) for line in
                                 capsys.readouterr().out.splitlines() if line.startswith('{')]
    assert [memory['kind'], overhead['kind'], summary['kind']] == ['memory', 'overhead',
                                                                   'summary']
    assert memory['scene_side'] == 100 and memory['peak_memory_mb'] > 0
    assert overhead['windows'] == memory['windows'] > 1
    # the model's share is timed inside the streamed run: a part of it
    assert 0 < overhead['streamed_model_s'][0] < overhead['streamed_s'][0]
    assert summary['growth_mb'] == {'100': 0.0}
    assert summary['overhead_ratio_median'] == overhead['ratio_median']
    assert inferencer_module.inference_model is inference_model
    assert not (tmp_path / 'scene_100.tif').exists()
