"""Test-only: a ``tools/train.py`` run that kills itself (SIGKILL) at a chosen point.

Imported by the training subprocess of ``tests/test_resume.py`` through ``custom_imports``
(``tests/`` on ``PYTHONPATH``); the config adds ``default_hooks.kill_point.type=KillPointHook``.
The environment chooses the point; without ``FIANET_KILL_POINT`` nothing happens:

- ``FIANET_KILL_POINT=mid_iteration``: during the forward pass (end of the backbone) of the second
  iteration of epoch ``FIANET_KILL_EPOCH`` (after the first iteration of that epoch changed the
  weights).
- ``mid_write``: while ``epoch_<FIANET_KILL_EPOCH>.pth`` is written the first time: half of its
  bytes are in the temporary file (written, flushed, fsync'ed), then SIGKILL.
- ``after_write``: right after ``last_checkpoint`` was first replaced by one naming
  ``epoch_<FIANET_KILL_EPOCH>.pth`` (the checkpoint is complete; the older one is not deleted yet).
"""
from __future__ import annotations

import io
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from fianet_mmseg.engine.hooks import checkpoint_hook

POINT = os.environ.get('FIANET_KILL_POINT', '')
EPOCH = int(os.environ.get('FIANET_KILL_EPOCH', '2'))
POINTS = ('mid_iteration', 'mid_write', 'after_write')
if POINT and POINT not in POINTS:
    raise ValueError(f'FIANET_KILL_POINT={POINT!r}: expected one of {POINTS}')


def die() -> None:
    """End this process the way a preemption does: no clean-up, no exit handlers."""
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillPointHook(Hook):
    """Arms the ``mid_iteration`` kill: a forward hook on the model that sends SIGKILL."""

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if POINT == 'mid_iteration' and runner.epoch + 1 == EPOCH and batch_idx == 1:
            model = getattr(runner.model, 'module', runner.model)
            # the backbone runs through Module.__call__ (the decode head's loss path does not)
            model.backbone.register_forward_hook(lambda *args: die())


_real_atomic_write = checkpoint_hook.atomic_write
_target = f'epoch_{EPOCH}.pth'


def _atomic_write(path, write) -> None:
    """``atomic_write`` that dies half-way through or right after the chosen write."""
    name = osp.basename(path)
    if POINT == 'mid_write' and name == _target:
        def half_then_die(file) -> None:
            buffer = io.BytesIO()
            write(buffer)
            data = buffer.getvalue()
            file.write(data[:len(data) // 2])
            file.flush()
            os.fsync(file.fileno())
            die()

        _real_atomic_write(path, half_then_die)
        return
    _real_atomic_write(path, write)
    if POINT == 'after_write' and name == 'last_checkpoint':
        with open(path) as file:
            if osp.basename(file.read().strip()) == _target:
                die()


checkpoint_hook.atomic_write = _atomic_write
