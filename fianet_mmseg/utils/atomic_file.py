"""Files written so that they are never seen half-written: a temporary file beside the
target, flushed and fsync'ed, renamed over it, the folder fsync'ed.

Used by the checkpoint hook (``fianet_mmseg.engine.hooks.AtomicCheckpointHook``) and the
reference-checkpoint converter (``fianet_mmseg.checkpoint.official_checkpoint``).
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Union

#: Suffix of the temporary files; at start-up files ``.*<suffix>`` in the folders are deleted.
TMP_SUFFIX = '.atomic-tmp'


def fsync_dir(folder: str) -> None:
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
    ``AtomicCheckpointHook.before_train`` to delete. Permissions follow the umask, as with
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
    fsync_dir(folder)
