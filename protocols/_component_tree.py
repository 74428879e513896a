"""Every level's region boxes from one union-find pass over the pixels (numba): the path for noisy maps.

The foregrounds of all levels are nested, so their 8-connected components form one tree: pixels are added
from the highest level down (a counting sort by level) and joined to their already-added 8-neighbours; after
each level the live components are that level's outer contours. Each component keeps its box, its first
pixel in raster order, twice the area of its outer contour if it had no hole (``own2``: a 2x2 window with 3
of its pixels adds a half square, one with 4 a whole one) and four times its Euler number (Gray's 2x2 window
patterns, 8-connected: +1 for one pixel, -1 for three, -2 for a diagonal pair), so ``1 - euler4 / 4`` is its
number of holes.

The all-regions rule also lists the hole borders: a second pass adds the background pixels from the lowest
level up, 4-connected, a component touching the image border being "outside"; after each level the other
live components are the holes, and a hole border's box is the hole's box grown by one pixel.

The largest-region rule takes the outer contour of largest area: the component with the largest ``own2``
wins when no other can reach it (a hole-free rival's area is exact; a rival with holes is bounded by its
box, (w - 1)(h - 1)); a level where that is not certain (equal areas, a rival with holes) is left to the
caller's contour search (``need_search``), or, where those would be many, the tree is run again on the map
with its holes filled (``fill_holes``), where every component is hole-free and its area exact.

Cost: O(pixels) with a small constant (about 16-30 ns a pixel for the foreground pass), whatever the number
of levels: the per-level contour search it replaces costs about 0.5 ns a pixel per level.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from wsolbench.protocols._union_find import find


@njit(cache=True)
def _band_of(values):
    """For each value 0..255, the first (highest) level it reaches (``values`` descending: foreground
    ``u8 >= v``); ``len(values)`` below every level."""
    n_levels = values.shape[0]
    band_of = np.full(256, n_levels, np.int64)
    lvl = 0
    for v in range(255, -1, -1):
        while lvl < n_levels and values[lvl] > v:
            lvl += 1
        band_of[v] = lvl
    return band_of


@njit(cache=True)
def fill_holes(value, state, holes, pw):
    """The map with every level's holes filled, in place in ``value``: ``E(p)`` = the least, over 4-connected
    paths from p to the image border, of the highest value on the path. The foreground ``u8 >= v`` with its
    holes (4-connected background not reaching the border) is ``E >= v``, so each of its components is an
    outer contour's region, hole-free, and its window count is twice that contour's area.

    ``value``: the map padded by one pixel (uint8, flat, rows of ``pw`` = w + 2); ``state`` the same frame:
    0 where the pixel may lie in a hole, 2 where a straight row or column path reaches the border through
    values no higher than its own (there ``E`` is its value), 1 on the pad; ``holes``: the indices of the 0
    pixels. Those are flooded from the final pixels next to them, lowest first (a bucket queue: keys never
    fall), ``E(q) = max(value(q), E(p))`` from the pixel p that reaches them first. Cost ~ ``len(holes)``
    (about 10-17 ns each: the queue's pops wait on memory)."""
    head = np.full(256, -1, np.int32)
    nxt = np.empty(value.shape[0], np.int32)
    steps = (-pw, pw, -1, 1)
    for q in holes:  # the seeds: final pixels next to one that may lie in a hole
        for d in steps:
            p = q + d
            if state[p] == 2:
                state[p] = 1
                nxt[p] = head[value[p]]
                head[value[p]] = p
    for key in range(256):
        while head[key] >= 0:
            p = head[key]
            head[key] = nxt[p]
            for d in steps:
                q = p + d
                if state[q] == 0:
                    state[q] = 1
                    e = max(value[q], np.uint8(key))
                    value[q] = e
                    nxt[q] = head[e]
                    head[e] = q


@njit(cache=True)
def _value_slots(histogram, band_of, n_levels):
    """A counting sort's slots from the pixels' value histogram: (start of each band, ``start[L]`` ending
    them; where the first pixel of each value goes: bands in order, values highest first within a band)."""
    counts = np.zeros(n_levels + 2, np.int64)
    for v in range(256):
        counts[band_of[v] + 1] += histogram[v]
    for k in range(n_levels + 1):
        counts[k + 1] += counts[k]
    start = counts[: n_levels + 1].copy()
    next_of = np.empty(256, np.int64)
    for v in range(255, -1, -1):
        next_of[v] = counts[band_of[v]]
        counts[band_of[v]] += histogram[v]
    return start, next_of


@njit(cache=True)
def level_order(u8, values):
    """Pixels sorted by level (counting sort by value; within a level highest value first, each value in raster
    order: the tree reads a level only once all its pixels are in): ``order[start[i]:start[i + 1]]``
    are the pixels whose highest level is ``values[i]`` (``values`` descending: foreground ``u8 >= v``);
    ``start[L]`` ends the pixels of the levels, the rest (below every level) follow."""
    f = u8.ravel()
    histogram = np.zeros(256, np.int64)
    for p in range(f.shape[0]):
        histogram[f[p]] += 1
    start, next_of = _value_slots(histogram, _band_of(values), values.shape[0])
    order = np.empty(f.shape[0], np.int32)
    for p in range(f.shape[0]):
        v = f[p]
        order[next_of[v]] = p
        next_of[v] += 1
    return order, start


@njit(cache=True)
def subset_order(u8, values, marked, count):
    """``level_order`` of the ``count`` pixels set in ``marked`` (flat 0/1; its length a multiple of 8, the
    padding 0, so that empty stretches are skipped 8 at a time), in the same order."""
    f = u8.ravel()
    words = marked.view(np.uint64)
    pixels = np.empty(count, np.int32)
    k = 0
    for j in range(words.shape[0]):
        if words[j] != 0:
            for p in range(8 * j, 8 * j + 8):
                if marked[p] != 0:
                    pixels[k] = p
                    k += 1
    histogram = np.zeros(256, np.int64)
    for j in range(k):
        histogram[f[pixels[j]]] += 1
    start, next_of = _value_slots(histogram, _band_of(values), values.shape[0])
    order = np.empty(k, np.int32)
    for j in range(k):
        v = f[pixels[j]]
        order[next_of[v]] = pixels[j]
        next_of[v] += 1
    return order, start


# A 2x2 window gains pixel p: by (opposite pixel set, the two others next to p set) = index opp * 4 + a * 2 + b,
# the change of four times its Euler number (8-connected: one pixel +1, a diagonal pair -2, three -1) and of
# twice its contour area (three pixels: a half square, four: a whole one).
_EULER_STEP = np.array([1, -1, -1, 1, -3, -1, -1, 1], np.int64)
_AREA_STEP = np.array([0, 0, 0, 1, 0, 1, 1, 1], np.int64)

# The 3x3 ring around a pixel, bit t of a code set when ring cell t is in: neighbours that touch each other
# are in one component already, so a pixel joins one representative of each group ("arc") of touching ones.
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _arc_table(diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """(256, 4) ring cells representing each group, and (256,) how many: 8-connected groups of the set cells
    (``diagonal``), or 4-connected groups of the set cells among them holding one of the pixel's 4-neighbours."""
    reps = np.zeros((256, 4), np.int64)
    counts = np.zeros(256, np.int64)
    for code in range(256):
        cells = [t for t in range(8) if code >> t & 1]
        group = {t: t for t in cells}

        def root(t):
            while group[t] != t:
                t = group[t]
            return t

        for a in cells:
            for b in cells:
                dy, dx = abs(_RING[a][0] - _RING[b][0]), abs(_RING[a][1] - _RING[b][1])
                if a < b and (max(dy, dx) == 1 if diagonal else dy + dx == 1):
                    group[root(b)] = root(a)
        seen = []
        for t in cells:
            if not diagonal and 0 not in _RING[t]:
                continue  # a corner: not a 4-neighbour of the pixel
            if root(t) not in seen:
                seen.append(root(t))
                reps[code, len(seen) - 1] = t
        counts[code] = len(seen)
    return reps, counts


_DY = np.array([dy for dy, _ in _RING], np.int64)
_DX = np.array([dx for _, dx in _RING], np.int64)
_ARCS8, _N_ARCS8 = _arc_table(True)
_ARCS4, _N_ARCS4 = _arc_table(False)


@njit(cache=True)
def _row_of(p, row_scale):
    """``p // w`` for a pixel index p >= 0, ``row_scale`` = 1 / w: (p + 0.5) / w lies 0.5 / w inside its row's
    interval, far beyond the float64 product's error for any map that fits in memory, and a float product
    costs a few cycles where a 64-bit division costs tens."""
    return np.int64((p + 0.5) * row_scale)


@njit(cache=True)
def _grow_box(st, r, x, y):
    """Root ``r``'s box (``st[r, :4]``: x0 y0 x1 y1) takes in pixel (x, y)."""
    st[r, 0], st[r, 1] = min(st[r, 0], x), min(st[r, 1], y)
    st[r, 2], st[r, 3] = max(st[r, 2], x), max(st[r, 3], y)


@njit(cache=True)
def _union(parent, st, s, r, size):
    """Join roots ``s`` and ``r`` by size (``st[:, size]``): the smaller goes under the larger, whose box
    (``st[:, :4]``) and size take it in; returns (kept root, joined root)."""
    keep, gone = (s, r) if st[s, size] >= st[r, size] else (r, s)
    parent[gone] = keep
    st[keep, size] += st[gone, size]
    st[keep, 0], st[keep, 1] = min(st[keep, 0], st[gone, 0]), min(st[keep, 1], st[gone, 1])
    st[keep, 2], st[keep, 3] = max(st[keep, 2], st[gone, 2]), max(st[keep, 3], st[gone, 3])
    return keep, gone


@njit(cache=True)
def _room(out_boxes, out_level, k_out, more):
    """The output arrays, grown (doubled) when ``more`` rows do not fit after ``k_out``."""
    if k_out + more <= out_boxes.shape[0]:
        return out_boxes, out_level
    cap = max(2 * out_boxes.shape[0], k_out + more)
    boxes, level = np.empty((cap, 4), np.int64), np.empty(cap, np.int64)
    boxes[:k_out] = out_boxes[:k_out]
    level[:k_out] = out_level[:k_out]
    return boxes, level


@njit(cache=True)
def foreground_tree(u8, order, start, largest, tie_order):
    """Outer contours' boxes per level (all of them, or the largest's): (boxes K x 4 inclusive x0 y0 x1 y1,
    their level, need_search), ``need_search[i]`` set where the largest rule could not be certified.

    Equal largest areas: OpenCV lists the outer contours that lie in no hole by their first pixel in raster
    order, last first (``tie_order`` 1) or first first (-1); such are all the tied ones (a component in a
    hole has a smaller area than the one around it). ``tie_order`` 0: ties are searched."""
    h, w = u8.shape
    n = h * w
    n_levels = start.shape[0] - 1
    pw = w + 2
    added = np.zeros((h + 2) * pw, np.uint8)  # padded: neighbours and windows need no border test
    parent = np.empty(n, np.int32)
    st = np.empty((n, 8), np.int32)  # per root, one cache line: x0 y0 x1 y1 own2 euler4 size first-pixel
    live = np.empty(n, np.int32)
    where = np.empty(n, np.int32)
    n_live = 0
    k_out = 0
    out_boxes, out_level = np.empty((4 * n_levels + 64, 4), np.int64), np.empty(4 * n_levels + 64, np.int64)
    need_search = np.zeros(n_levels, np.bool_)
    row_scale = 1.0 / w  # y = p // w without an integer division (exact: see _row_of)
    for lev in range(n_levels):
        for k in range(start[lev], start[lev + 1]):
            p = order[k]
            y = _row_of(p, row_scale)
            x = p - y * w
            i = (y + 1) * pw + x + 1
            nw, nn, ne = np.int64(added[i - pw - 1]), np.int64(added[i - pw]), np.int64(added[i - pw + 1])
            ww, ee = np.int64(added[i - 1]), np.int64(added[i + 1])
            sw, ss, se = np.int64(added[i + pw - 1]), np.int64(added[i + pw]), np.int64(added[i + pw + 1])
            added[i] = 1
            # the four windows holding p (p bottom-right, bottom-left, top-right, top-left)
            c1, c2 = nw * 4 + nn * 2 + ww, ne * 4 + nn * 2 + ee
            c3, c4 = sw * 4 + ww * 2 + ss, se * 4 + ee * 2 + ss
            d_own = _AREA_STEP[c1] + _AREA_STEP[c2] + _AREA_STEP[c3] + _AREA_STEP[c4]
            d_euler = _EULER_STEP[c1] + _EULER_STEP[c2] + _EULER_STEP[c3] + _EULER_STEP[c4]
            code = nw | nn << 1 | ne << 2 | ww << 3 | ee << 4 | sw << 5 | ss << 6 | se << 7
            arcs = _N_ARCS8[code]
            if arcs == 0:  # a new component
                parent[p] = p
                st[p, 0], st[p, 1], st[p, 2], st[p, 3] = x, y, x, y
                st[p, 4], st[p, 5], st[p, 6], st[p, 7] = d_own, d_euler, 1, p
                live[n_live] = p
                where[p] = n_live
                n_live += 1
                continue
            t = _ARCS8[code, 0]
            r = find(parent, p + _DY[t] * w + _DX[t])
            parent[p] = r  # p joins its first group's component, then the others join it
            _grow_box(st, r, x, y)
            st[r, 4] += d_own
            st[r, 5] += d_euler
            st[r, 6] += 1
            st[r, 7] = min(st[r, 7], p)
            for a in range(1, arcs):
                t = _ARCS8[code, a]
                s = find(parent, p + _DY[t] * w + _DX[t])
                if s == r:
                    continue
                keep, gone = _union(parent, st, s, r, 6)
                st[keep, 4] += st[gone, 4]
                st[keep, 5] += st[gone, 5]
                st[keep, 7] = min(st[keep, 7], st[gone, 7])
                j = where[gone]
                n_live -= 1
                last = live[n_live]
                live[j] = last
                where[last] = j
                r = keep
        if largest:
            best, best_own = -1, -1
            for j in range(n_live):
                c = live[j]
                if st[c, 4] > best_own:
                    best, best_own = c, st[c, 4]
            certain = True
            for j in range(n_live):
                c = live[j]
                if c == best:
                    continue
                if st[c, 5] != 4:  # a rival with holes, which add to its area: bounded by its box, and by its
                    # own area plus 8 per pixel of its box outside it (a hole pixel is in 4 windows, each adding
                    # at most a whole square, 2 in these units)
                    bw, bh = np.int64(st[c, 2] - st[c, 0]), np.int64(st[c, 3] - st[c, 1])
                    bound = min(2 * bw * bh, st[c, 4] + 8 * ((bw + 1) * (bh + 1) - st[c, 6]))
                    if bound >= best_own:
                        certain = False
                        break
                elif st[c, 4] == best_own:  # a tie: OpenCV's order settles it
                    if tie_order == 0 or st[best, 5] != 4:
                        certain = False
                        break
                    if (st[c, 7] > st[best, 7]) == (tie_order > 0):
                        best = c
            if not certain:
                need_search[lev] = True
                continue
            out_boxes, out_level = _room(out_boxes, out_level, k_out, 1)
            out_boxes[k_out, 0], out_boxes[k_out, 1] = st[best, 0], st[best, 1]
            out_boxes[k_out, 2], out_boxes[k_out, 3] = st[best, 2], st[best, 3]
            out_level[k_out] = lev
            k_out += 1
        else:
            out_boxes, out_level = _room(out_boxes, out_level, k_out, n_live)
            for j in range(n_live):
                c = live[j]
                out_boxes[k_out, 0], out_boxes[k_out, 1], out_boxes[k_out, 2], out_boxes[k_out, 3] = st[c, 0], st[c, 1], st[c, 2], st[c, 3]
                out_level[k_out] = lev
                k_out += 1
    return out_boxes[:k_out], out_level[:k_out], need_search


@njit(cache=True)
def _unlist(z, live, where, n_live):
    """Take ``z`` out of the list of live holes (if listed); returns the new length."""
    j = where[z]
    if j < 0:
        return n_live
    n_live -= 1
    last = live[n_live]
    live[j] = last
    where[last] = j
    where[z] = -1
    return n_live


@njit(cache=True)
def hole_boxes(u8, order, start, may_hole):
    """Hole borders' boxes per level: 4-connected background components not touching the image border,
    each grown by one pixel: (boxes K x 4, their level).

    ``may_hole`` (flat, 0/1): 0 where a straight row or column path reaches the border through values
    <= the pixel's own, so its background is outside at every level (``_extrema.column_escape``); only the others
    join the union-find, the rest are marked outside. ``order`` / ``start``: ``level_order`` of all pixels,
    or ``subset_order`` of those that may lie in a hole and their 4-neighbours (the others cannot touch a
    hole), which is all that the holes need."""
    h, w = u8.shape
    n = h * w
    n_levels = start.shape[0] - 1
    pw = w + 2
    added = np.zeros((h + 2) * pw, np.uint8)  # padded, as in foreground_tree
    parent = np.empty(n, np.int32)
    st = np.empty((n, 8), np.int32)  # per root: x0 y0 x1 y1 size, outside (touches the border)
    live = np.empty(n, np.int32)  # the holes
    where = np.empty(n, np.int32)
    n_live = 0
    k_out = 0
    out_boxes, out_level = np.empty((n_levels + 64, 4), np.int64), np.empty(n_levels + 64, np.int64)
    row_scale = 1.0 / w
    # background at level i: the pixels below values[i]; levels are visited from the lowest up, the pixels
    # of the bands below level i (and below every level) joining before level i is read
    k = order.shape[0]
    for lev in range(n_levels - 1, -1, -1):
        lo = start[lev + 1]
        for kk in range(lo, k):
            p = order[kk]
            y = _row_of(p, row_scale)
            x = p - y * w
            i = (y + 1) * pw + x + 1
            if may_hole[p] == 0:  # outside whenever in the background: touching holes reach the border
                added[i] = 2
                for t in (1, 3, 4, 6):  # the 4-neighbours already in the background, in the union-find
                    if added[i + _DY[t] * pw + _DX[t]] == 1:
                        r = find(parent, p + _DY[t] * w + _DX[t])
                        if st[r, 5] == 0:
                            st[r, 5] = 1
                            n_live = _unlist(r, live, where, n_live)
                continue
            out_next = False  # a 4-neighbour marked outside
            for t in (1, 3, 4, 6):
                out_next |= added[i + _DY[t] * pw + _DX[t]] == 2
            code = (np.int64(added[i - pw - 1] == 1) | np.int64(added[i - pw] == 1) << 1
                    | np.int64(added[i - pw + 1] == 1) << 2 | np.int64(added[i - 1] == 1) << 3
                    | np.int64(added[i + 1] == 1) << 4 | np.int64(added[i + pw - 1] == 1) << 5
                    | np.int64(added[i + pw] == 1) << 6 | np.int64(added[i + pw + 1] == 1) << 7)
            added[i] = 1
            border = 1 if (out_next or y == 0 or y == h - 1 or x == 0 or x == w - 1) else 0
            arcs = _N_ARCS4[code]
            if arcs == 0:  # a new component: a hole unless on the border
                parent[p] = p
                st[p, 0], st[p, 1], st[p, 2], st[p, 3], st[p, 4], st[p, 5] = x, y, x, y, 1, border
                where[p] = -1
                if border == 0:
                    live[n_live] = p
                    where[p] = n_live
                    n_live += 1
                continue
            t = _ARCS4[code, 0]
            r = find(parent, p + _DY[t] * w + _DX[t])
            parent[p] = r
            _grow_box(st, r, x, y)
            st[r, 4] += 1
            if border == 1 and st[r, 5] == 0:
                st[r, 5] = 1
                n_live = _unlist(r, live, where, n_live)
            for a in range(1, arcs):
                t = _ARCS4[code, a]
                s = find(parent, p + _DY[t] * w + _DX[t])
                if s == r:
                    continue
                keep, gone = _union(parent, st, s, r, 4)
                n_live = _unlist(gone, live, where, n_live)
                if st[gone, 5] == 1 and st[keep, 5] == 0:
                    st[keep, 5] = 1
                    n_live = _unlist(keep, live, where, n_live)
                r = keep
        k = lo
        out_boxes, out_level = _room(out_boxes, out_level, k_out, n_live)
        for j in range(n_live):
            c = live[j]
            out_boxes[k_out, 0], out_boxes[k_out, 1] = st[c, 0] - 1, st[c, 1] - 1
            out_boxes[k_out, 2], out_boxes[k_out, 3] = st[c, 2] + 1, st[c, 3] + 1
            out_level[k_out] = lev
            k_out += 1
    return out_boxes[:k_out], out_level[:k_out]
