"""Connected components of a scene's mask, found block by block.

Components are 4-connected (as ``rasterio.features.shapes`` traces polygons).
Each block is labelled on its own (OpenCV); a union-find joins the labels of
pixels that touch across block borders, so an object that spans blocks or
windows is one component. Per label: pixel count, probability sum, centroid
sums and bounding box, in compact arrays; :meth:`ComponentTracer.merge` gives
the merged components' totals as arrays (:class:`Components`). Outlines are
traced later, for the selected components only (:class:`OutlineCollector`).

Memory: one row of labels across the scene and a few numbers per label (about
100 bytes), never an array of the scene's size.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np


@dataclass
class Component:
    """One object of the mask (a merged component), in the scene's pixel coordinates."""

    id: int
    pixels: int
    probability_sum: float
    col_sum: float
    row_sum: float
    bbox: Tuple[int, int, int, int]  # col0, row0, col1, row1 (exclusive)

    @property
    def mean_probability(self) -> float:
        return self.probability_sum / self.pixels

    @property
    def centroid(self) -> Tuple[float, float]:
        """``(col, row)`` of the mean pixel centre."""
        return self.col_sum / self.pixels + 0.5, self.row_sum / self.pixels + 0.5


class ComponentTracer:
    """Label a scene's mask block by block (blocks in raster order), joining across borders.

    Args:
        width: The scene's width in pixels.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.parent = array('q')  # union-find over global labels (from 0)
        self.sums = array('d')  # per label: pixels, probability, column and row sums
        self.boxes = array('q')  # per label: col0, row0, col1, row1
        self.offsets: Dict[Tuple[int, int], int] = {}  # block origin -> first global label
        self.above = np.full(width, -1, np.int64)  # global labels of the row above a block
        self.left = None  # (row, labels) of the column left of the next block

    def _find(self, label: int) -> int:
        root = label
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[label] != root:  # path compression
            self.parent[label], label = root, self.parent[label]
        return root

    def _union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Join the labels pairwise where both are >= 0."""
        both = (a >= 0) & (b >= 0)
        for x, y in sorted(set(zip(a[both].tolist(), b[both].tolist()))):
            rx, ry = self._find(x), self._find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)  # the smaller label is the root

    @staticmethod
    def label(binary: np.ndarray) -> Tuple[int, np.ndarray, np.ndarray]:
        """``(count, labels, stats)`` of a block: OpenCV's 4-connected labels (0 = background)
        and ``(count, 5)`` boxes and areas."""
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            binary.astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
        return count, labels, stats

    def add_block(self, col: int, row: int, binary: np.ndarray,
                  probability: np.ndarray) -> None:
        """Add the block at ``(col, row)``: ``binary`` (h, w) bool, ``probability`` float."""
        height, width = binary.shape
        count, labels, boxes = self.label(binary)
        offset = len(self.parent)
        self.offsets[(col, row)] = offset
        found = count - 1
        self.parent.extend(range(offset, offset + found))
        if found:
            flat = labels.ravel()
            rows, cols = np.divmod(np.arange(flat.size), width)
            sums = np.stack([np.bincount(flat, weights=w, minlength=count)[1:]
                             for w in (None, probability.ravel().astype(np.float64),
                                       (cols + col).astype(np.float64),
                                       (rows + row).astype(np.float64))], axis=1)
            self.sums.extend(sums.ravel().tolist())
            x, y, w, h = (boxes[1:, i].astype(np.int64) for i in range(4))
            self.boxes.extend(np.stack([x + col, y + row, x + w + col, y + h + row],
                                       axis=1).ravel().tolist())
        glob = np.where(labels > 0, labels.astype(np.int64) + offset - 1, -1)
        if row > 0:
            self._union(self.above[col:col + width], glob[0])
        if col > 0 and self.left is not None and self.left[0] == row:
            self._union(self.left[1], glob[:, 0])
        self.above[col:col + width] = glob[-1]
        self.left = (row, glob[:, -1].copy())

    def global_labels(self, col: int, row: int, labels: np.ndarray) -> np.ndarray:
        """The merged component id of every pixel of a block labelled again (-1: none)."""
        offset = self.offsets[(col, row)]
        count = int(labels.max())
        roots = np.array([-1] + [self._find(offset + i) for i in range(count)], np.int64)
        return roots[labels]

    def roots(self) -> np.ndarray:
        """The root (smallest label) of every label's component, int64 (pointer jumping)."""
        roots = np.frombuffer(self.parent, dtype=np.int64).copy()
        while True:
            jumped = roots[roots]
            if np.array_equal(jumped, roots):
                return roots
            roots = jumped

    def merge(self) -> Components:
        """The components, joined across blocks, as arrays (see :class:`Components`)."""
        if not len(self.parent):
            return Components(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 4), np.int64))
        ids, inverse = np.unique(self.roots(), return_inverse=True)
        sums = np.frombuffer(self.sums, dtype=np.float64).reshape(-1, 4)
        boxes = np.frombuffer(self.boxes, dtype=np.int64).reshape(-1, 4)
        totals = np.stack([np.bincount(inverse, weights=sums[:, k], minlength=len(ids))
                           for k in range(4)], axis=1)
        bbox = np.empty((len(ids), 4), np.int64)
        bbox[:, :2] = np.iinfo(np.int64).max
        bbox[:, 2:] = np.iinfo(np.int64).min
        np.minimum.at(bbox[:, 0], inverse, boxes[:, 0])
        np.minimum.at(bbox[:, 1], inverse, boxes[:, 1])
        np.maximum.at(bbox[:, 2], inverse, boxes[:, 2])
        np.maximum.at(bbox[:, 3], inverse, boxes[:, 3])
        return Components(ids, totals, bbox)


class Components:
    """The merged components of a scene, as arrays (a few numbers per object).

    Attributes:
        ids: ``(n,)`` root labels, ascending (the order the components were first met:
            blocks in raster order, OpenCV's label order within a block).
        totals: ``(n, 4)`` pixels, probability sum, column sum, row sum.
        bbox: ``(n, 4)`` col0, row0, col1, row1 (exclusive), scene pixels.
    """

    def __init__(self, ids: np.ndarray, totals: np.ndarray, bbox: np.ndarray) -> None:
        self.ids, self.totals, self.bbox = ids, totals, bbox

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def pixels(self) -> np.ndarray:
        return self.totals[:, 0].astype(np.int64)

    def centroids(self) -> np.ndarray:
        """``(n, 2)`` ``(col, row)`` of the mean pixel centres."""
        return self.totals[:, 2:4] / self.totals[:, :1] + 0.5

    def __getitem__(self, index: int) -> Component:
        pixels, prob, cols, rows = (float(v) for v in self.totals[index])
        return Component(int(self.ids[index]), int(pixels), prob, cols, rows,
                         tuple(int(v) for v in self.bbox[index]))


class OutlineCollector:
    """Outlines of chosen components, traced block by block and merged when complete.

    Blocks come in raster order; after a row of blocks ending at row ``r``,
    :meth:`completed` gives the components whose bounding box ends at or above
    ``r``, each as one polygon (its pieces united: they share pixel edges), in
    the scene's pixel coordinates, and forgets them.
    """

    def __init__(self, ids: np.ndarray, bottoms: np.ndarray) -> None:
        self.bottom = dict(zip(ids.tolist(), bottoms.tolist()))
        self.pieces: Dict[int, List[Any]] = {}

    def add_block(self, col: int, row: int, ids: np.ndarray, chosen: np.ndarray) -> None:
        """Trace the ``chosen`` pixels of a block, ``ids`` its merged component ids."""
        if not chosen.any():
            return
        from affine import Affine
        from rasterio.features import shapes
        from shapely.geometry import shape

        for geometry, value in shapes(ids.astype(np.int32), mask=chosen, connectivity=4,
                                      transform=Affine.translation(col, row)):
            self.pieces.setdefault(int(value), []).append(shape(geometry))

    def completed(self, row_end: int) -> List[Tuple[int, Any]]:
        """``[(component id, polygon)]`` complete once the rows above ``row_end`` are done."""
        import shapely

        done = sorted(key for key in self.pieces if self.bottom[key] <= row_end)
        out = []
        for key in done:
            pieces = self.pieces.pop(key)
            out.append((key, pieces[0] if len(pieces) == 1 else shapely.union_all(pieces)))
        return out
