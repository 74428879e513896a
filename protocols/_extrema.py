"""Regional maxima and interior minima of a uint8 map (numba), for the certified box scan in ``level_boxes.py``.

Every foreground component at a level holds a regional maximum (an 8-connected flat zone > 0 with no higher
neighbour) and every hole an interior regional minimum (a 4-connected flat zone off the border with no lower
4-neighbour). ``mark_candidates`` marks, in vectorised passes, the pixels with no higher (lower) neighbour and
the "seeds" among them: those next to a pixel of their own value that has one, so their zone is no extremum;
``flat_zones`` joins the candidates' row runs (a word of 8 pixels at a time) and keeps the zones without a
seed. ``column_escape`` gives the straight paths to the border that rule a minimum out of any hole.

numba (LLVM) vectorises a loop only over flat (1-D) arrays with unsigned indices (a signed index gets a
wrap-around test per access, a 2-D index a stride product): ``_U1`` keeps index arithmetic unsigned.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from wsolbench.protocols._union_find import find

_U1 = uint64(1)


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
def mark_candidates(u8, keep, use_keep, maxima, pad, cand, seed):
    """The extremum candidates of ``u8`` in padded frames: ``pad``, ``cand``, ``seed`` are C-contiguous
    (h + 2) x W8 uint8 (W8 >= w + 2, a multiple of 8) holding pixel (y, x) at (y + 1, x + 1), 0 elsewhere.

    ``pad`` gets the map; ``cand`` 1 where the pixel is an extremum of its neighbourhood (maxima: > 0 and the
    max of its 3x3 block; minima: the min of itself and its 4-neighbours) and ``keep`` (if ``use_keep``) is
    not 0; ``seed`` 1 where such a pixel has a neighbour of its own value that is no candidate (8-neighbours
    for maxima, 4 for minima): its flat zone has a neighbour beyond, so it is no extremum. A pad cell reads 0
    and is no candidate: it never matches a maximum (> 0), and marks only minima touching the border, which
    are no interior minima anyway. Vectorised (flat arrays, unsigned indices)."""
    h, w = u8.shape
    H, W, W8 = uint64(h), uint64(w), uint64(pad.shape[1])
    f, p, c, s, kp = u8.ravel(), pad.ravel(), cand.ravel(), seed.ravel(), keep.ravel()
    for j in range(W8):  # pad rows
        p[j], c[j], s[j] = 0, 0, 0
        p[(H + _U1) * W8 + j], c[(H + _U1) * W8 + j], s[(H + _U1) * W8 + j] = 0, 0, 0
    for y in range(H):
        row = (y + _U1) * W8
        p[row], c[row], s[row] = 0, 0, 0
        for j in range(row + W + _U1, row + W8):
            p[j], c[j], s[j] = 0, 0, 0
        for x in range(W):
            p[row + _U1 + x] = f[y * W + x]
    for y in range(H):
        row = (y + _U1) * W8 + _U1
        up, down = row - W8, row + W8
        for x in range(W):
            v = p[row + x]
            if maxima:
                m = max(max(max(p[up + x - _U1], p[up + x]), max(p[up + x + _U1], p[row + x - _U1])),
                        max(max(p[row + x + _U1], p[down + x - _U1]), max(p[down + x], p[down + x + _U1])))
                on = (m <= v) & (v > 0)
            else:
                m = min(min(p[up + x], p[down + x]), min(p[row + x - _U1], p[row + x + _U1]))
                on = m >= v
            if use_keep:
                on = on & (kp[y * W + x] != 0)
            c[row + x] = np.uint8(on)
    for y in range(H):
        row = (y + _U1) * W8 + _U1
        up, down = row - W8, row + W8
        for x in range(W):
            j = row + x
            v = p[j]
            e = ((c[j - _U1] == 0) & (p[j - _U1] == v)) | ((c[j + _U1] == 0) & (p[j + _U1] == v))
            e |= ((c[up + x] == 0) & (p[up + x] == v)) | ((c[down + x] == 0) & (p[down + x] == v))
            if maxima:
                e |= ((c[up + x - _U1] == 0) & (p[up + x - _U1] == v)) | ((c[up + x + _U1] == 0) & (p[up + x + _U1] == v))
                e |= ((c[down + x - _U1] == 0) & (p[down + x - _U1] == v)) | ((c[down + x + _U1] == 0) & (p[down + x + _U1] == v))
            s[j] = np.uint8(e & (c[j] != 0))


_ONES = uint64(0x0101010101010101)
_BYTE_INDEX = uint64(0x0001020304050607)  # (1 << 8k) * this >> 56 == k


@njit(cache=True)
def _lowest_byte(bits):
    """The index of the lowest byte of ``bits`` (not 0) with bit 0 set, when only bytes' bit 0 can be set."""
    return (bits & (~bits + _U1)) * _BYTE_INDEX >> uint64(56)


@njit(cache=True)
def flat_zones(u8, cand, seed, diagonal, interior, highest_first, runs):
    """The flat zones of candidates (``mark_candidates``) that are true extrema: one row (value, y, x) per zone
    (its first pixel in raster order), sorted by value (stable), highest first when ``highest_first``.

    Zones: candidate row runs joined 8-connected when ``diagonal``, else 4 (adjacent candidates share their
    value); a zone is an extremum unless one of its pixels is a seed (``interior``: or it touches the border).
    Runs are read a word (8 pixels) at a time, their ends found by bit tricks, so the cost is ~ pixels / 8 +
    runs. ``runs``: int32 scratch (5, >= h * (w // 2 + 1)).
    """
    h, w = u8.shape
    W8 = cand.shape[1]
    n_words = W8 // 8
    words, seeds = cand.reshape(-1).view(np.uint64), seed.reshape(-1).view(np.uint64)
    parent, x0s, x1s, ys, bad = runs[0], runs[1], runs[2], runs[3], runs[4]
    d = 1 if diagonal else 0
    n = 0
    prev_first, prev_end = 0, 0  # runs of the row above
    for y in range(h):
        first = n
        row_k = (y + 1) * n_words  # the padded row's first word; pixel x at byte x + 1
        start = -1  # padded column where the open run starts
        seeded = uint64(0)
        for k in range(row_k, row_k + n_words):
            word, seed_word = words[k], seeds[k]
            if start < 0 and word == 0:
                continue
            base = (k - row_k) * 8
            b = uint64(0)  # bytes before b are done
            while True:
                if start < 0:
                    rest = word >> (uint64(8) * b)
                    if rest == 0:
                        break
                    b += _lowest_byte(rest)
                    start = base + np.int64(b)
                    seeded = uint64(0)
                gaps = (word ^ _ONES) >> (uint64(8) * b)  # bit 0 of each byte not in a run
                if gaps == 0:  # the run goes on into the next word
                    seeded |= seed_word >> (uint64(8) * b)
                    break
                e = _lowest_byte(gaps)
                seeded |= (seed_word >> (uint64(8) * b)) & ((uint64(1) << (uint64(8) * e)) - _U1)
                b += e
                end = base + np.int64(b)  # the padded column after the run
                parent[n], x0s[n], x1s[n], ys[n] = n, start - 1, end - 2, y
                bad[n] = 1 if seeded != 0 else 0
                if interior and (y == 0 or y == h - 1 or start == 1 or end - 2 == w - 1):
                    bad[n] = 1
                n += 1
                start = -1
        # join with the runs above that touch (overlap, or meet at a corner when diagonal)
        i, j = prev_first, first
        while i < prev_end and j < n:
            if x0s[i] <= x1s[j] + d and x0s[j] <= x1s[i] + d:
                ra, rb = find(parent, i), find(parent, j)
                if ra != rb:
                    lo_r, hi_r = min(ra, rb), max(ra, rb)
                    parent[hi_r] = lo_r
                    bad[lo_r] |= bad[hi_r]
            if x1s[i] < x1s[j]:
                i += 1
            else:
                j += 1
        prev_first, prev_end = first, n
    out = np.empty((n, 3), np.int64)
    k = 0
    for r in range(n):
        if parent[r] == r and bad[r] == 0:
            out[k, 0], out[k, 1], out[k, 2] = u8[ys[r], x0s[r]], ys[r], x0s[r]
            k += 1
    out = out[:k]
    key = -out[:, 0] if highest_first else out[:, 0].copy()
    return out[np.argsort(key, kind="mergesort")]
