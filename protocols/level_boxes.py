"""Boxes of a uint8 score map at every threshold, all thresholds in two passes over the map.

The rule (``reference_boxes.py`` spells it out one threshold at a time, and the tests hold this module to it):
at threshold t the foreground is ``u8 > int(t * max(u8))``; ``cv2.findContours(RETR_TREE)`` gives its regions:
the outer contour of every 8-connected foreground component and the border of every hole (a 4-connected
background component that does not reach the map's edge). A region's box is its contour's bounding
rectangle. "All regions" keeps every box; "largest" keeps the contour of largest ``cv2.contourArea``, the
first one OpenCV lists on ties.

The algorithm. A threshold only matters through its level v = int(t * max) + 1: the foreground is
``u8 >= v``, and there are at most 256 levels however fine the thresholds. Going from level 256 down to 0
the foreground only grows, one grey value at a time, so one union-find over the pixels, sorted by value
(a counting sort), holds the components of every level in turn: add the pixels of value v, join each
to its 8-neighbours already in, and the roots now are the components of level v (a max-tree). Each root
keeps its component's box, so reporting a level is a walk over its roots. That is ``foreground_pass``.

Holes are the same idea turned round: the background ``u8 < v`` only grows as v goes up, so a second
union-find adds pixels from value 0 up with 4-neighbours and marks a component "outside" once it holds a
border pixel. Before the pixels of value v go in, the components not outside are the holes of level v; a
hole's contour runs through the foreground pixels around it, so its box is the hole's extent grown by one.
That is ``background_pass``.

The largest rule needs areas. ``cv2.contourArea`` is the area of the polygon through the centres of the
contour's pixels, not a pixel count: a 1 x 12 line has area 0, a 3 x 3 square 4. Cut the plane into the
unit squares between four pixel centres (2x2 windows): the outer contour of a component without holes
covers a window whole when all four pixels are in, half of it when three are (the contour cuts the
corner), and none of it otherwise. So ``2 * area = 2 * n4 + n3``, counted as the pixels come in: a window
gains 1 when its third pixel arrives and 1 more with its fourth. A hole adds its own area to the outer
contour's, so the largest rule runs the foreground pass on the *filled* map: each pixel raised to the level
at which its background first reaches the border (the background pass gives it: when a hole opens, its
pixels get that level). On the filled map every component is an outer contour with its holes filled in,
and its window count is exactly twice that contour's area. No other contour can win: a hole's border or a
component inside a hole lies within the outer contour around it. On equal areas OpenCV lists separate
outer contours last found first, and a component is found at its first pixel in raster order: the one
whose first pixel comes last wins.

Cost: two passes of a few tens of nanoseconds a pixel, whatever the number of thresholds or the shape of
the map; the work depends on the map only (no timings, no caps). Boxes are inclusive pixel extents
(x0, y0, x1, y1); a level without foreground has one row ``NO_REGION``. ``best_ious`` scores the boxes
against ground truth inside the passes, so a noisy map's hundreds of thousands of boxes are never stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_REGION = (0, 0, -1, -1)
SEARCHES = ("fast", "reference")  # the protocol setting ``box_search``: this module, or reference_boxes.py


@dataclass
class LevelBoxes:
    """Region boxes per level. Level i holds ``boxes[start[i]:start[i + 1]]``; threshold j uses level ``level_of[j]``."""

    boxes: np.ndarray  # (K, 4) int64, inclusive extents x0 y0 x1 y1
    start: np.ndarray  # (L + 1,) int64
    level_of: np.ndarray  # (T,) int64

    def at_threshold(self, j: int) -> np.ndarray:
        i = self.level_of[j]
        return self.boxes[self.start[i] : self.start[i + 1]]


def threshold_cuts(u8: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The reference's cut ``int(t * max(map))`` for every threshold (float64 product, truncated)."""
    return (np.asarray(thresholds, np.float64) * float(u8.max())).astype(np.int64)


def _levels(u8: np.ndarray, thresholds) -> tuple[np.ndarray, np.ndarray, int]:
    """(levels, level_of, top): the distinct levels v = cut + 1 (at least 0) that hold foreground, highest
    first; each threshold's index into them, where index ``len(levels)`` is "no foreground"; the map's max."""
    top = int(u8.max()) if u8.size else 0
    v = np.maximum(threshold_cuts(u8, thresholds) + 1, 0) if u8.size else np.zeros(len(thresholds), np.int64)
    levels = np.unique(v[v <= top])[::-1].copy()
    index = np.full(257, len(levels), np.int64)  # v above the max: "no foreground"
    index[levels] = np.arange(len(levels))
    level_of = index[np.minimum(v, 256)]
    return levels, level_of, top


def _search(u8: np.ndarray, levels: np.ndarray, multi_contour: bool, gt: np.ndarray, grow: bool):
    """Both sweeps for ``levels`` (descending, each at most the map's max): rows (K, 5) (level index, x0 y0
    x1 y1) when ``gt`` is empty, else the best IoU of each level."""
    from wsolbench.protocols import _max_tree  # numba: imported on first use

    h, w = u8.shape
    padded = np.pad(np.ascontiguousarray(u8, dtype=np.uint8), 1).reshape(-1)
    filled = _max_tree.fill_holes(padded, h, w)
    if not multi_contour:
        rows, best = _foreground(_max_tree, filled, h, w, levels, True, gt, grow)
        return _expand(rows) if len(gt) == 0 else best[: len(levels)]
    rows, best = _foreground(_max_tree, padded, h, w, levels, False, gt, grow)
    # the holes of level v: the background components of ``u8 < v`` that reach no border, made of the
    # pixels with filled > u8 >= v - 1; the hole sweep adds them from the lowest value up, so it makes the
    # reports of the levels >= 1 in ascending order
    above0 = int((levels >= 1).sum())
    up = levels[:above0][::-1]
    order, below, mask = _max_tree.holes_order(padded, filled, h, w)
    last = (np.searchsorted(up, np.arange(256), side="right") - 1).astype(np.int32)[filled]  # a hole lives up to its filled value
    hole_rows, hole_best = _max_tree.sweep(mask, h, w, order, below[up], True, last, False, gt, grow)
    if len(gt):
        best = best[: len(levels)].copy()
        best[:above0] = np.maximum(best[:above0], hole_best[:above0][::-1])
        return best
    hole_rows[:, :2] = above0 - 1 - hole_rows[:, 1::-1]  # report j of the hole sweep is level above0 - 1 - j
    return np.concatenate([_expand(rows), _expand(hole_rows)])


def _foreground(kernels, padded, h, w, levels, largest, gt, grow):
    """The foreground sweep of ``padded``, reporting level i once the pixels >= levels[i] are in."""
    order, begin = kernels.by_value(padded, h, w)
    mask = kernels.masks(padded, h, w)
    return kernels.sweep(mask, h, w, order, begin[256 - levels], False, _NO_LAST, largest, gt, grow)


_NO_GT = np.zeros((0, 4))
_NO_LAST = np.zeros(1, np.int32)


def filled_map(u8: np.ndarray) -> np.ndarray:
    """``u8`` with every pixel raised to the value at which its background component (``u8 < v``,
    4-connected) first reaches the border: at every level, ``filled >= v`` is the foreground with its holes
    filled in (the map the largest rule's sweep runs on)."""
    from wsolbench.protocols import _max_tree

    h, w = u8.shape
    filled = _max_tree.fill_holes(np.pad(np.ascontiguousarray(u8, dtype=np.uint8), 1).reshape(-1), h, w)
    return filled.reshape(h + 2, w + 2)[1:-1, 1:-1].copy()


def _expand(rows: np.ndarray) -> np.ndarray:
    """Rows (first level, last level, box) to one row (level, box) per level."""
    n = (rows[:, 1] - rows[:, 0] + 1).astype(np.int64)
    which = np.repeat(np.arange(len(rows)), n)
    level = rows[which, 0] + np.arange(len(which)) - np.repeat(np.cumsum(n) - n, n)
    return np.column_stack([level, rows[which, 2:]]).astype(np.int64)


def threshold_boxes(u8: np.ndarray, thresholds: np.ndarray, multi_contour: bool) -> LevelBoxes:
    """Boxes of ``u8`` (2-D uint8) at every threshold; see the module docstring for the rule."""
    u8 = np.asarray(u8)
    if len(thresholds) == 0:
        return LevelBoxes(np.zeros((0, 4), np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64))
    levels, level_of, _ = _levels(u8, thresholds)
    rows = _search(u8, levels, multi_contour, _NO_GT, False) if len(levels) else np.zeros((0, 5), np.int64)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    counts = np.bincount(rows[:, 0], minlength=len(levels) + 1)
    counts[len(levels)] = 1  # the "no foreground" level
    boxes = np.concatenate([rows[:, 1:], np.array([NO_REGION], np.int64)])
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return LevelBoxes(boxes.astype(np.int64), start, level_of.astype(np.int64))


def best_ious(u8: np.ndarray, thresholds: np.ndarray, multi_contour: bool, gt: np.ndarray, grow: bool) -> np.ndarray:
    """(T,) the best IoU (``box_scores.iou_inclusive``) of any box of each threshold with any row of ``gt``;
    ``grow``: boxes in wsolevaluation's convention, (x, y, x + w, y + h) clipped to the map."""
    from wsolbench.protocols.box_scores import iou_inclusive

    u8 = np.asarray(u8)
    gt = np.ascontiguousarray(gt, np.float64).reshape(-1, 4)
    levels, level_of, _ = _levels(u8, thresholds)
    best = np.zeros(len(levels) + 1)
    if len(levels) and len(gt):
        best[: len(levels)] = _search(u8, levels, multi_contour, gt, grow)
    empty = np.array([NO_REGION], np.int64)
    if grow:
        h, w = u8.shape
        empty[:, 2:] = np.minimum(empty[:, 2:] + 1, [w - 1, h - 1])
    best[len(levels)] = iou_inclusive(empty, gt).max() if len(gt) else 0.0
    return best[level_of]
