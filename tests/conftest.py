"""Shared test helpers: paths, model building from the project's configs."""
from __future__ import annotations

import importlib.util
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

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import fianet_mmseg  # noqa: E402  (stand-ins before mmseg.models)

fianet_mmseg.register_all_modules()

FIXTURES = Path(__file__).resolve().parent / 'fixtures'
CONFIGS = REPO / 'configs'
PARITY_FIXTURE = FIXTURES / 'reference_logits_small.pt'

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
    folder = str(path.parent)
    if folder not in sys.path:  # scripts import their sibling modules
        sys.path.insert(0, folder)
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
    """Overrides that shrink the Swin-B FIANet config to a seconds-fast model."""
    dims = [embed * 2**i for i in range(4)]
    return {
        'model.backbone.embed_dims': embed,
        'model.backbone.depths': [2, 2, 2, 2],
        'model.backbone.num_heads': [1, 2, 2, 4],
        'model.backbone.window_size': 4,
        'model.backbone.init_cfg': None,
        'model.neck.in_channels': dims,
        'model.neck.num_blocks': 1,
        'model.decode_head.in_channels': dims,
        'model.decode_head.channels': channels,
        'model.text_encoder.name_or_path': None,
        'model.text_encoder.bert_config': dict(
            vocab_size=30522, hidden_size=text_width, num_hidden_layers=layers,
            num_attention_heads=2, intermediate_size=2 * text_width,
            max_position_embeddings=64),
        'model.text_encoder.trainable_layers': list(range(layers)),
    }


@pytest.fixture(scope='session')
def rrsisd_root(tmp_path_factory):
    """The RRSIS-D format fixture converted to the project's JSONL layout."""
    from fianet_mmseg.datasets.converters import convert_rrsisd

    out = tmp_path_factory.mktemp('rrsisd_converted')
    convert_rrsisd(FIXTURES / 'formats' / 'rrsisd', out, overwrite=True)
    return out


def tiny_cli_options(data_root, epochs: int = 2, batch_size: int = 2) -> list:
    """``--cfg-options`` that run configs/fianet_swin-b_rrsisd.py tiny and offline.

    The model shrinks to a 16-wide Swin and a 2-layer, 32-wide random BERT
    (dropout off, so runs are deterministic); the data comes from
    ``data_root`` with the offline uncased tokenizer, no workers.
    """
    from fianet_mmseg.utils import DEMO_TEXT_ENCODER

    dims = '[16,32,64,128]'
    options = [
        'model.backbone.embed_dims=16', 'model.backbone.depths=[2,2,2,2]',
        'model.backbone.num_heads=[1,2,2,4]', 'model.backbone.window_size=4',
        'model.backbone.init_cfg=None', 'model.backbone.drop_path_rate=0.0',
        f'model.neck.in_channels={dims}', 'model.neck.num_blocks=1',
        f'model.decode_head.in_channels={dims}', 'model.decode_head.channels=32',
        'model.text_encoder.name_or_path=None',
        'model.text_encoder.bert_config.vocab_size=30522',
        'model.text_encoder.bert_config.hidden_size=32',
        'model.text_encoder.bert_config.num_hidden_layers=2',
        'model.text_encoder.bert_config.num_attention_heads=2',
        'model.text_encoder.bert_config.intermediate_size=64',
        'model.text_encoder.bert_config.max_position_embeddings=64',
        'model.text_encoder.bert_config.hidden_dropout_prob=0.0',
        'model.text_encoder.bert_config.attention_probs_dropout_prob=0.0',
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
            f'{loader}.dataset.pipeline.{index}.tokenizer={DEMO_TEXT_ENCODER}',
            f'{loader}.batch_size={batch_size}', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False', f'{loader}.pin_memory=False',
        ]
    return options


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
