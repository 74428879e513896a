"""The two compiled passes of the box search; ``level_boxes`` explains the algorithm and calls them.

Pixels are flat indices ``p = y * w + x`` of a C-ordered uint8 map. Both passes add the pixels one grey
level at a time (a counting sort gives each level's pixels) and keep their components in a union-find whose
roots hold each component's box. A level the caller asks for is "reported" once its pixels are in: every
box goes either into a growing (K, 4) array (``gt`` empty) or straight into the level's best IoU with the
ground truth (``gt`` given), so a caller that needs only the IoU never stores the boxes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_INLINE = dict(_JIT, inline="always")  # small helpers: a call passing arrays costs more than their work


@njit(**_JIT)
def by_value(flat):
    """(order, start): the pixels of value v are ``order[start[v]:start[v + 1]]``, in raster order."""
    start = np.zeros(257, np.int64)
    for p in range(flat.size):
        start[flat[p] + 1] += 1
    for v in range(256):
        start[v + 1] += start[v]
    fill = start[:256].copy()
    order = np.empty(flat.size, np.int32)
    for p in range(flat.size):
        v = flat[p]
        order[fill[v]] = p
        fill[v] += 1
    return order, start


@njit(**_INLINE)
def find(parent, p):
    """The root of ``p``'s component, compressing the path on the way."""
    root = p
    while parent[root] != root:
        root = parent[root]
    while parent[p] != root:
        nxt = parent[p]
        parent[p] = root
        p = nxt
    return root


@njit(**_INLINE)
def _join(parent, r, q, box):
    """Merge root ``r`` (the new pixel's component) into the component of pixel ``q``; returns the root.
    ``box`` rows: x0, y0, x1, y1, first pixel, twice the area (largest rule)."""
    s = find(parent, q)
    if s == r:
        return r
    parent[r] = s
    box[s, 0] = min(box[s, 0], box[r, 0])
    box[s, 1] = min(box[s, 1], box[r, 1])
    box[s, 2] = max(box[s, 2], box[r, 2])
    box[s, 3] = max(box[s, 3], box[r, 3])
    box[s, 4] = min(box[s, 4], box[r, 4])
    box[s, 5] += box[r, 5]
    return s


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
def _report(out, n_out, best, level, x0, y0, x1, y1, gt, grow, h, w):
    """One box of ``level``: into the level's best IoU (``gt`` given) or appended to ``out``; returns
    (out, n_out), ``out`` doubled when full."""
    if gt.shape[0] > 0:
        best[level] = max(best[level], _iou(x0, y0, x1, y1, gt, grow, h, w))
        return out, n_out
    if n_out == out.shape[0]:
        bigger = np.empty((2 * out.shape[0] + 16, 5), np.int64)
        bigger[:n_out] = out[:n_out]
        out = bigger
    out[n_out, 0] = level
    out[n_out, 1] = x0
    out[n_out, 2] = y0
    out[n_out, 3] = x1
    out[n_out, 4] = y1
    return out, n_out + 1


@njit(**_JIT)
def foreground_pass(flat, h, w, levels, largest, gt, grow, best):
    """The 8-connected components of ``flat >= v`` for every v in ``levels`` (descending, each >= 0 and at
    most the map's max), adding pixels from 255 down.

    All regions: every component's box. Largest (``flat`` is then the filled map, so each component is an
    outer contour with its holes filled in): the component of largest twice-contour-area ``2 * n4 + n3``
    (n4 / n3: its 2x2 windows with four / three pixels in), ties to the one whose first pixel in raster
    order comes last (the contour OpenCV lists first). Returns (rows (K, 5): level index, x0 y0 x1 y1).
    """
    # pixels are indices into the map padded by one pixel all round (row length W), so that every pixel has
    # eight neighbours; the pad is never added
    W = w + 2
    order, start = by_value(flat)
    parent = np.full((h + 2) * W, -1, np.int32)
    box = np.empty(((h + 2) * W, 8), np.int32)  # one cache line a component: x0 y0 x1 y1 first area2
    roots = np.empty(h * w, np.int32)
    n_roots = 0
    out = np.empty((64, 5), np.int64)
    n_out = 0
    li = 0
    for v in range(255, -1, -1):
        if li == levels.size:
            break
        for k in range(start[v], start[v + 1]):
            q = order[k]
            y = q // w
            x = q - y * w
            p = q + W + 1 + 2 * y
            parent[p] = p
            box[p, 0] = x
            box[p, 1] = y
            box[p, 2] = x
            box[p, 3] = y
            box[p, 4] = q
            box[p, 5] = 0
            roots[n_roots] = p
            n_roots += 1
            # the eight neighbours already in (1) or not (0), from up-left to down-right in raster order;
            # a diagonal one next to a side one already in is already in its component
            n0 = 1 if parent[p - W - 1] >= 0 else 0
            n1 = 1 if parent[p - W] >= 0 else 0
            n2 = 1 if parent[p - W + 1] >= 0 else 0
            n3 = 1 if parent[p - 1] >= 0 else 0
            n4 = 1 if parent[p + 1] >= 0 else 0
            n5 = 1 if parent[p + W - 1] >= 0 else 0
            n6 = 1 if parent[p + W] >= 0 else 0
            n7 = 1 if parent[p + W + 1] >= 0 else 0
            r = p
            if n1:
                r = _join(parent, r, p - W, box)
            elif n0 and not n3:
                r = _join(parent, r, p - W - 1, box)
            if n3:
                r = _join(parent, r, p - 1, box)
            if n4:
                r = _join(parent, r, p + 1, box)
            elif n2 and not n1:
                r = _join(parent, r, p - W + 1, box)
            if n6:
                r = _join(parent, r, p + W, box)
            else:
                if n5 and not n3:
                    r = _join(parent, r, p + W - 1, box)
                if n7 and not n4:
                    r = _join(parent, r, p + W + 1, box)
            if largest:  # a window gains 1 when its third pixel comes in and 1 more with its fourth
                box[r, 5] += (n0 + n1 + n3 >= 2) + (n1 + n2 + n4 >= 2) + (n3 + n5 + n6 >= 2) + (n4 + n6 + n7 >= 2)
        if v != levels[li]:
            continue
        kept = 0  # drop the roots that were merged away since the last report
        for i in range(n_roots):
            r = roots[i]
            if parent[r] == r:
                roots[kept] = r
                kept += 1
        n_roots = kept
        if largest:
            win = roots[0]
            for i in range(1, n_roots):
                r = roots[i]
                if box[r, 5] > box[win, 5] or (box[r, 5] == box[win, 5] and box[r, 4] > box[win, 4]):
                    win = r
            out, n_out = _report(out, n_out, best, li, box[win, 0], box[win, 1], box[win, 2], box[win, 3], gt, grow, h, w)
        else:
            for i in range(n_roots):
                r = roots[i]
                out, n_out = _report(out, n_out, best, li, box[r, 0], box[r, 1], box[r, 2], box[r, 3], gt, grow, h, w)
        li += 1
    return out[:n_out]


@njit(**_JIT)
def background_pass(flat, h, w, levels, holes, gt, grow, best):
    """The 4-connected components of the background ``flat < v``, adding pixels from 0 up; a component is
    a hole while it touches no border pixel.

    ``holes``: for every v in ``levels`` (ascending, each >= 0), every hole's contour box (the hole's extent
    grown by one pixel: its border pixels) goes out as rows (K, 5): level index, x0 y0 x1 y1. Always: the
    filled map, each pixel raised to the level at which its background component first reaches the border
    (the least highest value on a 4-connected path from it out of the map). Returns (rows, filled).
    """
    n = h * w
    order, start = by_value(flat)
    parent = np.full(n, -1, np.int32)
    bx0 = np.empty(n, np.int32)
    by0 = np.empty(n, np.int32)
    bx1 = np.empty(n, np.int32)
    by1 = np.empty(n, np.int32)
    outside = np.zeros(n, np.bool_)
    nxt = np.empty(n, np.int32)  # the members of a hole, as a list from its root: filled when it opens
    tail = np.empty(n, np.int32)
    filled = np.empty(n, np.uint8)
    roots = np.empty(n, np.int32)
    n_roots = 0
    out = np.empty((64, 5), np.int64)
    n_out = 0
    li = 0
    for v in range(256):
        if holes and li == levels.size:
            break
        if holes and levels[li] == v:
            kept = 0
            for i in range(n_roots):
                r = roots[i]
                if parent[r] == r and not outside[r]:
                    roots[kept] = r
                    kept += 1
                    out, n_out = _report(out, n_out, best, li, bx0[r] - 1, by0[r] - 1, bx1[r] + 1, by1[r] + 1, gt, grow, h, w)
            n_roots = kept
            li += 1
        for k in range(start[v], start[v + 1]):
            p = order[k]
            y = p // w
            x = p - y * w
            parent[p] = p
            bx0[p] = x
            bx1[p] = x
            by0[p] = y
            by1[p] = y
            outside[p] = y == 0 or x == 0 or y == h - 1 or x == w - 1
            nxt[p] = -1
            tail[p] = p
            if outside[p]:
                filled[p] = v
            else:
                roots[n_roots] = p
                n_roots += 1
            r = p
            for j in range(4):
                if j == 0:
                    q = p - w if y > 0 else -1
                elif j == 1:
                    q = p - 1 if x > 0 else -1
                elif j == 2:
                    q = p + 1 if x < w - 1 else -1
                else:
                    q = p + w if y < h - 1 else -1
                if q < 0 or parent[q] < 0:
                    continue
                s = find(parent, q)
                if s == r:
                    continue
                if outside[s] != outside[r]:  # a hole opens: its pixels' filled value is this level
                    m = s if outside[r] else r
                    while m >= 0:
                        filled[m] = v
                        m = nxt[m]
                elif not outside[s]:  # two holes join: one member list
                    nxt[tail[s]] = r
                    tail[s] = tail[r]
                parent[r] = s
                bx0[s] = min(bx0[s], bx0[r])
                by0[s] = min(by0[s], by0[r])
                bx1[s] = max(bx1[s], bx1[r])
                by1[s] = max(by1[s], by1[r])
                outside[s] = outside[s] or outside[r]
                r = s
    return out[:n_out], filled
