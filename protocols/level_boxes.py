"""Boxes of a uint8 score map at every threshold: all thresholds in one sweep over the map, plus one over its holes.

The rule (``reference_boxes.py`` spells it out one threshold at a time, and the tests hold this module to it):
at threshold t the foreground is ``u8 > int(t * max(u8))``; ``cv2.findContours(RETR_TREE)`` gives its regions:
the outer contour of every 8-connected foreground component and the border of every hole (a 4-connected
background component that does not reach the map's edge). A region's box is its contour's bounding
rectangle. "All regions" keeps every box; "largest" keeps the contour of largest ``cv2.contourArea``, the
first one OpenCV lists on ties.

Levels. A threshold only matters through its level v = int(t * max) + 1: the foreground is ``u8 >= v``, and
there are at most 256 levels however fine the thresholds (``_max_tree.levels_of``).

The foreground sweep (``_max_tree.sweep``). Going from value 255 down, the foreground only grows, so add
the pixels one value at a time (a counting sort gives the order) and join each to its 8-neighbours already
in: after the pixels of value v, the components are those of level v (a max-tree). Which neighbours are
already in depends only on the order (higher, or equal and earlier in raster order), so one raster pass
gives every pixel's 8-bit mask of them, and a 256-entry table turns a mask into the groups of neighbours
already joined through each other: most pixels on a smooth map have one group, so one look-up of the
component it joins. The union-find is over components, not pixels (a pixel's label is the component it
joined), and each root holds its component's box. A box does not change between two levels where its
component gains no pixel: it goes out once per such stretch of levels, as a row or, when scoring, as one
IoU raised over the stretch (a range-max table), so a level costs nothing for the components it leaves
alone.

Holes. A pixel lies in a hole at level v when its background component (``u8 < v``, 4-connected) reaches
no border. ``filled`` raises every pixel to the value at which its background first reaches the border
(a reconstruction by erosion from the border: two raster scans and a queue, ``fill_holes``); the pixel
is in a hole at exactly the levels v with ``u8 < v <= filled``. So the holes of every level come from a
second sweep over the hole pixels only (``filled > u8``, few on a smooth map), from the lowest value up,
4-connected; a hole lives up to its pixels' filled value. A hole's contour runs through the foreground
pixels around it, so its box is the hole's extent grown by one.

The largest rule needs areas. ``cv2.contourArea`` is the area of the polygon through the centres of the
contour's pixels, not a pixel count: a 1 x 12 line has area 0, a 3 x 3 square 4. Cut the plane into the
unit squares between four pixel centres (2x2 windows): the outer contour of a component without holes
covers a window whole when all four pixels are in, half of it when three are (the contour cuts the
corner), and none of it otherwise. So ``2 * area = 2 * n4 + n3``, counted as the pixels come in: a window
gains 1 when its third pixel arrives and 1 more with its fourth (``_max_tree.GAIN``, by mask). A hole adds
its own area to the outer contour's, so the largest rule sweeps the *filled* map, where every component
is an outer contour with its holes filled in and its window count is exactly twice that contour's area.
No other contour can win: a hole's border or a component inside a hole lies within the outer contour
around it. On equal areas OpenCV lists separate outer contours last found first, and a component is found
at its first pixel in raster order: the one whose first pixel comes last wins.

Every map takes the same steps (fill, sweep, and for all regions the hole sweep): no timings, caps or
choice of path; the work depends on the map only. Boxes are inclusive pixel extents (x0, y0, x1, y1); a
level without foreground has one row ``NO_REGION``. ``best_ious`` scores the boxes against ground truth
inside the sweeps, so a noisy map's hundreds of thousands of boxes are never stored.
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


def _kernels():
    from wsolbench.protocols import _max_tree  # numba: imported on first use

    return _max_tree


def _inputs(u8, thresholds):
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    if u8.ndim != 2 or max(u8.shape) > 65535:  # the sweep packs a pixel's (y, x) into 16 bits each
        from wsolbench.errors import WsolbenchError

        raise WsolbenchError(f"box search: a map must be 2-D, at most 65535 pixels a side; got shape {u8.shape}")
    return u8, np.ascontiguousarray(thresholds, dtype=np.float64).reshape(-1)


def threshold_boxes(u8: np.ndarray, thresholds: np.ndarray, multi_contour: bool) -> LevelBoxes:
    """Boxes of ``u8`` (2-D uint8) at every threshold; see the module docstring for the rule."""
    u8, thresholds = _inputs(u8, thresholds)
    if len(thresholds) == 0:
        return LevelBoxes(np.zeros((0, 4), np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64))
    rows, best, level_of = _kernels().search(u8, thresholds, not multi_contour, _NO_GT, False)
    n_levels = len(best) - 1
    # rows (first level, last level, box) to one row per level, grouped by level
    n = (rows[:, 1] - rows[:, 0] + 1).astype(np.int64)
    which = np.repeat(np.arange(len(rows)), n)
    level = rows[which, 0] + np.arange(len(which)) - np.repeat(np.cumsum(n) - n, n)
    by_level = np.argsort(level, kind="stable")
    counts = np.bincount(level, minlength=n_levels + 1)
    counts[n_levels] = 1  # the "no foreground" level
    boxes = np.concatenate([rows[which[by_level], 2:].astype(np.int64), np.array([NO_REGION], np.int64)])
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return LevelBoxes(boxes, start, level_of)


def best_ious(u8: np.ndarray, thresholds: np.ndarray, multi_contour: bool, gt: np.ndarray, grow: bool) -> np.ndarray:
    """(T,) the best IoU (``box_scores.iou_inclusive``) of any box of each threshold with any row of ``gt``;
    ``grow``: boxes in wsolevaluation's convention, (x, y, x + w, y + h) clipped to the map."""
    u8, thresholds = _inputs(u8, thresholds)
    gt = np.ascontiguousarray(gt, np.float64).reshape(-1, 4)
    if len(gt) == 0:
        return np.zeros(len(thresholds))
    _, best, level_of = _kernels().search(u8, thresholds, not multi_contour, gt, bool(grow))
    return best[level_of]


def filled_map(u8: np.ndarray) -> np.ndarray:
    """``u8`` with every pixel raised to the value at which its background component (``u8 < v``,
    4-connected) first reaches the border: at every level, ``filled >= v`` is the foreground with its holes
    filled in (the map the largest rule's sweep runs on)."""
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    h, w = u8.shape
    filled = _kernels().fill_holes(np.pad(u8, 1).reshape(-1), h, w)
    return filled.reshape(h + 2, w + 2)[1:-1, 1:-1].copy()


_NO_GT = np.zeros((0, 4))
