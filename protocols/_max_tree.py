"""The compiled steps of the box search; ``level_boxes`` explains the algorithm and calls them.

Maps are padded by one pixel all round (row length ``W = w + 2``) and flattened, so a pixel ``p = (y + 1) *
W + x + 1`` has eight neighbours ``p + offsets[j]`` (bit j of its *mask*); the pad never comes in.

``sweep`` adds pixels in a given order and joins each to the neighbours already in. Which neighbours those
are does not depend on the sweep's state, only on the order, so ``by_value`` computes them for all pixels
in one raster pass. A pixel's *label* is the component it joined when it came in; components live in a small
union-find of their own (``parent``, one entry per component, not per pixel), whose roots hold each
component's box. Labels go stale when components merge; ``_find`` brings them up to date.

Reports. The sweep counts the levels the caller asks for as it passes them (reports 0, 1, ...). A
component's box is valid from the report after its last change (``since``) until it changes again: when
it changes or is merged away, that stretch of reports [since, now - 1] goes out once, as a row (a, b, x0,
y0, x1, y1) or, given ground truth, as its best IoU raised over the stretch (``_range_max``). So a
component costs one IoU per stretch, not one per report.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_INLINE = dict(_JIT, inline="always")

# the eight neighbours (dy, dx): bit j of a mask; bits 0-3 come before the pixel in raster order
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _groups_table(eight: bool) -> tuple[np.ndarray, np.ndarray]:
    """For every mask of the neighbours already in: one neighbour per group of them already connected
    through each other (so the pixel needs one ``_find`` a group, not one a neighbour), and the group count.
    Neighbours next to each other on the ring are connected (8-connectivity: any two one step apart;
    4-connectivity: side by side, so a corner in links its two sides). Under 4-connectivity only the four
    side neighbours join the pixel itself."""
    reps = np.zeros((256, 4), np.uint8)
    count = np.zeros(256, np.int8)
    for mask in range(256):
        inn = [j for j in range(8) if mask >> j & 1]
        group = {j: j for j in inn}
        for a in inn:
            for b in inn:
                dy, dx = abs(_NEIGHBOURS[a][0] - _NEIGHBOURS[b][0]), abs(_NEIGHBOURS[a][1] - _NEIGHBOURS[b][1])
                if (max(dy, dx) == 1) if eight else (dy + dx == 1):
                    old, new = group[a], group[b]
                    group = {j: new if g == old else g for j, g in group.items()}
        seen = []
        for j in inn:
            if (eight or 0 in _NEIGHBOURS[j]) and group[j] not in seen:
                seen.append(group[j])
                reps[mask, len(seen) - 1] = j
        count[mask] = len(seen)
    return reps, count


def _window_gain() -> np.ndarray:
    """Twice-area gain of a pixel coming in, for every mask of the neighbours already in: each of its four
    2x2 windows that now holds three or four pixels (it held two or three) adds 1 (see ``level_boxes``)."""
    n = np.array([[mask >> j & 1 for j in range(8)] for mask in range(256)])
    windows = ((0, 1, 3), (1, 2, 4), (3, 5, 6), (4, 6, 7))  # the other three pixels of each window
    return sum((n[:, list(w)].sum(1) >= 2).astype(np.int8) for w in windows).astype(np.int8)


GROUPS8 = _groups_table(True)
GROUPS4 = _groups_table(False)
GAIN = _window_gain()


@njit(**_JIT)
def by_value(padded, h, w):
    """The foreground sweep's order, highest value first and raster order within a value: the pixels of
    value v are entries ``begin[255 - v]:begin[256 - v]`` of ``coords`` (y << 16 | x) and ``order_mask``
    (its mask of the neighbours that come in before it: higher, or equal and earlier in raster order), so
    the sweep reads both in sequence."""
    W = w + 2
    value = np.full((h + 2, W), -1, np.int16)  # the pad: never in
    value[1:-1, 1:-1] = padded.reshape(h + 2, W)[1:-1, 1:-1]
    counts = np.zeros((4, 256), np.int64)  # four interleaved counts: equal neighbours do not wait on one counter
    src = padded.reshape(h + 2, W)
    for y in range(1, h + 1):
        row = src[y]
        for x in range(1, w + 1):
            counts[x & 3, row[x]] += 1
    count = counts.sum(axis=0)
    begin = np.zeros(257, np.int64)
    for v in range(255, -1, -1):
        begin[256 - v] = begin[255 - v] + count[v]
    at = np.empty(256, np.uint32)  # where the next pixel of value v goes
    for v in range(256):
        at[v] = begin[255 - v]
    mask = np.zeros((h + 2, W), np.uint8)
    for y in range(1, h + 1):  # rows as views, so the compiler sees the indices stay in bounds (vectorised)
        up, mid, down, out = value[y - 1], value[y], value[y + 1], mask[y]
        for x in range(1, w + 1):
            v = mid[x]
            out[x] = ((up[x - 1] >= v) | ((up[x] >= v) << 1) | ((up[x + 1] >= v) << 2) | ((mid[x - 1] >= v) << 3)
                      | ((mid[x + 1] > v) << 4) | ((down[x - 1] > v) << 5) | ((down[x] > v) << 6) | ((down[x + 1] > v) << 7))
    coords = np.empty(h * w, np.uint32)
    order_mask = np.empty(h * w, np.uint8)
    for y in range(1, h + 1):
        row, out = value[y], mask[y]
        for x in range(1, w + 1):
            k = at[row[x]]
            at[row[x]] += np.uint32(1)
            coords[k] = (y - 1) << 16 | (x - 1)
            order_mask[k] = out[x]
    return coords, order_mask, begin


@njit(**_JIT)
def fill_holes(padded, h, w):
    """The map with every pixel raised to the value at which its background component (values below v,
    4-connected) first reaches the border: the least, over 4-connected paths from the pixel out of the map,
    of the path's highest value. A reconstruction by erosion from the border (L. Vincent's hybrid
    algorithm): a raster scan forward and one backward, then a queue for what the scans missed."""
    W = w + 2
    src = padded.reshape(h + 2, W)
    out = np.empty((h + 2, W), np.uint8)
    out[0] = 0  # the pad: the outside, reached at value 0
    out[-1] = 0
    out[:, 0] = 0
    out[:, -1] = 0
    for y in range(1, h + 1):
        up, row, s = out[y - 1], out[y], src[y]
        left = np.uint8(0)
        for x in range(1, w + 1):
            left = max(s[x], min(up[x], left))
            row[x] = left
    flat = out.reshape(-1)
    queue = np.empty(h * w + 1, np.uint32)  # a ring: a pixel is in it at most once
    queued = np.zeros(padded.size, np.bool_)
    head = tail = 0
    for y in range(h, 0, -1):
        down, row, s, s_down, mark = out[y + 1], out[y], src[y], src[y + 1], queued[y * W : (y + 1) * W]
        right = np.uint8(0)
        for x in range(w, 0, -1):
            v = max(s[x], min(row[x], down[x], right))
            row[x] = v
            # queue the pixel when a neighbour already scanned could come down to it (no branch: always write)
            push = ((down[x] > v) & (down[x] > s_down[x])) | ((right > v) & (right > s[x + 1]))
            queue[tail] = y * W + x
            tail += push
            mark[x] = push
            right = v
    W_ = np.uint32(W)
    while head != tail:  # indices unsigned: no negative-index wrap-around check on each access
        p = queue[head]
        head = head + 1 if head + 1 < queue.size else 0
        queued[p] = False
        for q in (p - W_, p - np.uint32(1), p + np.uint32(1), p + W_):
            if flat[q] > flat[p] and flat[q] != padded[q]:
                flat[q] = max(flat[p], padded[q])
                if not queued[q]:
                    queue[tail] = q
                    tail = tail + 1 if tail + 1 < queue.size else 0
                    queued[q] = True
    return flat


@njit(**_JIT)
def holes_order(padded, filled, last_of, h, w):
    """The hole sweep's order: the pixels that lie in a hole at some level (``filled > padded``), lowest
    value first, raster order within a value, as ``by_value`` gives them (coords, order_mask), their
    masks of the hole pixels that come in before them (4-connected sides, corners for linking only), and
    ``order_last``: the last report of their hole, ``last_of[filled]``; and ``below[v]``: how many of them
    have a value below v. One raster pass lists the hole pixels without a branch each (a noisy map's come
    in no pattern); only they are counted, and only rows holding one get masks."""
    W = w + 2
    value = np.full((h + 2, W), 256, np.int16)  # not a hole pixel: never in
    src, fill_ = padded.reshape(h + 2, W), filled.reshape(h + 2, W)
    listed = np.empty(h * w, np.uint32)  # the hole pixels' x, row by row
    row_end = np.zeros(h + 2, np.int64)  # row y's are listed[row_end[y - 1]:row_end[y]]
    n = 0
    for y in range(1, h + 1):
        s, f, row = src[y], fill_[y], value[y]
        for x in range(1, w + 1):
            row[x] = s[x] if f[x] > s[x] else 256
        for x in range(1, w + 1):
            listed[n] = x
            n += f[x] > s[x]
        row_end[y] = n
    counts = np.zeros((4, 258), np.int64)  # four interleaved counts: no wait on the same counter
    for y in range(1, h + 1):
        row = value[y]
        for i in range(row_end[y - 1], row_end[y]):
            counts[i & 3, row[listed[i]] + 1] += 1
    below = counts.sum(axis=0)
    for v in range(257):
        below[v + 1] += below[v]
    at = below[:257].copy()
    coords = np.empty(n, np.uint32)
    order_mask = np.empty(n, np.uint8)
    order_last = np.empty(n, np.int32)
    mask = np.empty(W, np.uint8)
    for y in range(1, h + 1):
        if row_end[y] == row_end[y - 1]:
            continue
        up, mid, down, f = value[y - 1], value[y], value[y + 1], fill_[y]
        for x in range(1, w + 1):  # vectorised, as in by_value
            v = mid[x]
            mask[x] = ((up[x - 1] <= v) | ((up[x] <= v) << 1) | ((up[x + 1] <= v) << 2) | ((mid[x - 1] <= v) << 3)
                       | ((mid[x + 1] < v) << 4) | ((down[x - 1] < v) << 5) | ((down[x] < v) << 6) | ((down[x + 1] < v) << 7))
        for i in range(row_end[y - 1], row_end[y]):
            x = listed[i]
            k = at[mid[x]]
            at[mid[x]] += 1
            coords[k] = (y - 1) << 16 | (x - 1)
            order_mask[k] = mask[x]
            order_last[k] = last_of[f[x]]
    return coords, order_mask, order_last, below[:257]


@njit(**_INLINE)
def _find(parent, c):
    """The root of component ``c``, halving the path on the way."""
    while parent[c] != c:
        parent[c] = parent[parent[c]]
        c = parent[c]
    return c


@njit(**_INLINE)
def _iou(x0, y0, x1, y1, gt, grow, h, w):
    """Best IoU of one inclusive box with the ground-truth rows, as ``box_scores.iou_inclusive`` computes it
    (``grow``: first turn the extent into wsolevaluation's box, (x, y, x + w, y + h) clipped to the map)."""
    if grow:
        x1 = min(x1 + 1, w - 1)
        y1 = min(y1 + 1, h - 1)
    bx0, by0, bx1, by1 = float(x0), float(y0), float(x1), float(y1)
    area_b = max(0.0, bx1 - bx0 + 1) * max(0.0, by1 - by0 + 1)
    best = 0.0
    for g in range(gt.shape[0]):
        iw = max(0.0, min(bx1, gt[g, 2]) - max(bx0, gt[g, 0]) + 1)
        ih = max(0.0, min(by1, gt[g, 3]) - max(by0, gt[g, 1]) + 1)
        inter = iw * ih
        union = area_b + max(0.0, gt[g, 2] - gt[g, 0] + 1) * max(0.0, gt[g, 3] - gt[g, 1] + 1) - inter
        iou = inter / union if union > 0 else 0.0
        best = max(best, iou)
    return best


@njit(**_INLINE)
def _range_max(table, a, b, value):
    """Raise reports a..b to at least ``value``: row k of ``table`` holds maxima over runs of 2**k reports,
    and two (overlapping) runs cover [a, b]; ``_spread`` pushes them down to single reports at the end."""
    k = 0
    while (2 << k) <= b - a + 1:
        k += 1
    table[k, a] = max(table[k, a], value)
    table[k, b - (1 << k) + 1] = max(table[k, b - (1 << k) + 1], value)


@njit(**_JIT)
def _spread(table):
    for k in range(table.shape[0] - 1, 0, -1):
        half = 1 << (k - 1)
        for i in range(table.shape[1] - (1 << k) + 1):
            table[k - 1, i] = max(table[k - 1, i], table[k, i])
            table[k - 1, i + half] = max(table[k - 1, i + half], table[k, i])
    return table[0]


@njit(**_INLINE)
def _emit(rows, n_rows, table, a, b, x0, y0, x1, y1, gt, grow, h, w):
    """One box valid for reports a..b: into ``table`` (ground truth given) or appended to ``rows``."""
    if gt.shape[0] > 0:
        _range_max(table, a, b, _iou(x0, y0, x1, y1, gt, grow, h, w))
        return n_rows
    rows[n_rows, 0] = a
    rows[n_rows, 1] = b
    rows[n_rows, 2] = x0
    rows[n_rows, 3] = y0
    rows[n_rows, 4] = x1
    rows[n_rows, 5] = y1
    return n_rows + 1


@njit(**_JIT)
def sweep(coords, order_mask, order_last, h, w, ends, holes, largest, gt, grow):
    """Add the pixels at ``coords[0], coords[1], ...`` (with ``order_mask``: the neighbours in before them)
    and make report i once the first ``ends[i]`` are in.

    Foreground (``holes`` False, 8-connected): report every component, each box once per stretch, or with
    ``largest`` only the component of largest twice-contour-area (window count, ``GAIN``; ties to the one
    whose first pixel in raster order comes last). Holes (``holes`` True, 4-connected, boxes grown by one
    pixel: the hole's border): every component is a hole, of the reports up to its pixels' ``order_last``.
    Returns (rows (K, 6): first report, last report, x0 y0 x1 y1 when ``gt`` is empty; the best IoU of each
    report otherwise).

    Pixel and component indices are unsigned (uint32; uint64 offsets wrap round for the negative ones): so
    numba skips its negative-index check on every access, which made this loop 1.6 times slower.
    """
    n = max(coords.size, 1)
    n_reports = ends.size
    reps, count = GROUPS4 if holes else GROUPS8
    Wi = w + 2
    offsets = np.array([-Wi - 1, -Wi, -Wi + 1, -1, 1, Wi - 1, Wi, Wi + 1], np.int64).astype(np.uint64)
    step = np.empty((256, 4), np.uint64)  # the offsets of each mask's group representatives
    for m in range(256):
        for i in range(4):
            step[m, i] = offsets[reps[m, i]]
    grown = 1 if holes else 0
    label = np.empty((h + 2) * (w + 2), np.uint32)
    parent = np.empty(n, np.uint32)
    box = np.empty((n, 8), np.int32)  # a component's box and ``since`` in one cache line
    x0, y0, x1, y1 = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
    since = box[:, 4]  # the first report of the component's current box
    until = np.empty(n if holes else 1, np.int32)  # holes: its last report
    area = np.zeros(n if largest else 1, np.int64)  # largest: twice the contour area
    first = np.empty(n if largest else 1, np.uint32)  # largest: the first pixel in raster order
    alive = np.empty(n if largest else 1, np.uint32)  # largest: the roots, pruned at each report
    n_alive = 0
    table = np.zeros((9, max(n_reports, 1)), np.float64)
    # a pixel ends at most four stretches (its own component's and three merged ones), a component one more
    rows = np.empty((0 if gt.shape[0] else (n_reports if largest else 5 * n), 6), np.int32)
    n_rows = 0
    n_comp = np.uint32(0)
    k = 0
    for now in range(n_reports):
        while k < ends[now]:
            y = np.int64(coords[k] >> 16)
            x = np.int64(coords[k] & 0xFFFF)
            p = np.uint32((y + 1) * Wi + x + 1)
            m = order_mask[k]
            k += 1
            groups = count[m]
            if groups == 0:  # a new component
                c = n_comp
                n_comp += np.uint32(1)
                parent[c] = c
                x0[c] = x
                y0[c] = y
                x1[c] = x
                y1[c] = y
                since[c] = now
                if holes:
                    until[c] = order_last[k - 1]
                if largest:
                    first[c] = p
                    alive[n_alive] = c
                    n_alive += 1
            else:
                c = _find(parent, label[p + step[m, 0]])
                if largest:
                    first[c] = min(first[c], p)
                elif since[c] < now:
                    n_rows = _emit(rows, n_rows, table, since[c], now - 1, x0[c] - grown, y0[c] - grown,
                                   x1[c] + grown, y1[c] + grown, gt, grow, h, w)
                    since[c] = now
                for i in range(1, groups):
                    r = _find(parent, label[p + step[m, i]])
                    if r == c:
                        continue
                    if largest:
                        area[c] += area[r]
                        first[c] = min(first[c], first[r])
                    elif since[r] < now:  # r's box ends its stretch
                        n_rows = _emit(rows, n_rows, table, since[r], now - 1, x0[r] - grown, y0[r] - grown,
                                       x1[r] + grown, y1[r] + grown, gt, grow, h, w)
                    parent[r] = c
                    x0[c] = min(x0[c], x0[r])
                    y0[c] = min(y0[c], y0[r])
                    x1[c] = max(x1[c], x1[r])
                    y1[c] = max(y1[c], y1[r])
                x0[c] = min(x0[c], x)
                y0[c] = min(y0[c], y)
                x1[c] = max(x1[c], x)
                y1[c] = max(y1[c], y)
            label[p] = c
            if largest:
                area[c] += GAIN[m]
        if largest:  # this report's winner; drop the roots merged away since the last one
            kept = 0
            win = alive[0]
            for i in range(n_alive):
                c = alive[i]
                if parent[c] != c:
                    continue
                alive[kept] = c
                kept += 1
                if kept == 1 or area[c] > area[win] or (area[c] == area[win] and first[c] > first[win]):
                    win = c
            n_alive = kept
            if kept:
                n_rows = _emit(rows, n_rows, table, now, now, x0[win], y0[win], x1[win], y1[win], gt, grow, h, w)
    if not largest:  # the boxes still standing end their stretch at the last report (a hole's: at its own)
        for c in range(n_comp):
            end = min(n_reports - 1, until[c]) if holes else n_reports - 1
            if parent[c] == c and since[c] <= end:
                n_rows = _emit(rows, n_rows, table, since[c], end, x0[c] - grown, y0[c] - grown,
                               x1[c] + grown, y1[c] + grown, gt, grow, h, w)
    return rows[:n_rows], _spread(table)


@njit(**_JIT)
def levels_of(top, thresholds):
    """(levels, level_of): the distinct levels v = int(t * top) + 1 (at least 0; the foreground is the
    pixels >= v) that hold foreground (v <= top), highest first, and each threshold's index into them,
    where ``len(levels)`` means "no foreground"."""
    v = np.empty(thresholds.size, np.int64)
    has = np.zeros(257, np.bool_)
    for j in range(thresholds.size):
        v[j] = min(max(int(thresholds[j] * float(top)) + 1, 0), 256)  # the reference's int(t * max), + 1
        has[v[j]] = has[v[j]] or v[j] <= top
    levels = np.empty(257, np.int64)
    index = np.empty(257, np.int64)
    n = 0
    for level in range(256, -1, -1):
        if has[level]:
            levels[n] = level
            index[level] = n
            n += 1
    level_of = np.empty(thresholds.size, np.int64)
    for j in range(thresholds.size):
        level_of[j] = index[v[j]] if has[v[j]] else n
    return levels[:n].copy(), level_of


@njit(**_JIT)
def search(u8, thresholds, largest, gt, grow):
    """The whole box search of one map (see ``level_boxes``): (rows (K, 6): first level index, last level
    index, x0 y0 x1 y1, when ``gt`` is empty; the best IoU of every level, the last one "no foreground";
    each threshold's level index)."""
    h, w = u8.shape
    top = u8.max() if u8.size else 0
    levels, level_of = levels_of(top, thresholds)
    L = levels.size
    best = np.zeros(L + 1)
    if gt.shape[0]:  # "no foreground": the box NO_REGION, area 0 (or one pixel in wsolevaluation's form)
        best[L] = _iou(0, 0, -1, -1, gt, grow, h, w)
    if L == 0:
        return np.zeros((0, 6), np.int32), best, level_of
    padded = np.zeros((h + 2) * (w + 2), np.uint8)
    padded.reshape(h + 2, w + 2)[1:-1, 1:-1] = u8
    filled = fill_holes(padded, h, w)
    if largest:  # the foreground sweep of the filled map: every component an outer contour, holes filled in
        coords, order_mask, begin = by_value(filled, h, w)
        rows, got = sweep(coords, order_mask, _NO_LAST, h, w, begin[256 - levels], False, True, gt, grow)
        best[:L] = got[:L]
        return rows, best, level_of
    coords, order_mask, begin = by_value(padded, h, w)
    rows, got = sweep(coords, order_mask, _NO_LAST, h, w, begin[256 - levels], False, False, gt, grow)
    best[:L] = got[:L]
    # the holes of level v: the background components of values < v that reach no border, made of the
    # pixels with value < v <= filled; the hole sweep adds them from the lowest value up, so it makes the
    # reports of the levels >= 1 in ascending order, and a hole lives up to its pixels' filled value
    above0 = L - 1 if levels[L - 1] == 0 else L
    up = levels[:above0][::-1].copy()
    last_of = np.searchsorted(up, np.arange(256), side="right").astype(np.int32) - 1
    coords, order_mask, order_last, below = holes_order(padded, filled, last_of, h, w)
    hole_rows, hole_best = sweep(coords, order_mask, order_last, h, w, below[up], True, False, gt, grow)
    for j in range(above0):  # report j of the hole sweep is level above0 - 1 - j
        best[above0 - 1 - j] = max(best[above0 - 1 - j], hole_best[j])
    first = above0 - 1 - hole_rows[:, 1]
    hole_rows[:, 1] = above0 - 1 - hole_rows[:, 0]
    hole_rows[:, 0] = first
    return np.concatenate((rows, hole_rows)), best, level_of


_NO_LAST = np.zeros(1, np.int32)
