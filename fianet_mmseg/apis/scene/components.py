"""Connected components of a scene's mask, found block by block.

Components are 4-connected (as ``rasterio.features.shapes`` traces polygons).
Each block is labelled on its own (OpenCV); a union-find joins the labels of
pixels that touch across block borders, so an object that spans blocks or
windows is one component. Per component: pixel count, probability sum,
centroid sums and bounding box, and its outline pieces (one per block,
traced in scene pixel coordinates, integers); :meth:`ComponentTracer.merge`
unites the pieces into one polygon (exact: the pieces share pixel edges).

Memory: one row of labels across the scene (int64), the statistics and the
outlines of the components; never an array of the scene's size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np


@dataclass
class Component:
    """One object of the mask (a merged component); pixel coordinates of the scene."""

    id: int
    pixels: int
    probability_sum: float
    col_sum: float
    row_sum: float
    bbox: Tuple[int, int, int, int]  # col0, row0, col1, row1 (exclusive)
    pieces: List[Any] = field(default_factory=list)

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
        trace: Also trace the outline pieces (for polygons).
    """

    def __init__(self, width: int, trace: bool = True) -> None:
        self.width = width
        self.trace = trace
        self.parent: List[int] = []  # union-find over global labels (from 0)
        self.stats: List[List[float]] = []  # pixels, probability sum, col sum, row sum
        self.boxes: List[List[int]] = []
        self.pieces: Dict[int, List[Any]] = {}
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
        for x, y in set(zip(a[both].tolist(), b[both].tolist())):
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
            sums = [np.bincount(flat, weights=w, minlength=count)[1:]
                    for w in (None, probability.ravel().astype(np.float64),
                              (cols + col).astype(np.float64), (rows + row).astype(np.float64))]
            for index in range(found):
                self.stats.append([float(s[index]) for s in sums])
            for x, y, w, h, _ in boxes[1:]:
                self.boxes.append([col + int(x), row + int(y), col + int(x + w),
                                   row + int(y + h)])
            if self.trace:
                self._trace(col, row, labels, offset)
        glob = np.where(labels > 0, labels.astype(np.int64) + offset - 1, -1)
        if row > 0:
            self._union(self.above[col:col + width], glob[0])
        if col > 0 and self.left is not None and self.left[0] == row:
            self._union(self.left[1], glob[:, 0])
        self.above[col:col + width] = glob[-1]
        self.left = (row, glob[:, -1].copy())

    def _trace(self, col: int, row: int, labels: np.ndarray, offset: int) -> None:
        from affine import Affine
        from rasterio.features import shapes
        from shapely.geometry import shape

        for geometry, value in shapes(labels, mask=labels > 0, connectivity=4,
                                      transform=Affine.translation(col, row)):
            self.pieces.setdefault(int(value) + offset - 1, []).append(shape(geometry))

    def global_labels(self, col: int, row: int, labels: np.ndarray) -> np.ndarray:
        """The merged component id of every pixel of a block labelled again (-1: none)."""
        offset = self.offsets[(col, row)]
        count = int(labels.max())
        roots = np.array([-1] + [self._find(offset + i) for i in range(count)], np.int64)
        return roots[labels]

    def merge(self) -> List[Component]:
        """The components, joined across blocks, in the order they were first met (blocks in
        raster order, OpenCV's label order within a block)."""
        import shapely

        merged: Dict[int, Component] = {}
        for label in range(len(self.parent)):
            root = self._find(label)
            pixels, prob, cols, rows = self.stats[label]
            box = self.boxes[label]
            item = merged.get(root)
            if item is None:
                merged[root] = Component(root, int(pixels), prob, cols, rows, tuple(box))
            else:
                item.pixels += int(pixels)
                item.probability_sum += prob
                item.col_sum += cols
                item.row_sum += rows
                item.bbox = (min(item.bbox[0], box[0]), min(item.bbox[1], box[1]),
                             max(item.bbox[2], box[2]), max(item.bbox[3], box[3]))
            if self.trace:
                merged[root].pieces.extend(self.pieces.get(label, []))
        components = [merged[root] for root in sorted(merged)]
        if self.trace:
            for component in components:
                pieces = component.pieces
                component.pieces = [pieces[0] if len(pieces) == 1
                                    else shapely.union_all(pieces)]
        return components
