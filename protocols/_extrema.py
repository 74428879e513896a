"""Regional maxima and interior minima of a uint8 map (numba), for the certified box scan in ``level_boxes.py``.

Every foreground component at a level holds a regional maximum (an 8-connected flat zone > 0 with no higher
neighbour) and every hole an interior regional minimum (a 4-connected flat zone off the border with no lower
4-neighbour). Candidates are found by vectorised passes over the map (the neighbourhood's max or min, and
straight runs that prove a zone has a higher neighbour or reaches the border: ``column_keep`` on the map and
on its transpose), then ``candidate_zones`` keeps the zones that are true extrema (a union-find over row runs).

numba (LLVM) vectorises a loop only over flat (1-D) arrays with unsigned indices (a signed index gets a
wrap-around test per access, a 2-D index a stride product): ``_U1`` keeps index arithmetic unsigned.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from wsolbench.protocols._union_find import find

_U1 = uint64(1)


@njit(cache=True)
def _row3(f, out, base, w, take_max):
    """out[base + x] = max (``take_max``) or min of f[base + x - 1 .. base + x + 1] within the row (flat
    arrays, unsigned base)."""
    W = uint64(w)
    if w == 1:
        out[base] = f[base]
        return
    last = base + W - _U1
    if take_max:
        out[base] = max(f[base], f[base + _U1])
        for x in range(base + _U1, last):
            out[x] = max(max(f[x - _U1], f[x]), f[x + _U1])
        out[last] = max(f[last - _U1], f[last])
    else:
        out[base] = min(f[base], f[base + _U1])
        for x in range(base + _U1, last):
            out[x] = min(min(f[x - _U1], f[x]), f[x + _U1])
        out[last] = min(f[last - _U1], f[last])


@njit(cache=True)
def column_keep(u8, keep, maxima):
    """Per pixel, 1 unless a straight column run from it reaches, up or down, (maxima) a higher pixel through
    its own value, or (minima) the border through values <= its own; else 0. The row version is this on the
    transposed map. Two vectorised passes."""
    h, w = u8.shape
    W = uint64(w)
    f, k = u8.ravel(), keep.ravel()
    far = np.empty(h * w, np.uint8)  # maxima: first different value below (0 past the border); minima: max below
    last = uint64(h - 1) * W
    for i in range(last, last + W):
        far[i] = 0 if maxima else f[i]
    for y in range(h - 2, -1, -1):
        base = uint64(y) * W
        if maxima:
            for i in range(base, base + W):
                n = f[i + W]
                far[i] = far[i + W] if n == f[i] else n
        else:
            for i in range(base, base + W):
                far[i] = max(far[i + W], f[i])
    near = np.zeros(w, np.uint8) if maxima else u8[0].copy()  # the same from the top, carried down
    for y in range(h):
        base = uint64(y) * W
        if maxima:
            if y > 0:
                for x in range(W):
                    a, v = f[base - W + x], f[base + x]
                    near[x] = near[x] if a == v else a
            for x in range(W):
                v = f[base + x]
                k[base + x] = (near[x] <= v) & (far[base + x] <= v)
        else:
            for x in range(W):
                v = f[base + x]
                u = max(near[x], v)
                near[x] = u
                k[base + x] = (u != v) & (far[base + x] != v)


@njit(cache=True)
def maxima_candidates(u8, keep_rows, cand):
    """``cand[y, x] = u8[y, x]`` where the pixel is > 0, the max of its 3x3 neighbourhood, and no straight
    vertical or horizontal (``keep_rows``, 0/1) run of its own value reaches a higher pixel (then its flat
    zone has a higher neighbour); else 0.

    ``u8`` C-contiguous; ``cand``: C-contiguous h x w8 uint8 (w8 >= w), columns past w zeroed. Vectorised
    passes over the map.
    """
    h, w = u8.shape
    H, W, W8 = uint64(h), uint64(w), uint64(cand.shape[1])
    f, c, kr = u8.ravel(), cand.ravel(), keep_rows.ravel()
    below = np.empty(h * w, np.uint8)  # the first different value below each pixel (0 past the border)
    for x in range((H - _U1) * W, H * W):
        below[x] = 0
    for y in range(h - 2, -1, -1):
        base = uint64(y) * W
        for i in range(base, base + W):
            n = f[i + W]
            below[i] = below[i + W] if n == f[i] else n
    m3 = np.empty(h * w, np.uint8)  # 3-wide row maxima
    for y in range(H):
        _row3(f, m3, y * W, w, True)
    above = np.zeros(w, np.uint8)  # the first different value above, carried down each column
    for y in range(H):
        base = y * W
        up = base - W if y > 0 else base
        down = base + W if y + _U1 < H else base
        out = y * W8
        if y > 0:
            for x in range(W):
                a, v = f[up + x], f[base + x]
                above[x] = above[x] if a == v else a
        for x in range(W):
            i = base + x
            v = f[i]
            m = max(max(m3[up + x], m3[i]), m3[down + x])
            keep = (m == v) & (above[x] <= v) & (below[i] <= v) & (kr[i] != 0)
            c[out + x] = v if keep else 0  # v == 0 stays out
        for x in range(out + W, out + W8):
            c[x] = 0


@njit(cache=True)
def minima_candidates(u8, keep_rows, cand):
    """``cand[y, x] = 255`` where the pixel is the min of itself and its 4 neighbours and no straight column
    or row (``keep_rows``, 0/1) run reaches the border through values <= its own (then at every level above
    it its background runs to the border, so it is in no hole); else 0. Layout as in ``maxima_candidates``."""
    h, w = u8.shape
    H, W, W8 = uint64(h), uint64(w), uint64(cand.shape[1])
    f, c, kr = u8.ravel(), cand.ravel(), keep_rows.ravel()
    down = np.empty(h * w, np.uint8)  # max from each pixel down to the bottom
    for x in range((H - _U1) * W, H * W):
        down[x] = f[x]
    for y in range(h - 2, -1, -1):
        base = uint64(y) * W
        for i in range(base, base + W):
            down[i] = max(down[i + W], f[i])
    low = np.empty(h * w, np.uint8)  # min of each pixel and its left and right neighbours
    for y in range(H):
        _row3(f, low, y * W, w, False)
    up = np.zeros(w, np.uint8)  # max from the top down to each pixel
    for y in range(H):
        base = y * W
        above = base - W if y > 0 else base
        below = base + W if y + _U1 < H else base
        out = y * W8
        for x in range(W):
            i = base + x
            v = f[i]
            u = max(up[x], v)
            up[x] = u
            m = min(min(f[above + x], f[below + x]), low[i])
            keep = (m == v) & (u != v) & (down[i] != v) & (kr[i] != 0)
            c[out + x] = 255 if keep else 0
        for x in range(out + W, out + W8):
            c[x] = 0


@njit(cache=True)
def candidate_zones(u8, cand, words, diagonal, interior, highest_first, runs):
    """The flat zones of candidate pixels that are true extrema: one row (value, y, x) per zone (its first
    pixel in raster order), sorted by value (stable), highest first when ``highest_first``.

    A zone (candidates joined 8-connected when ``diagonal``, else 4; adjacent candidates share their value)
    is an extremum unless a neighbour outside it has its value (that neighbour has a higher/lower neighbour,
    or was dropped as being in such a zone); ``interior`` also drops zones touching the image border.
    ``cand``: h x w8 (C-contiguous), ``words`` the same memory as uint64, to skip empty stretches;
    ``runs``: int32 scratch (3, >= h * (w // 2 + 1)). A union-find over row runs of candidates: cost ~ runs
    + their length + pixels / 8.
    """
    h, w = u8.shape
    w8 = cand.shape[1]
    n_words = words.shape[1]
    f, c, fw = u8.ravel(), cand.ravel(), words.ravel()
    parent, start, spoiled = runs[0], runs[1], runs[2]  # start: the run's first pixel (y * w + x)
    d = 1 if diagonal else 0
    labels = np.full((2, w), -1, np.int32)  # run of each pixel of the previous and the current row
    n = 0
    prev_has = False
    for y in range(h):
        has = False
        for k in range(n_words):
            if fw[y * n_words + k] != 0:
                has = True
                break
        if not has:
            prev_has = False
            continue
        cur, prev = labels[y & 1], labels[1 - (y & 1)]
        cur[:] = -1
        row, up, down = y * w8, (y - 1) * w8, (y + 1) * w8
        x = 0
        while x < w:
            if x % 8 == 0 and fw[y * n_words + x // 8] == 0:
                x += 8
                continue
            if c[row + x] == 0:
                x += 1
                continue
            x0 = x
            while x + 1 < w and c[row + x + 1] != 0:
                x += 1
            x1 = x
            v = f[y * w + x0]
            r = n
            n += 1
            parent[r], start[r], spoiled[r] = r, y * w + x0, 0
            bad = (x0 > 0 and f[y * w + x0 - 1] == v) or (x1 < w - 1 and f[y * w + x1 + 1] == v)
            if interior and (y == 0 or y == h - 1 or x0 == 0 or x1 == w - 1):
                bad = True
            for xx in range(x0, x1 + 1):
                cur[xx] = r
            lo, hi = max(x0 - d, 0), min(x1 + d, w - 1)
            if y > 0:
                last = -1
                for xx in range(lo, hi + 1):
                    if c[up + xx] == 0:
                        bad |= f[(y - 1) * w + xx] == v
                    elif prev_has:
                        q = prev[xx]
                        if q != last:  # an adjacent candidate run above: the same zone
                            last = q
                            ra, rb = find(parent, q), find(parent, r)
                            if ra != rb:
                                lo_r, hi_r = min(ra, rb), max(ra, rb)
                                parent[hi_r] = lo_r
                                spoiled[lo_r] |= spoiled[hi_r]
            if y < h - 1 and not bad:
                for xx in range(lo, hi + 1):
                    if c[down + xx] == 0 and f[(y + 1) * w + xx] == v:
                        bad = True
                        break
            if bad:
                spoiled[find(parent, r)] = 1
            x += 1
        prev_has = True
    out = np.empty((n, 3), np.int64)
    k = 0
    for r in range(n):
        if parent[r] == r and spoiled[r] == 0:
            p = start[r]
            yy = p // w
            out[k, 0], out[k, 1], out[k, 2] = f[p], yy, p - yy * w
            k += 1
    out = out[:k]
    key = -out[:, 0] if highest_first else out[:, 0].copy()
    return out[np.argsort(key, kind="mergesort")]
