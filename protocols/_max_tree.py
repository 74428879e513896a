"""The compiled sweep of the box search; ``level_boxes`` explains the algorithm and calls it.

Pixels are flat indices ``p = (y + 1) * W + x + 1`` of the map padded by one pixel all round (row length
``W = w + 2``), so every pixel has eight neighbours; the pad is never added. A pixel's *label* is the
component it joined when it came in (-1: not in yet); components live in a small union-find of their own
(``parent``), whose roots hold each component's box. Labels go stale when components merge; one ``find``
on the component forest brings them up to date.

Reports. The sweep counts the levels the caller asks for as it passes them ("reports" 0, 1, ...). A
component's box is valid from the report after its last change (``since``) until it changes again: when it
changes or is merged away, that stretch of reports [since, now - 1] goes out once, as a row (a, b, x0, y0,
x1, y1) or, given ground truth, as its best IoU spread over the stretch (``_range_max``). So a component
costs one IoU per stretch, not one per report.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_INLINE = dict(_JIT, inline="always")

# the eight neighbours (dy, dx), bit j of a pixel's neighbour mask
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _groups_table(eight: bool) -> tuple[np.ndarray, np.ndarray]:
    """For every mask of the neighbours already in: one neighbour per group of them already connected
    through each other (so the pixel needs one ``find`` a group, not one a neighbour), and the group count.
    Neighbours next to each other on the ring are connected (8-connectivity: any two at most one step
    apart; 4-connectivity: side by side, so a corner in links its two sides). With 4-connectivity only the
    four side neighbours join the pixel itself."""
    reps = np.zeros((256, 4), np.int8)
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
    """(order, begin): the pixels of value v are ``order[begin[255 - v]:begin[256 - v]]`` (highest value
    first; raster order within a value)."""
    W = w + 2
    begin = np.zeros(257, np.int64)
    for y in range(1, h + 1):
        for x in range(1, w + 1):
            begin[256 - padded[y * W + x]] += 1
    for k in range(256):
        begin[k + 1] += begin[k]
    fill = begin[:256].copy()
    order = np.empty(h * w, np.int32)
    for y in range(1, h + 1):
        for x in range(1, w + 1):
            p = y * W + x
            k = 255 - padded[p]
            order[fill[k]] = p
            fill[k] += 1
    return order, begin


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
        return rows, n_rows
    if n_rows == rows.shape[0]:
        bigger = np.empty((2 * rows.shape[0], 6), np.int32)
        bigger[:n_rows] = rows[:n_rows]
        rows = bigger
    rows[n_rows, 0] = a
    rows[n_rows, 1] = b
    rows[n_rows, 2] = x0
    rows[n_rows, 3] = y0
    rows[n_rows, 4] = x1
    rows[n_rows, 5] = y1
    return rows, n_rows + 1


@njit(**_JIT)
def sweep(padded, h, w, order, begin, report, upward, largest, fill, gt, grow):
    """Add the pixels one grey value at a time and report the components after the values ``report`` marks.

    ``upward`` False: the foreground sweep, values 255 down, 8-connected; after value v, the components are
    those of ``padded >= v``. ``largest``: report only the component of largest twice-contour-area (window
    count; ties to the one whose first pixel comes last), else every component, each box once per stretch.
    ``upward`` True: the background sweep, values 0 up, 4-connected; after value v, the components are those
    of ``padded <= v``, and those that reach no border pixel (holes) are reported, their boxes grown by one.

    ``report[v]``: after value v comes report ``report[v]`` (reports numbered in sweep order), or none (-1).
    Returns (rows (K, 6): first report, last report, x0 y0 x1 y1; best IoU per report; filled). ``fill``
    (background sweep, to the last value): ``filled`` is the padded map with every pixel raised to the value
    at which its background component first reaches the border, i.e. with every hole filled at every level.
    """
    W = w + 2
    n = h * w
    reps, count = GROUPS4 if upward else GROUPS8
    offsets = np.array([-W - 1, -W, -W + 1, -1, 1, W - 1, W, W + 1])
    label = np.full(padded.size, -1, np.int32)
    parent = np.empty(n, np.int32)
    x0 = np.empty(n, np.int32)
    y0 = np.empty(n, np.int32)
    x1 = np.empty(n, np.int32)
    y1 = np.empty(n, np.int32)
    since = np.empty(n, np.int32)  # the first report of the component's current box
    area = np.zeros(n, np.int64)  # largest rule: twice the contour area
    first = np.empty(n, np.int32)  # largest rule: the first pixel in raster order
    outside = np.zeros(n, np.bool_)  # background: reaches the border
    opened = np.full(n, 255, np.int32)  # background: the value at which the component reached the border
    merged = np.empty((n, 2), np.int32)  # background: hole merged into hole, in order (for ``opened``)
    n_merged = 0
    alive = np.empty(n, np.int32)  # largest rule: the roots, pruned at each report
    n_alive = 0
    n_reports = 0
    for v in range(256):
        if report[v] >= 0:
            n_reports = max(n_reports, report[v] + 1)
    table = np.zeros((9, max(n_reports, 1)), np.float64)
    rows = np.empty((64, 6), np.int32)
    n_rows = 0
    n_comp = 0
    now = 0  # reports made so far
    for step in range(256):
        if now == n_reports and not fill:
            break
        v = step if upward else 255 - step
        for k in range(begin[255 - v], begin[256 - v]):
            p = order[k]
            y = p // W - 1
            x = p - (y + 1) * W - 1
            mask = 0
            for j in range(8):
                mask |= int(label[p + offsets[j]] >= 0) << j
            groups = count[mask]
            if groups == 0:  # a new component
                c = n_comp
                n_comp += 1
                parent[c] = c
                x0[c] = x
                y0[c] = y
                x1[c] = x
                y1[c] = y
                since[c] = now
                first[c] = p
                if largest:
                    alive[n_alive] = c
                    n_alive += 1
            else:
                c = _find(parent, label[p + offsets[reps[mask, 0]]])
                for i in range(1, groups):
                    r = _find(parent, label[p + offsets[reps[mask, i]]])
                    if r == c:
                        continue
                    for m in (c, r):  # both boxes end their stretch (a background one only as a hole)
                        if since[m] < now and not largest and not outside[m]:
                            rows, n_rows = _emit(rows, n_rows, table, since[m], now - 1, x0[m] - upward, y0[m] - upward,
                                                 x1[m] + upward, y1[m] + upward, gt, grow, h, w)
                        since[m] = now
                    if upward:
                        if outside[c] != outside[r]:  # a hole opens
                            opened[r if outside[c] else c] = v
                        elif not outside[c]:
                            merged[n_merged, 0] = r
                            merged[n_merged, 1] = c
                            n_merged += 1
                        outside[c] = outside[c] or outside[r]
                    parent[r] = c
                    x0[c] = min(x0[c], x0[r])
                    y0[c] = min(y0[c], y0[r])
                    x1[c] = max(x1[c], x1[r])
                    y1[c] = max(y1[c], y1[r])
                    area[c] += area[r]
                    first[c] = min(first[c], first[r])
                if since[c] < now and not largest and not outside[c]:
                    rows, n_rows = _emit(rows, n_rows, table, since[c], now - 1, x0[c] - upward, y0[c] - upward,
                                         x1[c] + upward, y1[c] + upward, gt, grow, h, w)
                since[c] = now
                x0[c] = min(x0[c], x)
                y0[c] = min(y0[c], y)
                x1[c] = max(x1[c], x)
                y1[c] = max(y1[c], y)
                first[c] = min(first[c], p)
            label[p] = c
            if largest:
                area[c] += GAIN[mask]
            if upward and not outside[c] and (x == 0 or y == 0 or x == w - 1 or y == h - 1):
                outside[c] = True  # a hole reaches the border (its stretch went out above)
                opened[c] = v
        if report[v] < 0:
            continue
        if largest:  # the winner of this report; drop the roots merged away since the last one
            kept = 0
            win = -1
            for i in range(n_alive):
                c = alive[i]
                if parent[c] != c:
                    continue
                alive[kept] = c
                kept += 1
                if win < 0 or area[c] > area[win] or (area[c] == area[win] and first[c] > first[win]):
                    win = c
            n_alive = kept
            rows, n_rows = _emit(rows, n_rows, table, now, now, x0[win], y0[win], x1[win], y1[win], gt, grow, h, w)
        now += 1
    if not largest:  # the boxes still standing end their stretch at the last report
        for c in range(n_comp):
            if parent[c] == c and not outside[c] and since[c] < now:
                rows, n_rows = _emit(rows, n_rows, table, since[c], now - 1, x0[c] - upward, y0[c] - upward,
                                     x1[c] + upward, y1[c] + upward, gt, grow, h, w)
    filled = padded.copy()
    if fill:
        for i in range(n_merged - 1, -1, -1):  # a hole merged into a hole opens with it
            opened[merged[i, 0]] = opened[merged[i, 1]]
        for y in range(1, h + 1):
            for x in range(1, w + 1):
                p = y * W + x
                if label[p] >= 0:
                    filled[p] = max(padded[p], opened[label[p]])
    return rows[:n_rows], _spread(table), filled
