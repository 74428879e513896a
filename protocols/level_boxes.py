"""Boxes of a uint8 score map at every threshold: the fast path of box evaluation.

``threshold_boxes(u8, thresholds, multi_contour)`` returns, for every threshold t, exactly the boxes that
the straightforward rule gives (``benchmarks/reference_boxes.py``, checked equal in the tests): foreground
``u8 > int(t * max)``; regions = the contours ``cv2.findContours(RETR_TREE)`` returns (8-connected
foreground components and the borders of their 4-connected holes); the largest-region rule keeps the
contour of largest ``cv2.contourArea`` (the first on ties); each box is the contour's bounding rectangle.

How. Thresholds collapse to distinct cuts ("levels"), nested foregrounds scanned from the highest down.
Two exact paths, checked against the reference and each other in the tests:

The certified scan (mode "one-pass"; fast on smooth maps with few maxima). Every component holds a regional
maximum and every hole an interior regional minimum (both found once per map, ``_extrema``), so most levels
are certified without tracing a contour (``_level_boxes_kernels``):
- all maxima above the level known to be connected: one component, its box is the foreground's extent.
  Maxima are known connected at levels up to the lowest value on the straight pixel line between them,
  or from a contour search that found their cell to be one component (then at every lower level too);
- else the foreground is cut by empty rows and columns (the row and column maxima of a rectangle come from
  16-row block maxima of the map and of its transpose) into cells that hold whole components; a cell whose
  maxima are known connected is one component and its box is the cell;
- all-regions rule: no hole where no interior minimum below the level lies strictly inside a cell, not
  counting a minimum with a straight row or column path below the level to the border; once levels keep
  being searched for possible holes, the holes of the levels to come come from the component tree's
  background pass (``hole_rows``) and the scan certifies only the outer contours;
- largest rule, several cells: the winner is certified by counts of 2x2 windows (full windows are unit
  squares inside an outer contour; a box of w x h bounds every contour in it by (w - 1)(h - 1)); a rival
  cell that may hold a hole (interior minima, as above, found when first needed) is bounded by its box only,
  since the hole adds to its outer contour's area.
A level that fails runs OpenCV's contour search on the foreground's extent, which is then its answer.

The component tree (mode "tree"; its cost does not grow with the number of levels or maxima): one
union-find pass adds the pixels from the highest level down and reads every level's components, a second
pass the holes (``_component_tree``).

"auto" runs the scan and hands the rest of a map over to the tree when its contour searches are expected
to cost more than the tree (a map with many maxima: more than ``MAX_MAXIMA``, or more than ``FEW_MAXIMA``
of at least a quarter of the top value, from the start or once its searches come at that rate); the
expected costs are measured as it goes.

Boxes are inclusive pixel extents (x0, y0, x1, y1); a level without foreground has one row (0, 0, -1, -1).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np


NO_REGION = (0, 0, -1, -1)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
MAX_CELLS = 64  # cells per level the certified scan keeps; beyond, the level is searched
MAX_MAXIMA = 64  # "auto": a noisier map (many merges, each a search) goes to the tree or per-level searches
HOLE_SEARCHES = 3  # all regions: after this many levels searched for a possible hole, with at least
HOLE_PASS_LEVELS = 8  # this many levels to go, the holes come from the background pass
FEW_MAXIMA = 8  # "auto": a map with more maxima of a quarter of its top or more goes to the tree where the scan is
# expected to cost more (a trained CAM's bicubic ringing adds low maxima that the scan settles cheaply)
LINKED_NEIGHBOURS = 8  # each maximum is tried for a straight connection to this many nearest ones
GIVE_UP_SEARCHES = 16  # "auto": once this many levels and over half of those scanned needed a search, search on


_modules: dict[str, object] = {}


def _loops(name: str):
    """A compiled-loop module of this package, imported on first use: importing numba takes a second."""
    if name not in _modules:
        import importlib

        _modules[name] = importlib.import_module(f"wsolbench.protocols.{name}")
    return _modules[name]


def _compiled():
    """The certified scan's loops (``_level_boxes_kernels``)."""
    return _loops("_level_boxes_kernels")


def _extrema():
    """The regional extrema loops (``_extrema``)."""
    return _loops("_extrema")


def _tree():
    """The component-tree loops (``_component_tree``)."""
    return _loops("_component_tree")


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


def _extremum_zones(u8: np.ndarray, keep: np.ndarray | None, maxima: bool) -> np.ndarray:
    """The regional maxima (or interior minima) among the pixels that ``keep`` (if given) lets through (the
    scratch is kept per thread and overwritten by the next call)."""
    h, w = u8.shape
    frame = (h + 2, (w + 9) // 8 * 8)  # one pad cell on every side, rows a whole number of 8-pixel words
    cand, seed = _reused("zone_cand", frame, np.uint8), _reused("zone_seed", frame, np.uint8)
    rows, others = _reused("zone_rows", u8.shape, np.uint8), _reused("zone_others", u8.shape, np.uint8)
    kernels = _extrema()
    kernels.mark_candidates(u8, u8 if keep is None else keep, keep is not None, maxima, cand, seed, rows, others)
    runs = _reused("zone_runs", (5, h * (w // 2 + 1)), np.int32)
    return kernels.flat_zones(u8, cand, seed, maxima, not maxima, maxima, runs)


def regional_maxima(u8: np.ndarray) -> np.ndarray:
    """(K, 3) rows (value, y, x): one pixel of every regional maximum (8-connected flat zone > 0 with no
    higher neighbour), highest first."""
    return _extremum_zones(np.ascontiguousarray(u8, dtype=np.uint8), None, True)


def straight_escape(u8: np.ndarray, turned: np.ndarray | None = None) -> np.ndarray:
    """Per pixel, the smallest max along the four straight rays from it to the border: above that level its
    background reaches the border, so a pixel whose value is this is in no hole at any level."""
    turned = cv2.transpose(u8) if turned is None else turned
    columns, rows = _reused("escape_c", u8.shape, np.uint8), _reused("escape_r", turned.shape, np.uint8)
    kernels = _extrema()
    kernels.column_escape(u8, columns)
    kernels.column_escape(turned, rows)
    return cv2.min(columns, cv2.transpose(rows))


def may_hole(u8: np.ndarray, turned: np.ndarray | None = None) -> np.ndarray:
    """255 where a pixel may lie in a hole at some level (no straight row or column path to the border
    through values no higher than its own: ``straight_escape`` above its value), else 0."""
    return cv2.compare(straight_escape(u8, turned), u8, cv2.CMP_GT)


def interior_minima(u8: np.ndarray, turned: np.ndarray | None = None) -> np.ndarray:
    """(K, 3) rows (value, y, x): one pixel of every regional minimum (4-connected flat zone with no lower
    4-neighbour) not touching the image border that could lie in a hole, lowest first (a superset of those:
    the hole-free certificate only needs every hole's lowest zone to be listed)."""
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    return _extremum_zones(u8, may_hole(u8, turned), False)


_scratch = threading.local()


def _reused(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array kept per thread between calls: fresh large arrays cost a page fault per 4 KiB."""
    cached = getattr(_scratch, name, None)
    if cached is None or cached.shape != shape or cached.dtype != dtype:
        cached = np.empty(shape, dtype)
        setattr(_scratch, name, cached)
    return cached


def block_maxima(u8: np.ndarray, turned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column maxima of 16-row blocks of the map and of its transpose (``turned``): from them
    ``_xy_cells`` gets any rectangle's row and column maxima (reused by the next call in the thread)."""
    kernels = _compiled()
    blocks = _reused("blocks", (-(-u8.shape[0] // kernels.BLOCK), u8.shape[1]), np.uint8)
    turned_blocks = _reused("turned_blocks", (-(-u8.shape[1] // kernels.BLOCK), u8.shape[0]), np.uint8)
    kernels.fill_block_maxima(u8, blocks)
    kernels.fill_block_maxima(turned, turned_blocks)
    return blocks, turned_blocks


def window_lows(u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and second smallest value of every 2x2 window, by its top-left pixel (h x w, reused per
    thread: the last row and column are unused)."""
    low1, low2 = _reused("low1", u8.shape, np.uint8), _reused("low2", u8.shape, np.uint8)
    _compiled().window_lows(u8, low1, low2)
    return low1, low2


def _search_level(u8: np.ndarray, value: int, extent: np.ndarray, multi_contour: bool):
    """OpenCV's contour search at one level, on the foreground's bounding box (same contours, same order).

    Returns (the rule's boxes, a function giving every outer contour's box: only needed to learn merges).
    """
    x0, y0, x1, y1 = (int(e) for e in extent)
    fg = cv2.threshold(u8[y0 : y1 + 1, x0 : x1 + 1], value - 1, 255, cv2.THRESH_BINARY)[1]
    contours, hierarchy = cv2.findContours(fg, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)

    def box(c: np.ndarray) -> list[int]:
        x, y, w, h = cv2.boundingRect(c)
        return [x + x0, y + y0, x + x0 + w - 1, y + y0 + h - 1]

    rects = np.array([box(c) for c in contours], np.int64).reshape(-1, 4) if multi_contour else None

    def outer_boxes() -> np.ndarray:
        # outer contours and hole borders alternate with depth in the tree
        parent = hierarchy[0][:, 3]
        odd = np.zeros(len(parent), bool)
        up = parent.copy()
        while (up >= 0).any():
            odd ^= up >= 0
            up = np.where(up >= 0, parent[np.maximum(up, 0)], -1)
        if rects is not None:
            return rects[~odd]
        return np.array([box(c) for c, o in zip(contours, odd) if not o], np.int64).reshape(-1, 4)

    if multi_contour:
        return rects, outer_boxes
    areas = [cv2.contourArea(c) for c in contours]
    return np.array([box(contours[areas.index(max(areas))])], np.int64), outer_boxes  # the first of equal areas


_TIE_ORDER = None


def _opencv_tie_order() -> int:
    """How this OpenCV lists separate outer contours: by first pixel in raster order, last first (1) or first
    first (-1); 0 if neither (the component tree then searches levels with equal largest areas)."""
    global _TIE_ORDER
    if _TIE_ORDER is None:
        probe = np.zeros((5, 9), np.uint8)
        probe[1, 1] = probe[3, 4] = probe[1, 7] = 255  # three separate pixels, first pixels 10, 16, 31
        contours = cv2.findContours(probe, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        firsts = [int(c[0, 0, 1]) * 9 + int(c[0, 0, 0]) for c in contours]
        _TIE_ORDER = 1 if firsts == [31, 16, 10] else -1 if firsts == [10, 16, 31] else 0
    return _TIE_ORDER


def hole_rows(u8: np.ndarray, values: np.ndarray, cap: int = 256, first: int = 0, turned: np.ndarray | None = None):
    """The hole borders (their boxes) of levels ``first, first + 1, ...`` as (levels, boxes) rows, from the
    component tree's background pass over the pixels that may lie in a hole (no straight row or column path
    to the border through values no higher than their own) and their 4-neighbours: few on a smooth map.
    ``cap``: no level above it holds a hole, so pixels from ``cap`` up are left out."""
    tree = _tree()
    h, w = u8.shape
    holes_may = may_hole(u8, turned)
    if cap < 256:
        cv2.bitwise_and(holes_may, cv2.compare(u8, cap, cv2.CMP_LT), dst=holes_may)
    if not cv2.countNonZero(holes_may):
        return _no_rows()
    near = cv2.dilate(holes_may, _CROSS)
    marked = _reused("hole_marked", ((h * w + 7) // 8 * 8,), np.uint8)
    marked[h * w :] = 0
    cv2.min(near, 1, dst=marked[: h * w].reshape(h, w))
    order, start = tree.subset_order(u8, values, marked, cv2.countNonZero(near))
    holes, levels = tree.hole_boxes(u8, order, start, (holes_may.reshape(-1) > 0).view(np.uint8))
    keep = (levels >= first) & (values[levels] <= cap)
    return levels[keep], holes[keep]


def filled(u8: np.ndarray) -> np.ndarray:
    """The map with every level's holes filled (``_component_tree.fill_holes``): where ``u8 >= v`` has a
    hole, the hole is ``>= v`` too. Only the pixels that may lie in a hole are flooded."""
    w = u8.shape[1]
    state = cv2.copyMakeBorder(may_hole(u8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    holes = np.flatnonzero(state == 255)
    if not len(holes):
        return u8
    state = np.select([state == 255, state == 0], [np.uint8(0), np.uint8(2)], state)  # 0 may lie in a hole,
    # 2 final (its value is its filled value), 1 the pad
    value = cv2.copyMakeBorder(u8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    _tree().fill_holes(value.reshape(-1), state.reshape(-1), holes, w + 2)
    return value[1:-1, 1:-1].copy()


def tree_rows(u8: np.ndarray, values: np.ndarray, multi_contour: bool, first: int = 0, fill: bool = False):
    """The component tree's boxes of levels ``first, first + 1, ...`` (``_component_tree``): (levels, boxes)
    rows, and (largest rule) the levels it leaves to a contour search.

    ``fill`` (largest rule): run the tree on the map with its holes filled (``filled``). Its components are
    the outer contours that lie in no hole, with their exact areas, boxes and first pixels (a contour inside
    a hole, or a hole's border, is smaller than the outer contour around it), so it leaves to a search only
    equal areas where OpenCV's order is unknown; filling costs about as much as a few searches."""
    tree = _tree()
    if fill and not multi_contour:
        u8 = filled(u8)
    order, start = tree.level_order(u8, values)
    boxes, levels, need = tree.foreground_tree(u8, order, start, not multi_contour, _opencv_tie_order())
    if multi_contour:
        hole_levels, holes = hole_rows(u8, values)
        boxes, levels = np.concatenate([boxes, holes]), np.concatenate([levels, hole_levels])
    keep = levels >= first
    return levels[keep], boxes[keep], [int(i) for i in np.flatnonzero(need[first:]) + first]


# The component tree's cost per pixel (seconds; measured on 224 x 224 maps: ~0.9-1.1 ms with the largest rule,
# ~1.6-1.9 ms with the hole pass of the all-regions rule), against the contour searches it would replace.
TREE_SECONDS_PER_PIXEL = {False: 20e-9, True: 36e-9}
# The tree on the map with its holes filled (largest rule): the fill (10-17 ns per pixel that may lie in a hole,
# up to ~75 % of a noisy map's) and the tree.
FILLED_TREE_SECONDS_PER_PIXEL = 32e-9
# The certified scan's cost per pixel and level on a map with more than FEW_MAXIMA maxima (measured: 25-36 us
# a level on 224 x 224 maps with 10-60 maxima, most of it contour searches).
SCAN_SECONDS_PER_PIXEL_LEVEL = 0.6e-9


def _search_or_tree(u8, values, extents, multi_contour, first, searched, boxes, counts, n_empty, level_of,
                    seconds_per_search: float | None, extra=None) -> LevelBoxes:
    """Levels from ``first`` on by a contour search each, or by the component tree where that is expected
    to be faster (``seconds_per_search``: measured so far; None: the middle level's search is timed first,
    the top levels' small foregrounds being quicker to search than most)."""
    if first < len(values) and seconds_per_search is None:
        middle = (first + len(values)) // 2
        start = time.perf_counter()
        searched[middle] = _search_level(u8, int(values[middle]), extents[middle], multi_contour)[0]
        seconds_per_search = time.perf_counter() - start
    left = [j for j in range(first, len(values)) if j not in searched]
    if len(left) * seconds_per_search > TREE_SECONDS_PER_PIXEL[multi_contour] * u8.size:
        return _from_tree(u8, values, extents, multi_contour, first, searched, boxes, counts, n_empty, level_of, extra)
    for j in left:
        searched[j] = _search_level(u8, int(values[j]), extents[j], multi_contour)[0]
    return _assemble(searched, boxes, counts, n_empty, level_of, _before(extra, first))


def threshold_boxes(u8: np.ndarray, thresholds: np.ndarray, multi_contour: bool, mode: str = "auto") -> LevelBoxes:
    """Boxes of ``u8`` (2-D uint8) at every threshold; see the module docstring for the rule.

    ``mode``: "one-pass" (the certified scan), "tree" (one union-find pass over the pixels for all levels,
    ``_component_tree``: the fastest on noisy maps with many maxima and many levels), "per-level" (a contour
    search per distinct level) or "auto" (the certified scan, handing over to the tree or to searches
    where it would search many levels). Same boxes in all.
    """
    if mode not in ("auto", "one-pass", "per-level", "tree"):
        raise ValueError(f"mode must be auto, one-pass, tree or per-level, got {mode!r}")
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    kernels = _compiled()
    if min(u8.shape) < 2 and mode != "tree":
        mode = "per-level"  # no 2x2 windows: nothing to certify with
    # levels are scanned from the highest cut down; foreground u8 >= value, empty above the max
    values, n_empty, level_of, extents, row_max, col_max = kernels.levels_and_extents(
        u8, np.asarray(thresholds, np.float64).reshape(-1))
    none = np.zeros((len(values), 0, 4), np.int64), np.zeros(len(values), np.int64)
    if mode == "per-level":
        found = {i: _search_level(u8, int(v), e, multi_contour)[0] for i, (v, e) in enumerate(zip(values, extents))}
        return _assemble(found, *none, n_empty, level_of)
    if mode == "tree":
        return _from_tree(u8, values, extents, multi_contour, 0, {}, *none, n_empty, level_of)

    maxima = regional_maxima(u8)
    if mode == "auto" and len(maxima) > MAX_MAXIMA:  # a noisy map: most levels would need a search
        return _search_or_tree(u8, values, extents, multi_contour, 0, {}, *none, n_empty, level_of, None)
    # maxima of at least a quarter of the top: many of them (not just a CAM's low ringing) make searches
    peaks = int(np.count_nonzero(maxima[:, 0] * 4 >= maxima[0, 0])) if len(maxima) else 0
    if mode == "auto" and peaks > FEW_MAXIMA and \
            len(values) * SCAN_SECONDS_PER_PIXEL_LEVEL > TREE_SECONDS_PER_PIXEL[multi_contour]:
        return _from_tree(u8, values, extents, multi_contour, 0, {}, *none, n_empty, level_of)

    # the transpose serves the cells' block maxima (several maxima) and the straight escapes (minima, holes):
    # a one-maximum map under the largest rule needs neither
    turned = cv2.transpose(u8) if len(maxima) > 1 or multi_contour else np.zeros((0, 0), np.uint8)
    boxes = _reused("boxes", (max(256, len(values)), MAX_CELLS, 4), np.int64)[: len(values)]
    counts = np.zeros(len(values), np.int64)
    group = np.arange(len(maxima), dtype=np.int64)
    cell_of_max = np.full(len(maxima), -1, np.int64)
    links = kernels.line_links(u8, maxima, LINKED_NEIGHBOURS)  # joined on the way down: highest first
    # interior minima (where holes may be): the all-regions rule needs them; the largest rule only when boxes
    # and full windows do not settle the winner (a rival's hole adds to its outer contour's area)
    holes = None  # (levels, boxes) rows to add: none beside the scan (its searches list the holes)
    minima_known = multi_contour
    minima = interior_minima(u8, turned) if minima_known else np.zeros((0, 3), np.int64)
    escape = kernels.escape_values(u8, minima)
    blocks = turned_blocks = np.zeros((0, 0), np.uint8)  # made when first needed
    low1 = low2 = np.zeros((0, 0), np.uint8)
    if len(maxima) > 1:  # some level will almost surely need them: made now, the scan runs through
        blocks, turned_blocks = block_maxima(u8, turned)
    need = np.zeros(1, np.int64)
    searched: dict[int, np.ndarray] = {}
    search_seconds = 0.0
    hole_searches = 0  # levels searched for a possible hole only
    first_search = (0, 0.0)  # (level, time) of the first search
    i = 0
    while i < len(values):
        i = kernels.scan_levels(i, values, extents, u8, turned, blocks, turned_blocks, row_max, col_max, maxima, group,
                                links, minima, escape, minima_known, not multi_contour, low1, low2, boxes, counts,
                                cell_of_max, need)
        if i == len(values):
            break
        turned = turned if turned.size or need[0] not in (1, 3) else cv2.transpose(u8)  # (made above when likely)
        if need[0] == 1:
            blocks, turned_blocks = block_maxima(u8, turned)
            need[0] = 0
            continue
        if need[0] == 2:
            low1, low2 = window_lows(u8)
            need[0] = 0
            continue
        if need[0] == 3:
            minima_known = True
            minima = interior_minima(u8, turned)
            escape = kernels.escape_values(u8, minima)
            need[0] = 0
            continue
        hole_searches += need[0] == 5
        if need[0] == 5 and hole_searches > HOLE_SEARCHES and len(values) - i >= HOLE_PASS_LEVELS:
            # holes keep coming, with many levels to go: the background pass lists the holes of the rest
            # (none above the highest escape of an interior minimum), the scan certifies the outer contours
            holes = hole_rows(u8, values, int(escape.max()), i, turned)
            minima = np.zeros((0, 3), np.int64)
            escape = kernels.escape_values(u8, minima)
            counts[i] = 0
            need[0] = 0
            continue
        need[0] = 0
        if mode == "auto" and len(searched) >= GIVE_UP_SEARCHES and 2 * len(searched) > i:
            # most levels need a search here: the rest from the tree, or searched without the scan
            return _search_or_tree(u8, values, extents, multi_contour, i, searched, boxes, counts, n_empty, level_of,
                                   search_seconds / len(searched), holes)
        if mode == "auto" and peaks > FEW_MAXIMA and len(searched) >= 2:
            # a map with many maxima: the rest at the rate since the first search (scan and searches), against
            # the tree for the rest (a smooth map's searches come in short runs: it keeps scanning)
            expected = (len(values) - i) * (time.perf_counter() - first_search[1]) / (i - first_search[0])
            if expected > TREE_SECONDS_PER_PIXEL[multi_contour] * u8.size:
                return _from_tree(u8, values, extents, multi_contour, i, searched, boxes, counts, n_empty, level_of,
                                  holes)
        if not searched:
            first_search = (i, time.perf_counter())
        started = time.perf_counter()
        found, outer_boxes = _search_level(u8, int(values[i]), extents[i], multi_contour)
        search_seconds += time.perf_counter() - started
        searched[i] = found
        cells = boxes[i, : max(-int(counts[i]) - 1, 0)]
        if len(cells) and kernels.mixed_cells(cells, cell_of_max, group):  # a cell found to be one component: its
            kernels.learn_merges(cells, cell_of_max, outer_boxes(), group)  # maxima are connected here and below
        i += 1
    return _assemble(searched, boxes, counts, n_empty, level_of, holes)


def _from_tree(u8, values, extents, multi_contour, first, searched, boxes, counts, n_empty, level_of,
               extra=None) -> LevelBoxes:
    """Levels from ``first`` on from the component tree (and the searches it leaves), earlier ones as given
    (with ``extra`` (levels, boxes) rows: the holes beside the certified scan)."""
    levels, rows, to_search = tree_rows(u8, values, multi_contour, first)
    counts[first:] = 0  # the scan may have left a level's cells there
    left = [j for j in to_search if j not in searched]
    if len(left) > 1:  # many searches (rivals with holes): the tree on the filled map may cost less
        started = time.perf_counter()
        searched[left[0]] = _search_level(u8, int(values[left[0]]), extents[left[0]], multi_contour)[0]
        left = left[1:]
        if len(left) * (time.perf_counter() - started) > FILLED_TREE_SECONDS_PER_PIXEL * u8.size:
            levels, rows, to_search = tree_rows(u8, values, multi_contour, first, fill=True)
            left = [j for j in to_search if j not in searched]
    for j in left:
        searched[j] = _search_level(u8, int(values[j]), extents[j], multi_contour)[0]
    before_levels, before_rows = _before(extra, first)
    return _assemble(searched, boxes, counts, n_empty, level_of,
                     (np.concatenate([before_levels, levels]), np.concatenate([before_rows, rows])))


def _no_rows() -> tuple[np.ndarray, np.ndarray]:
    """No (levels, boxes) rows."""
    return np.zeros(0, np.int64), np.zeros((0, 4), np.int64)


def _before(rows: tuple[np.ndarray, np.ndarray] | None, first: int) -> tuple[np.ndarray, np.ndarray]:
    """The (levels, boxes) rows of levels before ``first`` (none when ``rows`` is None)."""
    if rows is None:
        return _no_rows()
    keep = rows[0] < first
    return rows[0][keep], rows[1][keep]


def _assemble(searched: dict[int, np.ndarray], boxes: np.ndarray, counts: np.ndarray, n_empty: int,
              level_of: np.ndarray, extra: tuple[np.ndarray, np.ndarray] | None = None) -> LevelBoxes:
    """All levels' boxes in one array: NO_REGION for the ``n_empty`` first, then each level's certified or
    searched boxes, then its ``extra`` (levels, boxes) rows (the component tree's, or the holes beside the
    certified scan; a searched level keeps its search alone)."""
    is_searched = np.zeros(len(counts), np.bool_)
    for i, found in searched.items():
        counts[i] = -len(found) - 1
        is_searched[i] = True
    extra_levels, extra_boxes = extra if extra is not None else _no_rows()
    out, start = _compiled().gather_boxes(n_empty, boxes, counts, np.ascontiguousarray(extra_levels, np.int64),
                                          np.ascontiguousarray(extra_boxes, np.int64).reshape(-1, 4), is_searched)
    for i, found in searched.items():
        out[start[n_empty + i] : start[n_empty + i] + len(found)] = found
    return LevelBoxes(out, start, level_of)
