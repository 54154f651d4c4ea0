"""The on-disk state of a scene run: its plan and the probabilities of finished batches.

Layout of the work folder (``OUT_DIR/work``)::

    plan.json             # what the run is (scene, model, options): --resume checks it
    batches/b000012.npy   # (k, h, w) float16: foreground probability of the batch's
                          # windows with data, NaN where a window has none
    batches/b000012.json  # {"windows": [...], "empty": [...]}: the ledger entry

A batch is finished when its ``.json`` exists: the ``.npy`` is written first,
each file to a temporary name and renamed (atomic on POSIX), so a process
killed at any point leaves finished batches and, at most, a temporary file
that the next run overwrites. Batches hold fixed windows (see
:mod:`.grid`), so a resumed run or another process computes a missing batch
from exactly the inputs an uninterrupted run would have used.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

PLAN_FILE = 'plan.json'


def write_json_atomic(path: str, data: Any) -> None:
    """JSON to ``path + '.tmp'``, then renamed to ``path``."""
    partial = path + '.tmp'
    with open(partial, 'w', encoding='utf-8') as file:
        json.dump(data, file, indent=1, sort_keys=True)
        file.write('\n')
    os.replace(partial, path)


class WindowStore:
    """Per-batch window probabilities in ``folder`` (see the module)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.batch_dir = osp.join(folder, 'batches')
        self._index: Optional[Dict[int, Tuple[int, int]]] = None

    def create(self, plan: Dict[str, Any]) -> None:
        os.makedirs(self.batch_dir, exist_ok=True)
        write_json_atomic(osp.join(self.folder, PLAN_FILE), plan)

    def read_plan(self) -> Optional[Dict[str, Any]]:
        path = osp.join(self.folder, PLAN_FILE)
        if not osp.isfile(path):
            return None
        with open(path, encoding='utf-8') as file:
            return json.load(file)

    def _name(self, batch: int) -> str:
        return osp.join(self.batch_dir, f'b{batch:06d}')

    def done(self, batch: int) -> bool:
        return osp.isfile(self._name(batch) + '.json')

    def finished(self) -> List[int]:
        """Numbers of the finished batches."""
        if not osp.isdir(self.batch_dir):
            return []
        return sorted(int(name[1:-5]) for name in os.listdir(self.batch_dir)
                      if name.startswith('b') and name.endswith('.json'))

    def save(self, batch: int, windows: Sequence[int], empty: Sequence[int],
             probabilities: np.ndarray) -> None:
        """Store a batch: ``probabilities`` ``(len(windows), h, w)``, NaN = no data."""
        name = self._name(batch)
        if len(windows):
            with open(name + '.npy.tmp', 'wb') as file:
                np.save(file, probabilities.astype(np.float16))
            os.replace(name + '.npy.tmp', name + '.npy')
        write_json_atomic(name + '.json', dict(windows=[int(w) for w in windows],
                                               empty=[int(w) for w in empty]))

    def index(self) -> Dict[int, Tuple[int, int]]:
        """``{window: (batch, position in the batch file)}`` of the windows with data."""
        if self._index is None:
            index = {}
            for batch in self.finished():
                with open(self._name(batch) + '.json', encoding='utf-8') as file:
                    entry = json.load(file)
                for position, window in enumerate(entry['windows']):
                    index[int(window)] = (batch, position)
            self._index = index
        return self._index

    def empty_windows(self) -> List[int]:
        """The windows found without data (skipped)."""
        empty = []
        for batch in self.finished():
            with open(self._name(batch) + '.json', encoding='utf-8') as file:
                empty += json.load(file)['empty']
        return sorted(empty)

    def load(self, window: int) -> Optional[np.ndarray]:
        """``(h, w)`` float32 probability of a window (NaN = no data); None if it had none."""
        where = self.index().get(window)
        if where is None:
            return None
        batch, position = where
        stored = np.load(self._name(batch) + '.npy', mmap_mode='r')
        probability = np.array(stored[position], dtype=np.float32)
        del stored  # unmap: the pages of other windows do not stay resident
        return probability
