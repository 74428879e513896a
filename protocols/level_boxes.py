"""Boxes of a uint8 score map at every threshold in one pass: the fast path of box evaluation.

``threshold_boxes(u8, thresholds, multi_contour)`` returns, for every threshold t, exactly the boxes that
the straightforward rule gives (``benchmarks/reference_boxes.py``, checked equal in the tests): foreground
``u8 > int(t * max)``; regions = the contours ``cv2.findContours(RETR_TREE)`` returns (8-connected
foreground components and the borders of their 4-connected holes); the largest-region rule keeps the
contour of largest ``cv2.contourArea`` (the first on ties); each box is the contour's bounding rectangle.

How. The foreground depends only on the smallest map value above the cut, so thresholds collapse to at most
256 nested foregrounds ("levels"), scanned from the highest value down. For all levels at once, cheaply:
the Euler number E = components - holes (2x2 "bit quad" patterns, via histograms), the regional maxima
(where components are born) and minima (where holes vanish), and the bounding box of the whole foreground.
Going one level down, C <= C' + births and H >= max(0, H' - deaths); when E equals the bound, C and H are
exact and no components merged. Only levels failing that check run OpenCV's contour search.
- one component (with no hole, or any holes under the largest rule): the foreground's box;
- several hole-free components over a run of levels without merges: one labelling of the run's lowest
  level gives every component's box at every level of the run (prefix maxima of its rows and columns) and
  its contour area (hole-free 8-connected region: full 2x2 windows + half of the three-pixel ones);
- anything else (hole borders under the all-regions rule, area ties, short runs): the contour search.

Boxes are inclusive pixel extents (x0, y0, x1, y1); a level without foreground has one row (0, 0, -1, -1).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NO_REGION = (0, 0, -1, -1)
_K3 = np.ones((3, 3), np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


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


def _hist(a: np.ndarray) -> np.ndarray:
    return cv2.calcHist([np.ascontiguousarray(a)], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def _count_ge(a: np.ndarray) -> np.ndarray:
    """n[v] = number of entries >= v, for v in 0..256."""
    return np.concatenate([np.cumsum(_hist(a)[::-1])[::-1], [0]])


def euler_numbers(u8: np.ndarray):
    """E[v] = (8-connected components) - (4-connected holes) of the mask ``u8 >= v``, for v in 0..256.

    Gray's bit-quad formula E = (n1 - n3 - 2 nd) / 4 over the 2x2 windows of the zero-padded mask
    (n1: windows with one foreground pixel, n3: three, nd: two on a diagonal). A window's pattern at level v
    depends on its sorted values v1 <= v2 <= v3 <= v4 only, so each count over all v is a difference of
    histograms. Also returns v1 and v2 of every window (padded grid), for contour areas.
    """
    p = cv2.copyMakeBorder(u8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    a, b, c, d = p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]
    lo_ab, hi_ab = cv2.min(a, b), cv2.max(a, b)
    lo_cd, hi_cd = cv2.min(c, d), cv2.max(c, d)
    v1, v4 = cv2.min(lo_ab, lo_cd), cv2.max(hi_ab, hi_cd)
    mid_lo, mid_hi = cv2.max(lo_ab, lo_cd), cv2.min(hi_ab, hi_cd)
    v2 = cv2.min(mid_lo, mid_hi)
    # n1 - n3 = #(v3 < v <= v4) - #(v1 < v <= v2) = ge(v4) - ge(v3) - ge(v2) + ge(v1); every pixel sits in
    # four windows, so ge(v1) + ge(v2) + ge(v3) + ge(v4) = 4 ge(u8) for v >= 1
    ge_u = _count_ge(u8)
    n1_n3 = 2 * (_count_ge(v4) + _count_ge(v1)) - 4 * ge_u
    # one diagonal pair >= v > the other pair: max(other pair) < v <= min(pair); at most one pair can be it
    min_ad, max_ad = cv2.min(a, d), cv2.max(a, d)
    min_bc, max_bc = cv2.min(b, c), cv2.max(b, c)
    top = cv2.max(min_ad, min_bc)
    nd = _count_ge(top) - _count_ge(cv2.min(cv2.min(max_ad, max_bc), top))
    euler = (n1_n3 - 2 * nd) // 4
    euler[0] = 1  # the whole image
    return euler, v1, v2


def regional_maxima_values(u8: np.ndarray, connectivity: int = 8, closed_border: bool = False) -> np.ndarray:
    """The value of every regional maximum: a flat zone (8- or 4-connected), > 0, with no higher neighbour.

    ``closed_border``: the outside of the image counts as higher (no zone touching the border qualifies).
    """
    kernel = _K3 if connectivity == 8 else _CROSS
    # 255 where no neighbour is higher (and the value is > 0); OpenCV ops: several times numpy's speed here
    top = cv2.bitwise_and(cv2.compare(u8, cv2.dilate(u8, kernel), cv2.CMP_EQ), cv2.compare(u8, 0, cv2.CMP_GT))
    if closed_border:
        top[0, :] = top[-1, :] = top[:, 0] = top[:, -1] = 0
    n, labels = cv2.connectedComponents(top, connectivity=connectivity, ltype=cv2.CV_32S)
    if n == 1:
        return np.zeros(0, np.int64)
    # a zone of `top` pixels is a regional maximum unless an equal-valued neighbour lies outside `top`
    outside = cv2.bitwise_and(u8, cv2.bitwise_not(top))
    spoiled = cv2.bitwise_and(cv2.compare(cv2.dilate(outside, kernel), u8, cv2.CMP_EQ), top)
    idx = np.flatnonzero(top)
    lab = labels.ravel()[idx]
    values = np.zeros(n, np.int64)
    values[lab] = u8.ravel()[idx]
    bad = np.zeros(n, bool)
    bad[lab[spoiled.ravel()[idx] > 0]] = True
    keep = ~bad
    keep[0] = False
    return values[keep]


def _first_ge(prefix_max: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(prefix_max, values, side="left")


def _extents(u8: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of ``u8 >= v`` for each v (meaningless where the mask is empty)."""
    h, w = u8.shape
    rows, cols = u8.max(axis=1), u8.max(axis=0)
    out = np.empty((len(values), 4), np.int64)
    out[:, 0] = _first_ge(np.maximum.accumulate(cols), values)
    out[:, 1] = _first_ge(np.maximum.accumulate(rows), values)
    out[:, 2] = w - 1 - _first_ge(np.maximum.accumulate(cols[::-1]), values)
    out[:, 3] = h - 1 - _first_ge(np.maximum.accumulate(rows[::-1]), values)
    return out


def _count_at_least(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """For each level v: how many of ``values`` are >= v."""
    return len(values) - np.searchsorted(np.sort(values), levels, side="left")


def _level_contours(u8: np.ndarray, value: int, extent: np.ndarray, multi_contour: bool, count: bool = True):
    """The contour search at one level, on the foreground's bounding box (same contours, same order).

    Returns (boxes, components, holes), the counts only when ``count`` (else -1); outer contours and
    hole borders alternate with depth in the tree.
    """
    x0, y0, x1, y1 = (int(e) for e in extent)
    fg = u8[y0 : y1 + 1, x0 : x1 + 1] >= value
    contours, hierarchy = cv2.findContours(fg.view(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    comps = holes = -1
    if count:
        parent = hierarchy[0][:, 3]
        depth = np.zeros(len(parent), np.int64)
        up = parent.copy()
        while (up >= 0).any():
            depth += up >= 0
            up = np.where(up >= 0, parent[np.maximum(up, 0)], -1)
        comps = int((depth % 2 == 0).sum())
        holes = len(parent) - comps
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    rects = np.array([cv2.boundingRect(c) for c in contours], np.int64).reshape(-1, 4)
    rects[:, 2:] += rects[:, :2] - 1
    rects += (x0, y0, x0, y0)
    return rects, comps, holes


MAX_RUN_COMPONENTS = 16  # beyond this (noise), per-level contour search is as fast
MIN_RUN_LEVELS = 8


def _run_boxes(u8: np.ndarray, bottom: int, extent: np.ndarray, values: np.ndarray, quads, want_area: bool):
    """Every component's box (and contour area) at each of ``values``, for levels that share one partition.

    Between the lowest level ``bottom`` and the others no components merged, so each component there holds
    at most one component of each higher level: one labelling serves all. Returns (ext (n, L, 4),
    alive (n, L), twice the area (n, L) or None), or None when there are too many components.
    The outer contour area of a hole-free 8-connected region is (2x2 windows inside it) + (windows with three
    of its pixels) / 2, i.e. half the windows whose smallest value is >= v plus half those whose second is.
    """
    x0, y0, x1, y1 = (int(e) for e in extent)
    crop = u8[y0 : y1 + 1, x0 : x1 + 1]
    n, labels = cv2.connectedComponents((crop >= bottom).view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    if n - 1 > MAX_RUN_COMPONENTS:
        return None
    ext = np.empty((n - 1, len(values), 4), np.int64)
    alive = np.empty((n - 1, len(values)), bool)
    area2 = np.empty((n - 1, len(values)), np.int64) if want_area else None
    for comp in range(1, n):
        part = np.where(labels == comp, crop, 0).astype(np.uint8)
        ext[comp - 1] = _extents(part, values) + (x0, y0, x0, y0)
        alive[comp - 1] = part.max() >= values
    if want_area:
        # each 2x2 window belongs to the one component its foreground pixels are in (0: none)
        pl = cv2.copyMakeBorder(labels.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        owner = cv2.max(cv2.max(pl[:-1, :-1], pl[:-1, 1:]), cv2.max(pl[1:, :-1], pl[1:, 1:]))
        hist = sum(
            cv2.calcHist([owner, np.ascontiguousarray(q[y0 : y1 + 2, x0 : x1 + 2])], [0, 1], None, [n, 256], [0, n, 0, 256])
            for q in quads
        ).astype(np.int64)  # (component, value) counts
        at_least = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]
        area2[:] = at_least[1:, values]
    return ext, alive, area2


def threshold_boxes(u8: np.ndarray, thresholds: np.ndarray, multi_contour: bool, mode: str = "auto") -> LevelBoxes:
    """Boxes of ``u8`` (2-D uint8) at every threshold; see the module docstring for the rule.

    ``mode``: "one-pass" (the certified scan), "per-level" (a contour search per distinct level: faster on
    noisy maps with many maxima) or "auto" (picks by the number of regional maxima). Same boxes in all.
    """
    if mode not in ("auto", "one-pass", "per-level"):
        raise ValueError(f"mode must be auto, one-pass or per-level, got {mode!r}")
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    cuts = threshold_cuts(u8, thresholds)
    present = np.flatnonzero(_hist(u8))
    # foreground u8 > cut == u8 >= (smallest present value above cut); 256 = empty
    pos = np.searchsorted(present, cuts, side="right")
    low = np.where(pos < len(present), present[np.minimum(pos, len(present) - 1)], 256)
    level_values, level_of = np.unique(low, return_inverse=True)  # ascending
    order = level_values[::-1]  # the scan goes from the highest value (smallest foreground) down
    n_levels = len(order)

    # going down: a component is born only at a regional maximum; a hole dies only at a regional minimum
    # (a 4-connected flat zone not touching the border), counted here as maxima of the inverted map
    births = _count_at_least(regional_maxima_values(u8), order)
    values = np.minimum(order, 255)
    ext = _extents(u8, values)
    if mode == "per-level" or (mode == "auto" and _search_every_level(n_levels, int(births[-1]))):
        return _searched_levels(u8, order, ext, level_of, multi_contour)
    deaths = None  # needed only once a hole has been seen
    euler_all, q1, q2 = euler_numbers(u8)
    euler = euler_all[order]

    per_level: list[np.ndarray | None] = [None] * n_levels

    # exact components C and holes H of each level: C <= C' + births, H >= max(0, H' - deaths) from the level
    # above, so when E == (C' + births) - max(0, H' - deaths) both are exact; else the level is searched
    comps = np.zeros(n_levels, np.int64)
    holes = np.zeros(n_levels, np.int64)
    searched = np.zeros(n_levels, bool)  # where components may have merged: a new partition starts
    i = 0
    c0 = h0 = b0 = d0 = 0  # exact C, H, births and deaths of the last level searched (or the empty top)
    while i < n_levels:
        exp_c = c0 + births[i:] - b0
        exp_h = np.zeros(n_levels - i, np.int64) if h0 == 0 else np.maximum(0, h0 - (deaths[i:] - d0))
        bad = np.flatnonzero(euler[i:] != exp_c - exp_h)
        j = i + (bad[0] if bad.size else n_levels - i)
        comps[i:j], holes[i:j] = exp_c[: j - i], exp_h[: j - i]
        if j == n_levels:
            break
        per_level[j], comps[j], holes[j] = _level_contours(u8, int(order[j]), ext[j], multi_contour)
        searched[j] = True
        if holes[j] and deaths is None:
            deaths = _count_at_least(255 - regional_maxima_values(255 - u8, 4, closed_border=True), order)
        c0, h0, b0, d0 = comps[j], holes[j], births[j], (0 if deaths is None else deaths[j])
        i = j + 1

    # one component: its outer contour is the largest, and its box is the foreground's
    simple = (comps == 1) & ((holes == 0) | (not multi_contour))
    # several hole-free components: one labelling per run of levels sharing a partition
    run_id = np.cumsum(searched)
    several = np.flatnonzero((comps > 1) & (holes == 0) & np.array([b is None for b in per_level]))
    for rid in np.unique(run_id[several]):
        members = several[run_id[several] == rid]
        if len(members) < MIN_RUN_LEVELS:  # a labelling costs about as much as this many contour searches
            continue
        bottom = int(np.flatnonzero(run_id == rid).max())
        found = _run_boxes(u8, int(order[bottom]), ext[bottom], order[members], (q1, q2), not multi_contour)
        if found is None:
            continue
        c_ext, c_alive, c_area = found
        for col, k in enumerate(members):
            if multi_contour:
                per_level[k] = c_ext[c_alive[:, col], col]
                continue
            areas = np.where(c_alive[:, col], c_area[:, col], -1)
            best = np.flatnonzero(areas == areas.max())
            if best.size == 1:  # a tie is settled by OpenCV's contour order: left to the search
                per_level[k] = c_ext[best, col]
    missing = np.array([b is None for b in per_level])
    for k in np.flatnonzero(missing & (comps > 0) & ~simple):
        per_level[k] = _level_contours(u8, int(order[k]), ext[k], multi_contour, count=False)[0]
    simple &= missing
    return _assemble(per_level, ext, simple, comps == 0, level_of)


def _search_every_level(n_levels: int, n_maxima: int) -> bool:
    """Many regional maxima (a noisy map) mean many merges, each costing a search and a labelling: past
    the point where that costs more than searching every level, search every level (same boxes)."""
    return 20 + 6 * n_maxima > n_levels


def _searched_levels(u8, order, ext, level_of, multi_contour) -> LevelBoxes:
    empty = order >= 256
    per_level = [None if e else _level_contours(u8, int(v), x, multi_contour, count=False)[0] for v, x, e in zip(order, ext, empty)]
    return _assemble(per_level, ext, np.zeros(len(order), bool), empty, level_of)


def _assemble(per_level, ext, simple, empty, level_of) -> LevelBoxes:
    """Concatenate the levels' boxes: listed ones, the foreground's box where ``simple``, NO_REGION where ``empty``."""
    n_levels = len(per_level)
    counts = np.ones(n_levels, np.int64)
    listed = [k for k in range(n_levels) if per_level[k] is not None]
    counts[listed] = [len(per_level[k]) for k in listed]
    start = np.concatenate([[0], np.cumsum(counts)])
    boxes = np.empty((start[-1], 4), np.int64)
    boxes[start[:-1][simple]] = ext[simple]
    boxes[start[:-1][empty]] = NO_REGION
    for k in listed:
        boxes[start[k] : start[k + 1]] = per_level[k]
    # levels were scanned high to low; index them as `order` does
    return LevelBoxes(boxes, start, (n_levels - 1) - level_of)
