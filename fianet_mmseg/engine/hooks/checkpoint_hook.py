"""A checkpoint hook that survives being killed at any moment (preemption, OOM killer, SIGKILL).

What mmengine 0.10.7's :class:`~mmengine.hooks.CheckpointHook` does, and where a kill hurts:

* ``_save_checkpoint_with_step`` first DELETES the oldest checkpoint beyond ``max_keep_ckpts``,
  then lets :meth:`Runner.save_checkpoint` serialize into memory and write the bytes in place
  (``LocalBackend.put``: ``open(path, 'wb')``), then rewrites ``<work_dir>/last_checkpoint`` in
  place. With ``max_keep_ckpts=1`` a kill during the write leaves no complete checkpoint at all,
  and ``last_checkpoint`` names the deleted file, so ``--resume`` fails.
* ``_save_best_checkpoint`` deletes the previous best file before writing the new one, and then
  saves the regular checkpoint of the same epoch again, in place (to store the new best score):
  a kill during that rewrite destroys the only regular checkpoint.

What :class:`AtomicCheckpointHook` changes (everything else is the parent's code):

* Every file (regular, last and best checkpoints, ``last_checkpoint``) is written to a temporary
  file in the destination folder, flushed and fsync'ed, renamed over the final name with
  :func:`os.replace` and the folder fsync'ed (:func:`atomic_write`). Checkpoints reach it through
  mmengine's own save path: the hook hands ``Runner.save_checkpoint`` the ``backend_args`` of
  :class:`AtomicLocalBackend`, a ``LocalBackend`` whose ``put`` is atomic.
* ``last_checkpoint`` is rewritten only after the new checkpoint is in place, and obsolete files
  (checkpoints beyond ``max_keep_ckpts``, the previous best) are deleted only after that. Until
  they are deleted their paths are kept in the message hub (so inside the new checkpoint): a
  resumed run deletes them if the kill came first.
* At the start of training, temporary files that a killed run left behind (``.<name>.*.atomic-tmp``
  in the checkpoint folder and the work dir) are deleted; resuming never reads them, since
  ``last_checkpoint`` only ever names a renamed, complete file.

Non-local storage (``backend_args`` of another backend, an ``s3://`` ``out_dir``, or the deprecated
``file_client_args``) is written as mmengine does, with the late deletions; a warning says so.
"""
from __future__ import annotations

import contextlib
import glob
import os
import os.path as osp
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

#: Suffix of the temporary files; at start-up files ``.*<suffix>`` in the folders are deleted.
TMP_SUFFIX = '.atomic-tmp'
#: Name under which :class:`AtomicLocalBackend` is registered in mmengine's file backends.
ATOMIC_BACKEND = 'fianet_atomic_local'
#: Message-hub key: files that are obsolete but may not have been deleted yet.
PENDING_KEY = 'atomic_ckpt_pending_removal'


def _fsync_dir(folder: str) -> None:
    """Persist a rename in ``folder`` (no-op where folders cannot be opened, e.g. Windows)."""
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Union[str, Path], write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` so that it is never seen partially written.

    ``write(f)`` writes the content into an open binary file (``torch.save(obj, f)`` works):
    a temporary file ``.<name>.<pid>.<random>.atomic-tmp`` in the same folder, flushed and
    fsync'ed, then renamed over ``path`` (:func:`os.replace`, atomic on POSIX and Windows), and
    the folder fsync'ed. An exception removes the temporary file; a kill leaves it behind for
    :meth:`AtomicCheckpointHook.before_train` to delete. Permissions follow the umask, as with
    ``open(path, 'wb')``.
    """
    path = osp.abspath(os.fspath(path))
    folder, name = osp.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


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


class _DeferredRemovals:
    """A view of a file backend whose ``remove``/``rmtree`` hand the path to ``queue``."""

    def __init__(self, backend, queue: Callable[[str], None]) -> None:
        self._backend = backend
        self._queue = queue

    def remove(self, filepath) -> None:
        self._queue(str(filepath))

    rmtree = remove

    def __getattr__(self, name: str):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`~mmengine.hooks.CheckpointHook` whose saves survive a kill at any point.

    Same arguments and file names as the parent (``interval``, ``by_epoch``, ``max_keep_ckpts``,
    ``save_best``, ``rule``, ``out_dir``, ``save_last``, ``filename_tmpl``, ...). A kill leaves
    ``last_checkpoint`` naming a complete checkpoint (the new one or the previous one), so
    ``tools/train.py --resume`` continues; see the module docstring for what changes.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list = []
        self._storage = None

    # -- set-up ----------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        """Parent set-up, then the atomic backend, and the clean-up of a killed run's files."""
        super().before_train(runner)
        self._storage = self.file_backend
        atomic = self.file_client_args is None and isinstance(self.file_backend, LocalBackend)
        if atomic:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
            self.file_backend = self._storage = AtomicLocalBackend()
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

    # -- saving ----------------------------------------------------------------------------
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
                if self._storage.isfile(path):
                    self._storage.remove(path)
                    runner.logger.info(f'Removed the obsolete checkpoint {path}.')
                elif self._storage.isdir(path):  # checkpoints saved by deepspeed are folders
                    self._storage.rmtree(path)
        self._pending = []
        runner.message_hub.update_info(PENDING_KEY, [])

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """The parent's save in crash-safe order: write, name it in ``last_checkpoint``, delete.

        Keeps the parent's bookkeeping (``keep_ckpt_ids``, ``last_ckpt`` in the message hub).
        """
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            # a step saved twice (best-checkpoint update) is not a new checkpoint
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                self._pending.append(self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids[0])))
            self.keep_ckpt_ids.append(step)  # the deque's maxlen drops the oldest
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.message_hub.update_info(PENDING_KEY, list(self._pending))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if is_main_process():
            last = str(self.last_ckpt).encode()
            atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                         lambda file: file.write(last))
        self._remove_pending(runner)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """The parent's best-checkpoint logic; the previous best is deleted after the new one
        and the updated regular checkpoint are written."""
        storage = self.file_backend
        self.file_backend = _DeferredRemovals(storage, lambda path: self._pending.append(path))
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = storage
        self._remove_pending(runner)
