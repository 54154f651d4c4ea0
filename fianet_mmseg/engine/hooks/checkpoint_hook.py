"""A checkpoint hook that survives being killed at any moment (preemption, OOM killer, SIGKILL).

What mmengine's :class:`~mmengine.hooks.CheckpointHook` (0.10.x) does, and where a kill hurts:

* Before a regular save it DELETES the oldest checkpoint beyond ``max_keep_ckpts``, then
  :meth:`Runner.save_checkpoint` serializes into memory and writes the bytes in place
  (``LocalBackend.put``: ``open(path, 'wb')``), then ``<work_dir>/last_checkpoint`` is rewritten
  in place with ``open(path, 'w')``. With ``max_keep_ckpts=1`` a kill during the write leaves no
  complete checkpoint at all, and ``last_checkpoint`` names the deleted file, so ``--resume``
  fails; a kill while ``last_checkpoint`` is rewritten leaves it empty.
* On a new best score it deletes the previous best file before writing the new one, and then
  saves the regular checkpoint of the same step again, in place (to store the new best score):
  a kill during that rewrite destroys the only regular checkpoint.

:class:`AtomicCheckpointHook` keeps the parent's arguments, file names, message-hub keys and
triggers, and changes the order and the way files are written:

* Every file (regular, last and best checkpoints, ``last_checkpoint``) is written to a temporary
  file in the destination folder, flushed and fsync'ed, renamed over the final name with
  :func:`os.replace` and the folder fsync'ed (:func:`atomic_write`).
* ``last_checkpoint`` is rewritten only after the new checkpoint is in place, and obsolete files
  (checkpoints beyond ``max_keep_ckpts``, the previous best) are deleted only after that. Until
  they are deleted their paths are kept in the message hub (so inside the new checkpoint): a
  resumed run deletes them if the kill came first.
* At the start of training, temporary files that a killed run left behind (``.<name>.*.atomic-tmp``
  in the checkpoint folder and the work dir) are deleted; resuming never reads them, since
  ``last_checkpoint`` only ever names a renamed, complete file.

Only mmengine's public extension points are used (no method or attribute with a leading
underscore of mmengine is overridden or called):

* the file-backend registry (:func:`mmengine.fileio.register_backend`): checkpoints are written
  by mmengine's own code (:meth:`Runner.save_checkpoint` -> ``mmengine.runner.save_checkpoint`` ->
  ``backend.put``), given ``backend_args=dict(backend='fianet_atomic_local')``, the
  :class:`AtomicLocalBackend` registered here (a ``LocalBackend`` whose ``put`` is atomic);
* the public hook methods: ``before_train`` (the parent's, then the clean-up),
  ``after_train_iter`` / ``after_train_epoch`` (the parent's triggers, built from the public
  ``Hook.every_n_*`` / ``is_last_train_*`` helpers) and ``after_val_epoch`` are overridden;
  ``after_train`` (publishing, ``published_keys``) is the parent's;
* :meth:`Runner.save_checkpoint`'s public arguments, :class:`~mmengine.logging.MessageHub`'s
  ``get_info`` / ``update_info`` and the parent's message-hub keys (``last_ckpt``,
  ``keep_ckpt_ids``, ``best_score``, ``best_ckpt``, ``best_score_<key>``, ``best_ckpt_<key>``), so
  checkpoints of the stock hook resume here and the other way round;
* the parent's constructor (argument checks, comparison rules; ``save_best='auto'`` is resolved
  by constructing a ``CheckpointHook`` for the first metric) and the attributes without a leading
  underscore that its constructor and ``before_train`` set (``out_dir``, ``file_backend``,
  ``keep_ckpt_ids``, ``last_ckpt``, ``best_ckpt_path`` / ``best_ckpt_path_dict``, ``rules``,
  ``key_indicators``, ``is_better_than``): the parent's docstring does not list these, but its
  ``after_train`` reads them, so they are kept up to date.

The parent's ``_save_checkpoint*`` methods, which delete first and write ``last_checkpoint`` with
a plain ``open``, are therefore never called: the saving is this module's own code around
``Runner.save_checkpoint``.

Non-local storage (``backend_args`` of another backend, an ``s3://`` ``out_dir``, or the deprecated
``file_client_args``) is written in place by that backend, with the late deletions and an atomic
``last_checkpoint`` (the work dir is local); a warning says so.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from pathlib import Path
from typing import Optional, Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from ...utils.atomic_file import TMP_SUFFIX, atomic_write

#: Name under which :class:`AtomicLocalBackend` is registered in mmengine's file backends.
ATOMIC_BACKEND = 'fianet_atomic_local'
#: Message-hub key: files that are obsolete but may not have been deleted yet.
PENDING_KEY = 'atomic_ckpt_pending_removal'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with :func:`atomic_write` behind ``put`` and ``put_text``.

    Registered as ``'fianet_atomic_local'``: ``backend_args=dict(backend='fianet_atomic_local')``
    makes ``Runner.save_checkpoint`` (and anything else that writes through mmengine's fileio)
    replace files atomically.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (creating the folder)."""
        atomic_write(filepath, lambda file: file.write(obj))

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically (creating the folder)."""
        self.put(obj.encode(encoding), filepath)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`~mmengine.hooks.CheckpointHook` whose saves survive a kill at any point.

    Same arguments and file names as the parent (``interval``, ``by_epoch``, ``max_keep_ckpts``,
    ``save_best``, ``rule``, ``out_dir``, ``save_last``, ``filename_tmpl``, ``save_begin``,
    ``published_keys``, ...). A kill leaves ``last_checkpoint`` naming a complete checkpoint
    (the new one or the previous one), so ``tools/train.py --resume`` continues; see the module
    docstring for what changes and which of mmengine's extension points it uses.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list = []

    # -- set-up ----------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        """Parent set-up, then the atomic backend, and the clean-up of a killed run's files."""
        super().before_train(runner)
        atomic = self.file_client_args is None and isinstance(self.file_backend, LocalBackend)
        if atomic:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
            self.file_backend = get_file_backend(self.out_dir, backend_args=self.backend_args)
        else:
            runner.logger.warning(
                f'AtomicCheckpointHook: {self.out_dir} is not on a local file system (or '
                'file_client_args is set); checkpoints are written in place as mmengine does, '
                'only the deletions wait until the new checkpoint is written.')
        self._pending = list(runner.message_hub.get_info(PENDING_KEY) or [])
        if is_main_process():
            self._pending += self._orphan_best_checkpoints(runner)
        self._remove_pending(runner)
        if not (atomic and is_main_process()):
            return
        for folder in dict.fromkeys([self.out_dir, runner.work_dir]):
            for leftover in glob.glob(osp.join(glob.escape(folder), f'.*{TMP_SUFFIX}')):
                os.remove(leftover)
                runner.logger.info(f'Removed {leftover}, left by an interrupted save.')

    def _orphan_best_checkpoints(self, runner) -> list:
        """Best checkpoints of the resumed step that a kill kept out of the resumed checkpoint.

        The best checkpoint of step N is written after the first save of step N; a kill before
        step N is saved again leaves it on disk, unknown to the message hub. Training resumes
        after step N and never validates it again, so such a file is obsolete.
        """
        if not self.save_best or 'auto' in self.key_indicators:
            return []
        step = runner.epoch if self.by_epoch else runner.iter
        if step == 0:
            return []
        names = [f'best_{key}_{self.filename_tmpl.format(step)}'.replace('/', '_')
                 for key in self.key_indicators]
        return [self.file_backend.join_path(self.out_dir, name) for name in names]

    # -- triggers (the parent's conditions) ------------------------------------------------
    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Save every ``interval`` iterations from ``save_begin`` and at the last one."""
        if self.by_epoch:
            return
        if self.every_n_train_iters(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_iter(runner)):
            runner.logger.info(f'Saving checkpoint at {runner.iter + 1} iterations')
            step = runner.iter + 1
            self._write_checkpoint(runner, step, dict(epoch=runner.epoch, iter=step))

    def after_train_epoch(self, runner) -> None:
        """Save every ``interval`` epochs from ``save_begin`` and at the last one."""
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_epoch(runner)):
            runner.logger.info(f'Saving checkpoint at {runner.epoch + 1} epochs')
            step = runner.epoch + 1
            self._write_checkpoint(runner, step, dict(epoch=step, iter=runner.iter))

    def after_val_epoch(self, runner, metrics: dict) -> None:
        """Save the best checkpoint(s) of ``save_best`` when the score improved."""
        if len(metrics) == 0:
            runner.logger.warning(
                'Since `metrics` is an empty dict, the behavior to save '
                'the best checkpoint will be skipped in this evaluation.')
            return
        if self.save_best:
            self._write_best_checkpoints(runner, metrics)

    # -- saving ----------------------------------------------------------------------------
    def _write_checkpoint(self, runner, step: int, meta: dict) -> None:
        """The regular checkpoint of ``step`` in crash-safe order: write it, name it in
        ``last_checkpoint``, then delete what it makes obsolete.

        Keeps the parent's bookkeeping (``keep_ckpt_ids``, ``last_ckpt`` in the message hub);
        a step saved twice (best-checkpoint update) is not a new checkpoint.
        """
        hub = runner.message_hub
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                self._pending.append(self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids[0])))
            self.keep_ckpt_ids.append(step)  # the deque's maxlen drops the oldest
            hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        hub.update_info(PENDING_KEY, list(self._pending))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, file_client_args=self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if is_main_process():
            last = str(self.last_ckpt).encode()
            atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                         lambda file: file.write(last))
        self._remove_pending(runner)

    def _write_best_checkpoints(self, runner, metrics: dict) -> None:
        """The parent's best-checkpoint logic; the previous best is deleted only after the new
        one and the regular checkpoint recording it are written."""
        hub = runner.message_hub
        step = runner.epoch if self.by_epoch else runner.iter
        unit = 'epoch' if self.by_epoch else 'iter'
        ckpt_filename = self.filename_tmpl.format(step)
        meta = dict(epoch=runner.epoch, iter=runner.iter)
        if 'auto' in self.key_indicators:
            self._resolve_auto_metric(next(iter(metrics)))

        single = len(self.key_indicators) == 1
        updated = False
        for key, rule in zip(self.key_indicators, self.rules):
            score = metrics[key]
            score_key = 'best_score' if single else f'best_score_{key}'
            path_key = 'best_ckpt' if single else f'best_ckpt_{key}'
            previous = self.best_ckpt_path if single else self.best_ckpt_path_dict[key]
            best = (hub.get_info(score_key) if score_key in hub.runtime_info
                    else self.init_value_map[rule])
            if score is None or not self.is_better_than[key](score, best):
                continue
            updated = True
            hub.update_info(score_key, score)
            if previous:
                self._pending.append(str(previous))
            name = f'best_{key}_{ckpt_filename}'.replace('/', '_')  # no folders in the name
            path = self.file_backend.join_path(self.out_dir, name)
            if single:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path
            hub.update_info(path_key, path)
            runner.save_checkpoint(
                self.out_dir, filename=name, file_client_args=self.file_client_args,
                save_optimizer=False, save_param_scheduler=False, meta=dict(meta),
                by_epoch=False, backend_args=self.backend_args)
            runner.logger.info(f'The best checkpoint with {score:0.4f} {key} at {step} {unit} '
                               f'is saved to {name}.')
        # As the parent: save the regular checkpoint of this step again, so that the one that
        # resuming reads records the new best score and file (deletions follow it).
        if updated and self.last_ckpt is not None:
            self._write_checkpoint(runner, step, meta)
        self._remove_pending(runner)

    def _resolve_auto_metric(self, metric: str) -> None:
        """``save_best='auto'``: the first metric, with the rule the parent infers for it."""
        probe = CheckpointHook(save_best=metric, rule=self.rules[0],
                               greater_keys=self.greater_keys, less_keys=self.less_keys)
        self.key_indicators, self.rules = [metric], list(probe.rules)
        self.is_better_than = {metric: self.rule_map[probe.rules[0]]}

    # -- deletions -------------------------------------------------------------------------
    def _live_paths(self) -> set:
        """Checkpoint paths the hook still refers to (never deleted)."""
        live = {self.last_ckpt}
        if self.save_best:
            if len(self.key_indicators) == 1:
                live.add(self.best_ckpt_path)
            else:
                live.update(self.best_ckpt_path_dict.values())
        if self.max_keep_ckpts > 0:
            live.update(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(s))
                        for s in self.keep_ckpt_ids)
        return {str(path) for path in live if path is not None}

    def _remove_pending(self, runner) -> None:
        """Delete the queued obsolete files (main process) and forget them."""
        if is_main_process():
            live = self._live_paths()
            for path in dict.fromkeys(self._pending):
                if path in live:
                    continue
                if self.file_backend.isfile(path):
                    self.file_backend.remove(path)
                    runner.logger.info(f'Removed the obsolete checkpoint {path}.')
                elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are folders
                    self.file_backend.rmtree(path)
        self._pending = []
        runner.message_hub.update_info(PENDING_KEY, [])
