"""Regional maxima and interior minima of a uint8 map (numba), for the certified box scan in ``level_boxes.py``.

Every foreground component at a level holds a regional maximum (an 8-connected flat zone > 0 with no higher
neighbour) and every hole an interior regional minimum (a 4-connected flat zone off the border with no lower
4-neighbour). Candidates are found by vectorised passes over the map (the neighbourhood's max or min, and
straight runs that prove a zone has a higher neighbour or reaches the border: ``column_climb`` and
``column_escape`` on the map and on its transpose), then ``candidate_zones`` keeps the zones that are true
extrema (a union-find over row runs).

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
def column_climb(u8, keep):
    """``keep`` = 1 unless a straight column run of the pixel's own value reaches, up or down, a higher pixel
    (then its flat zone has a higher neighbour: no maximum); on the transposed map it tests the rows. Two
    vectorised passes."""
    h, w = u8.shape
    W = uint64(w)
    f, k = u8.ravel(), keep.ravel()
    below = np.empty(h * w, np.uint8)  # the first different value below each pixel (0 past the border)
    last = uint64(h - 1) * W
    for i in range(last, last + W):
        below[i] = 0
    for y in range(h - 2, -1, -1):
        base = uint64(y) * W
        for i in range(base, base + W):
            n = f[i + W]
            below[i] = below[i + W] if n == f[i] else n
    above = np.zeros(w, np.uint8)  # the same from the top, carried down
    for y in range(h):
        base = uint64(y) * W
        if y > 0:
            for x in range(W):
                a, v = f[base - W + x], f[base + x]
                above[x] = above[x] if a == v else a
        for x in range(W):
            v = f[base + x]
            k[base + x] = (above[x] <= v) & (below[base + x] <= v)


@njit(cache=True)
def column_escape(u8, out):
    """``out`` = the smaller of the maxima from each pixel straight up and straight down to the border (the
    level from which its background runs to the border along the column); on the transposed map it gives
    the rows. Vectorised."""
    h, w = u8.shape
    W = uint64(w)
    f, o = u8.ravel(), out.ravel()
    down = np.empty(h * w, np.uint8)  # max from each pixel to the bottom
    last = uint64(h - 1) * W
    for i in range(last, last + W):
        down[i] = f[i]
    for y in range(h - 2, -1, -1):
        base = uint64(y) * W
        for i in range(base, base + W):
            down[i] = max(down[i + W], f[i])
    up = f[:w].copy()
    for y in range(h):
        base = uint64(y) * W
        for x in range(W):
            u = max(up[x], f[base + x])
            up[x] = u
            o[base + x] = min(u, down[base + x])


@njit(cache=True)
def extremum_candidates(u8, keep, cand, maxima):
    """Maxima: ``cand[y, x] = u8[y, x]`` where the pixel is > 0 and the max of its 3x3 neighbourhood; minima:
    255 where it is the min of itself and its 4 neighbours; only where ``keep`` (the straight-run tests of
    ``column_climb`` / ``column_escape``) is not 0; else 0.

    ``u8`` C-contiguous; ``cand``: C-contiguous h x w8 uint8 (w8 >= w), columns past w zeroed. Vectorised.
    """
    h, w = u8.shape
    H, W, W8 = uint64(h), uint64(w), uint64(cand.shape[1])
    f, c, kp = u8.ravel(), cand.ravel(), keep.ravel()
    row3 = np.empty(h * w, np.uint8)  # 3-wide row maxima (minima)
    for y in range(H):
        _row3(f, row3, y * W, w, maxima)
    for y in range(H):
        base = y * W
        up = base - W if y > 0 else base
        down = base + W if y + _U1 < H else base
        out = y * W8
        if maxima:
            for x in range(W):
                i = base + x
                v = f[i]
                m = max(max(row3[up + x], row3[i]), row3[down + x])
                c[out + x] = v if (m == v) & (kp[i] != 0) else 0  # v == 0 stays out
        else:
            for x in range(W):
                i = base + x
                v = f[i]
                m = min(min(f[up + x], f[down + x]), row3[i])
                c[out + x] = 255 if (m == v) & (kp[i] != 0) else 0
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
