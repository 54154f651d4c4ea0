"""Kill-anywhere resume: AtomicCheckpointHook against mmengine's stock CheckpointHook.

Fast tests run a toy mmengine Runner in this process and "kill" it by raising from inside a
checkpoint write. The slow test trains a tiny FIANet with tools/train.py in subprocesses that
SIGKILL themselves (tests/kill_points.py) mid-iteration, mid-checkpoint-write and right after a
checkpoint write, resumes each with --resume and compares the final weights with an
uninterrupted run.
"""
from __future__ import annotations

import io
import itertools
import os
import os.path as osp
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, REPO, load_config, tiny_cli_options
from mmengine.evaluator import BaseMetric
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from fianet_mmseg.engine.hooks import AtomicCheckpointHook, checkpoint_hook
from fianet_mmseg.engine.hooks.checkpoint_hook import TMP_SUFFIX, atomic_write

# -- a toy runner, killed in-process -------------------------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL inside this process (not an Exception: nothing catches it)."""


class ToyModel(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))[:, 0]
        if mode == 'loss':
            return {'loss': (out - torch.stack(data_samples)).pow(2).mean()}
        return list(out) if mode == 'predict' else out


class ToyData(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=torch.tensor([float(i), 1.0]), data_samples=torch.tensor(2.0 * i))


class RisingScore(BaseMetric):
    """``score`` 1, 2, 3, ... over the whole session: every validation is a new best."""

    calls = itertools.count(1)

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        return {'score': float(next(self.calls))}


class ScoreAndLoss(RisingScore):
    """``score`` rising and ``loss`` falling: a new best for both keys at every validation."""

    def compute_metrics(self, results) -> dict:
        score = float(next(self.calls))
        return {'score': score, 'loss': 1.0 / score}


_runner_ids = itertools.count()


def toy_runner(work_dir: Path, hook: CheckpointHook, max_epochs: int = 2, resume: bool = False,
               validate: bool = False, max_iters: int | None = None,
               metric: BaseMetric | None = None) -> Runner:
    loader = dict(dataset=ToyData(), batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    if max_iters is None:
        train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
    else:
        train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
    extra = {}
    torch.manual_seed(0)  # the model is built before the runner seeds anything
    if validate:
        extra = dict(val_dataloader=loader, val_cfg=dict(),
                     val_evaluator=[metric or RisingScore()])
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), train_dataloader=loader, train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        param_scheduler=dict(type='ConstantLR', factor=1.0),
        default_hooks=dict(checkpoint=hook), resume=resume, randomness=dict(seed=0),
        experiment_name=f'toy{next(_runner_ids)}', log_level='WARNING', **extra)


def kill_mid_write(monkeypatch, name: str) -> None:
    """Both write paths write half of ``name``'s bytes, then the run dies."""
    real_put = LocalBackend.put  # the stock hook's checkpoint write: open(path, 'wb')

    def put(self, obj, filepath):
        if osp.basename(filepath) != name:
            return real_put(self, obj, filepath)
        with open(filepath, 'wb') as file:
            file.write(obj[:len(obj) // 2])
        raise Killed

    real_atomic_write = checkpoint_hook.atomic_write  # AtomicLocalBackend.put's

    def atomic_write_then_die(path, write):
        if osp.basename(path) != name:
            return real_atomic_write(path, write)

        def half(file):
            buffer = io.BytesIO()
            write(buffer)
            data = buffer.getvalue()
            file.write(data[:len(data) // 2])
            raise Killed

        real_atomic_write(path, half)

    monkeypatch.setattr(LocalBackend, 'put', put)
    monkeypatch.setattr(checkpoint_hook, 'atomic_write', atomic_write_then_die)


def kill_after_write(monkeypatch, name: str, content: str | None = None) -> None:
    """The run dies right after ``name`` is in place (with ``content`` ending as given)."""
    real_atomic_write = checkpoint_hook.atomic_write

    def atomic_write_then_die(path, write):
        real_atomic_write(path, write)
        if osp.basename(path) == name and (
                content is None or Path(path).read_text().endswith(content)):
            raise Killed

    monkeypatch.setattr(checkpoint_hook, 'atomic_write', atomic_write_then_die)


def load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def pth_names(folder: Path) -> set:
    return {p.name for p in folder.glob('*.pth')}


STOCK, ATOMIC = 'CheckpointHook', 'AtomicCheckpointHook'
HOOK_TYPES = {STOCK: CheckpointHook, ATOMIC: AtomicCheckpointHook}


@pytest.mark.parametrize('hook_type', [STOCK, ATOMIC])
def test_kill_mid_write_of_the_next_checkpoint(hook_type, tmp_path, monkeypatch):
    """max_keep_ckpts=1: the stock hook has deleted epoch_1.pth when epoch_2.pth dies half
    written, last_checkpoint names the deleted file and resuming fails; the atomic hook keeps
    epoch_1.pth, named by last_checkpoint, and no half file under a checkpoint name."""
    kill_mid_write(monkeypatch, 'epoch_2.pth')
    hook = HOOK_TYPES[hook_type](interval=1, max_keep_ckpts=1)
    with pytest.raises(Killed):
        toy_runner(tmp_path, hook).train()
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last == str(tmp_path / 'epoch_1.pth')
    if hook_type == STOCK:
        assert not (tmp_path / 'epoch_1.pth').exists()
        with pytest.raises(Exception):  # noqa: B017  (the half file is not a checkpoint)
            load(tmp_path / 'epoch_2.pth')
        with pytest.raises(FileNotFoundError):
            toy_runner(tmp_path, CheckpointHook(interval=1, max_keep_ckpts=1),
                       resume=True).train()
        return
    assert load(tmp_path / 'epoch_1.pth')['meta']['epoch'] == 1
    assert not (tmp_path / 'epoch_2.pth').exists()
    assert not list(tmp_path.glob(f'.*{TMP_SUFFIX}'))  # an exception (not a kill) cleans up


def resume_to_epoch_3_like(full, parts) -> None:
    """Resume the killed toy run in ``parts`` to epoch 3: only ``epoch_3.pth`` is left and its
    weights equal those of the uninterrupted run in ``full``."""
    toy_runner(parts, AtomicCheckpointHook(interval=1, max_keep_ckpts=1), max_epochs=3,
               resume=True).train()
    assert pth_names(parts) == {'epoch_3.pth'}
    expected, resumed = load(full / 'epoch_3.pth'), load(parts / 'epoch_3.pth')
    for key, value in expected['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key
    assert resumed['meta']['epoch'] == 3


def test_atomic_hook_resume_after_mid_write_kill_equals_uninterrupted(tmp_path, monkeypatch):
    full, parts = tmp_path / 'full', tmp_path / 'parts'
    toy_runner(full, AtomicCheckpointHook(interval=1, max_keep_ckpts=1), max_epochs=3).train()
    with monkeypatch.context() as patch:
        kill_mid_write(patch, 'epoch_2.pth')
        with pytest.raises(Killed):
            toy_runner(parts, AtomicCheckpointHook(interval=1, max_keep_ckpts=1),
                       max_epochs=3).train()
    resume_to_epoch_3_like(full, parts)


@pytest.mark.parametrize('hook_type', [STOCK, ATOMIC])
def test_kill_mid_write_of_a_new_best_checkpoint(hook_type, tmp_path, monkeypatch):
    """Epoch 2 is a new best: the stock hook deletes best_score_epoch_1.pth before writing
    best_score_epoch_2.pth; the atomic hook deletes it only after."""
    kill_mid_write(monkeypatch, 'best_score_epoch_2.pth')
    hook = HOOK_TYPES[hook_type](interval=1, max_keep_ckpts=1, save_best='score', rule='greater')
    with pytest.raises(Killed):
        toy_runner(tmp_path, hook, validate=True).train()
    survived = (tmp_path / 'best_score_epoch_1.pth').exists()
    assert survived == (hook_type == ATOMIC)
    if hook_type == ATOMIC:
        assert load(tmp_path / 'best_score_epoch_1.pth')['meta']['epoch'] == 1
        assert pth_names(tmp_path) == {'epoch_2.pth', 'best_score_epoch_1.pth'}


@pytest.mark.parametrize('kill', ['after_last_checkpoint', 'after_best'])
def test_files_a_kill_left_behind_are_removed_on_resume(kill, tmp_path, monkeypatch):
    """Killed (2 epochs of 3 done) after epoch_2.pth is named in last_checkpoint but before
    epoch_1.pth is deleted, or after best_score_epoch_2.pth is written but before epoch_2.pth
    records it; plus a temporary file of a killed write. The resumed run ends with exactly
    the files an uninterrupted one keeps (max_keep_ckpts=1, one best) and keeps other files."""
    def hook():
        return AtomicCheckpointHook(interval=1, max_keep_ckpts=1, save_best='score',
                                    rule='greater')

    with monkeypatch.context() as patch:
        if kill == 'after_last_checkpoint':
            kill_after_write(patch, 'last_checkpoint', 'epoch_2.pth')
            left = {'epoch_1.pth', 'epoch_2.pth', 'best_score_epoch_1.pth'}
        else:
            kill_after_write(patch, 'best_score_epoch_2.pth')
            left = {'epoch_2.pth', 'best_score_epoch_1.pth', 'best_score_epoch_2.pth'}
        with pytest.raises(Killed):
            toy_runner(tmp_path, hook(), max_epochs=3, validate=True).train()
    assert pth_names(tmp_path) == left
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_2.pth')
    leftover = tmp_path / f'.epoch_3.pth.123.0badf00d{TMP_SUFFIX}'
    leftover.write_bytes(b'half a checkpoint')
    others = [tmp_path / 'notes.tmp', tmp_path / '.epoch_3.pth.keep']
    for path in others:
        path.write_text('not ours')
    toy_runner(tmp_path, hook(), max_epochs=3, validate=True, resume=True).train()
    assert pth_names(tmp_path) == {'epoch_3.pth', 'best_score_epoch_3.pth'}
    assert not leftover.exists() and all(path.exists() for path in others)
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_3.pth')


def test_iteration_interval_max_keep_and_out_dir(tmp_path):
    """by_epoch=False, interval=2 over 6 iterations, max_keep_ckpts=2, out_dir: iterations 2,
    4, 6 are saved, 4 and 6 kept in <out_dir>/<work dir name>; last_checkpoint in the work dir.
    Files get the permissions open() gives."""
    work_dir, out_dir = tmp_path / 'run', tmp_path / 'out'
    hook = AtomicCheckpointHook(interval=2, by_epoch=False, max_keep_ckpts=2,
                                out_dir=str(out_dir))
    toy_runner(work_dir, hook, max_iters=6).train()
    folder = out_dir / 'run'
    assert pth_names(folder) == {'iter_4.pth', 'iter_6.pth'}
    assert not list(work_dir.glob('*.pth'))
    assert (work_dir / 'last_checkpoint').read_text() == str(folder / 'iter_6.pth')
    assert load(folder / 'iter_4.pth')['meta']['iter'] == 4
    reference = tmp_path / 'plain'
    reference.write_bytes(b'')
    assert (folder / 'iter_6.pth').stat().st_mode == reference.stat().st_mode


def test_kill_mid_write_of_last_checkpoint_keeps_the_previous_name(tmp_path, monkeypatch):
    """The stock hook rewrites last_checkpoint in place (open(path, 'w')); the atomic hook
    replaces it: killed half-way through naming epoch_2.pth, it still names the complete
    epoch_1.pth (not deleted yet), and the resumed run ends as an uninterrupted one."""
    full, parts = tmp_path / 'full', tmp_path / 'parts'
    toy_runner(full, AtomicCheckpointHook(interval=1, max_keep_ckpts=1), max_epochs=3).train()
    real_atomic_write = checkpoint_hook.atomic_write

    def die_naming_epoch_2(path, write):
        buffer = io.BytesIO()
        write(buffer)
        data = buffer.getvalue()
        if osp.basename(path) == 'last_checkpoint' and data.endswith(b'epoch_2.pth'):
            def half(file):
                file.write(data[:len(data) // 2])
                raise Killed

            return real_atomic_write(path, half)
        return real_atomic_write(path, lambda file: file.write(data))

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_hook, 'atomic_write', die_naming_epoch_2)
        with pytest.raises(Killed):
            toy_runner(parts, AtomicCheckpointHook(interval=1, max_keep_ckpts=1),
                       max_epochs=3).train()
    assert (parts / 'last_checkpoint').read_text() == str(parts / 'epoch_1.pth')
    assert pth_names(parts) == {'epoch_1.pth', 'epoch_2.pth'}
    assert load(parts / 'epoch_2.pth')['meta']['epoch'] == 2
    resume_to_epoch_3_like(full, parts)


#: hook arguments, toy_runner arguments
SETTINGS = {
    'epochs, keep 1, best, published': (
        dict(interval=1, max_keep_ckpts=1, save_best='score', rule='greater',
             published_keys=['meta', 'state_dict']), dict(max_epochs=3)),
    'interval 2, keep 2, auto': (  # the rule of 'acc/score' is inferred ('acc': greater)
        dict(interval=2, max_keep_ckpts=2, save_best='auto'),
        dict(max_epochs=5, metric=lambda: RisingScore(prefix='acc'))),
    'two keys': (
        dict(interval=1, max_keep_ckpts=1, save_best=['score', 'loss'], rule=['greater', 'less']),
        dict(max_epochs=3, metric=ScoreAndLoss)),
    'iterations': (
        dict(interval=2, by_epoch=False, max_keep_ckpts=2, save_best='score', rule='greater'),
        dict(max_iters=6)),
}
HUB_KEYS = ('keep_ckpt_ids', 'last_ckpt', 'best_ckpt', 'best_ckpt_score', 'best_ckpt_loss')


def _published_names(folder: Path) -> set:
    """``*.pth`` names, the sha256 prefix of published files replaced by ``HASH``."""
    return {re.sub(r'-[0-9a-f]{8}\.pth$', '-HASH.pth', name) for name in pth_names(folder)}


@pytest.mark.parametrize('setting', SETTINGS)
def test_same_files_and_bookkeeping_as_mmengines_hook(setting, tmp_path):
    """Uninterrupted, both hooks keep the same checkpoints (regular, best, published), name the
    same one in last_checkpoint and record the same message-hub entries in it."""
    hook_args, run_args = SETTINGS[setting]
    kept = {}
    for name, hook_type in HOOK_TYPES.items():
        args = dict(run_args)
        metric = args.pop('metric', None)
        toy_runner(tmp_path / name, hook_type(**hook_args), validate=True,
                   metric=metric() if metric else None, **args).train()
        last = Path((tmp_path / name / 'last_checkpoint').read_text())
        info = load(last)['message_hub']['runtime_info']
        hub = {key: info[key] for key in HUB_KEYS if key in info}
        hub = {key: (osp.basename(v) if isinstance(v, str) else v) for key, v in hub.items()}
        kept[name] = dict(files=_published_names(tmp_path / name), last=last.name, hub=hub,
                          pending=info.get(checkpoint_hook.PENDING_KEY))
    # the atomic hook's checkpoint records what it deleted right after it was written
    assert kept[STOCK]['pending'] is None
    assert not any(osp.exists(path) for path in kept[ATOMIC]['pending'])
    for entry in kept.values():
        entry.pop('pending')
    assert kept[ATOMIC] == kept[STOCK]
    if setting.startswith('interval 2'):
        assert kept[ATOMIC]['files'] == {'epoch_4.pth', 'epoch_5.pth',
                                         'best_acc_score_epoch_5.pth'}


def test_no_private_member_of_mmengines_hook_is_overridden_or_called(tmp_path, monkeypatch):
    """The hook overrides only public members of CheckpointHook, and training with regular
    and best checkpoints never reaches the parent's private save methods."""
    private = {name for cls in CheckpointHook.__mro__ if cls.__module__.startswith('mmengine')
               for name in vars(cls) if name.startswith('_') and not name.startswith('__')}
    assert {'_save_checkpoint_with_step', '_save_best_checkpoint'} <= private
    assert not private & set(vars(AtomicCheckpointHook))

    def never(*args, **kwargs):
        raise AssertionError('a private method of CheckpointHook was called')

    for name in ('_save_checkpoint', '_save_checkpoint_with_step', '_save_best_checkpoint'):
        monkeypatch.setattr(CheckpointHook, name, never)
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1, save_best='score', rule='greater')
    toy_runner(tmp_path, hook, validate=True).train()
    assert pth_names(tmp_path) == {'epoch_2.pth', 'best_score_epoch_2.pth'}


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / 'a.bin'
    atomic_write(path, lambda file: file.write(b'old'))

    def fail(file):
        file.write(b'new, but incomp')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, fail)
    assert path.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.bin']


def test_configs_use_the_atomic_hook_with_the_same_arguments():
    from mmseg.registry import HOOKS

    cfg = load_config('fianet_swin-b_rrsisd.py').default_hooks.checkpoint
    hook = HOOKS.build(cfg)
    assert type(hook) is AtomicCheckpointHook
    assert (hook.interval, hook.by_epoch, hook.max_keep_ckpts) == (1, True, 1)
    assert hook.save_best == ['oIoU'] and hook.rules == ['greater']


# -- tools/train.py, SIGKILLed ---------------------------------------------------------------

CONFIG = CONFIGS / 'fianet_swin-b_rrsisd.py'
EPOCHS, KILL_EPOCH, SIZE = 3, 2, 64
POINTS = ('mid_iteration', 'mid_write', 'after_write')
#: The same float32 arithmetic on weights of magnitude ~1 (float32 spacing there: 1.2e-7) must
#: agree to a few units in the last place; a lost or repeated step moves weights by ~lr = 1e-3.
TOLERANCE = 1e-6


def train_options(data_root) -> list:
    """tiny_cli_options at batch 3 (2 iterations an epoch), 64x64 inputs, no random boxes
    (RandomBlackBoxes ratio 0: none selected, no random draws), lr 1e-3 (weights move enough
    per epoch for the comparison to see a lost or repeated step)."""
    cfg = load_config(CONFIG.name)
    options = tiny_cli_options(data_root, epochs=EPOCHS, batch_size=3)
    for split in ('train', 'val', 'test'):
        for index, step in enumerate(cfg[f'{split}_dataloader'].dataset.pipeline):
            prefix = f'{split}_dataloader.dataset.pipeline.{index}'
            if step.type == 'Resize':
                options.append(f'{prefix}.scale=({SIZE},{SIZE})')
            elif step.type == 'RandomBlackBoxes':
                options.append(f'{prefix}.ratio=0.0')
    return options + ['optim_wrapper.optimizer.lr=1e-3']


def write_kill_config(folder: Path) -> Path:
    """The FIANet config plus tests/kill_points.py (custom_imports are imported when the file
    is read, so they cannot come through --cfg-options)."""
    imports = list(load_config(CONFIG.name).custom_imports.imports) + ['kill_points']
    path = folder / 'fianet_kill_points.py'
    path.write_text(f'_base_ = [{str(CONFIG)!r}]\n'
                    f'custom_imports = dict(imports={imports!r}, allow_failed_imports=False)\n'
                    "default_hooks = dict(kill_point=dict(type='KillPointHook'))\n")
    return path


def start(config: Path, work_dir: Path, options: list, kill: str = '',
          resume: bool = False) -> tuple:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', FIANET_KILL_EPOCH=str(KILL_EPOCH),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / 'tests'),
                                                        os.environ.get('PYTHONPATH')])))
    env.pop('FIANET_KILL_POINT', None)
    if kill:
        env['FIANET_KILL_POINT'] = kill
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir.parent / f'{work_dir.name}{"_resume" if resume else ""}.log'
    cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir',
           str(work_dir), *(['--resume'] if resume else []), '--cfg-options', *options]
    with open(log, 'w') as out:
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def finish(started: tuple, timeout: float = 600) -> tuple:
    process, log = started
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return code, log.read_text()


def state_dict(path: Path) -> dict:
    return load(path)['state_dict']


def max_abs_difference(a: dict, b: dict) -> float:
    """Largest difference over the tensors of two state dicts (other entries must be equal)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key, value in a.items():
        if not torch.is_tensor(value):
            assert value == b[key], key  # e.g. a module's extra state
        elif value.numel():
            worst = max(worst, float((value.double() - b[key].double()).abs().max()))
    return worst


@pytest.fixture(scope='module')
def killed_runs(rrsisd_root, tmp_path_factory):
    """The reference run and the three killed runs (in parallel, one thread each), what each
    kill left on disk, then the three resumed runs (in parallel)."""
    root = tmp_path_factory.mktemp('kill_resume')
    config, options = write_kill_config(root), train_options(rrsisd_root)
    started = {'reference': start(config, root / 'reference', options)}
    started.update({point: start(config, root / point, options, kill=point) for point in POINTS})
    killed = {name: finish(run) for name, run in started.items()}
    code, log = killed.pop('reference')
    assert code == 0, log[-5000:]
    reference = state_dict(root / 'reference' / f'epoch_{EPOCHS}.pth')
    left = {}
    for point in POINTS:
        folder = root / point
        left[point] = dict(
            files={p.name for p in folder.iterdir() if p.is_file()},
            last_checkpoint=(folder / 'last_checkpoint').read_text(),
            temporary=[(p.name, p.stat().st_size) for p in folder.glob(f'.*{TMP_SUFFIX}')])
        if point == 'mid_write':
            left[point]['temporary_loads'] = _loads(next(folder.glob(f'.*{TMP_SUFFIX}')))
            left[point]['previous'] = load(folder / f'epoch_{KILL_EPOCH - 1}.pth')['meta']
        if point == 'after_write':
            saved = state_dict(folder / f'epoch_{KILL_EPOCH}.pth')
            left[point]['epoch_2_to_final'] = max_abs_difference(saved, reference)
    started = {point: start(config, root / point, options, resume=True) for point in POINTS}
    resumed = {point: finish(run) for point, run in started.items()}
    return dict(root=root, reference=reference, killed=killed, left=left, resumed=resumed)


def _loads(path: Path) -> bool:
    try:
        load(path)
    except Exception:  # noqa: BLE001  (a half-written zip archive: any error means "no")
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize('point', POINTS)
def test_sigkill_then_resume_matches_uninterrupted_training(point, killed_runs):
    """tools/train.py killed in epoch 2 of 3 (AtomicCheckpointHook, max_keep_ckpts=1,
    save_best) leaves a complete checkpoint named by last_checkpoint; --resume ends with the
    weights of the uninterrupted run and without the kill's leftovers."""
    root, left = killed_runs['root'], killed_runs['left'][point]
    folder = root / point
    code, log = killed_runs['killed'][point]
    assert code == -signal.SIGKILL, log[-3000:]
    epoch1, epoch2 = 'epoch_1.pth', 'epoch_2.pth'
    if point == 'mid_iteration':
        assert 'Epoch(train) [2][1/2]' in log and 'Epoch(train) [2][2/2]' not in log
        assert {epoch1, 'last_checkpoint'} <= left['files'] and epoch2 not in left['files']
        assert left['last_checkpoint'] == str(folder / epoch1)
        assert not left['temporary']
    elif point == 'mid_write':
        # the previous checkpoint survived, complete, and is what last_checkpoint names
        assert left['last_checkpoint'] == str(folder / epoch1)
        assert epoch1 in left['files'] and epoch2 not in left['files']
        assert left['previous']['epoch'] == 1
        # the killed write left half a file under a temporary name only
        [(name, size)] = left['temporary']
        assert name.startswith(f'.{epoch2}.') and size > 0
        assert not left['temporary_loads']
    else:
        # epoch_2.pth complete and named; epoch_1.pth not deleted yet (that came after)
        assert left['last_checkpoint'] == str(folder / epoch2)
        assert {epoch1, epoch2} <= left['files'] and not left['temporary']
        # one epoch of training moves the weights far beyond the tolerance
        assert left['epoch_2_to_final'] > 1000 * TOLERANCE

    code, log = killed_runs['resumed'][point]
    assert code == 0, log[-5000:]
    resumed_from = 2 if point == 'after_write' else 1
    assert f'resumed epoch: {resumed_from}' in log
    resumed = state_dict(folder / f'epoch_{EPOCHS}.pth')
    assert max_abs_difference(resumed, killed_runs['reference']) <= TOLERANCE
    # leftovers of the kill are gone: the temporary file, the superseded checkpoint
    assert not list(folder.glob(f'.*{TMP_SUFFIX}'))
    assert {p.name for p in folder.glob('epoch_*.pth')} == {f'epoch_{EPOCHS}.pth'}
    assert (folder / 'last_checkpoint').read_text() == str(folder / f'epoch_{EPOCHS}.pth')
