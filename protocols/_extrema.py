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
def _row_max3(f, r, h, w, first=uint64(0)):
    """r = the max of each pixel and its left and right neighbours, in ``h`` rows of ``w`` from flat index
    ``first``. Vectorised."""
    W = uint64(w)
    for y in range(uint64(h)):
        b = first + y * W
        if w == 1:
            r[b] = f[b]
            continue
        r[b] = max(f[b], f[b + _U1])
        for x in range(b + _U1, b + W - _U1):
            r[x] = max(max(f[x - _U1], f[x]), f[x + _U1])
        r[b + W - _U1] = max(f[b + W - _U1], f[b + W - uint64(2)])


@njit(cache=True)
def mark_candidates(u8, keep, use_keep, maxima, cand, seed, rows, others):
    """The extremum candidates of ``u8``, in padded frames ``cand`` and ``seed`` (C-contiguous (h + 2) x W8
    uint8, W8 >= w + 2 a multiple of 8, pixel (y, x) at (y + 1, x + 1), 0 around).

    ``cand`` 1 where the pixel is an extremum of its neighbourhood (maxima: > 0 and the max of its 3x3 block,
    its column run of its value reaching no higher pixel; minima: the min of itself and its 4-neighbours) and
    ``keep`` (if ``use_keep``) is not 0; ``seed`` 1 where such a pixel has a neighbour of its own value that
    is no candidate (8-neighbours for maxima, 4 for minima): its flat zone then has a neighbour beyond, so it
    is no extremum. As no neighbour of a candidate is higher (lower), that is where the max (min) of the
    non-candidates' values around it is its own value.
    ``seed`` is written in rows with candidates only (``flat_zones`` reads it at candidates only).
    Scratch: ``rows``, ``others`` (h x w uint8). Vectorised passes (flat arrays, unsigned indices): the column
    climb's bottom-up one (maxima), then one over every row and two over the rows with candidates."""
    h, w = u8.shape
    H, W, W8 = uint64(h), uint64(w), uint64(cand.shape[1])
    f, c, s, r, o, kp = u8.ravel(), cand.ravel(), seed.ravel(), rows.ravel(), others.ravel(), keep.ravel()
    last = (H + _U1) * W8
    for j in range(W8):  # the frame's pad
        c[j], c[last + j] = 0, 0
    for y in range(H):
        row = (y + _U1) * W8
        c[row] = 0
        for j in range(row + W + _U1, row + W8):
            c[j] = 0
    if maxima:
        # the column climb: a pixel whose straight column run of its own value reaches a higher pixel is in
        # a zone with a higher neighbour; ``below``: the first other value below each pixel (0 past the
        # border), ``above`` the same from the top, carried down the rows. On smooth maps this drops most
        # terrace pixels, and with them most of the row runs that ``flat_zones`` costs by.
        below = np.empty(h * w, np.uint8)
        end = (H - _U1) * W
        for i in range(end, end + W):
            below[i] = 0
        for y in range(h - 2, -1, -1):
            b = uint64(y) * W
            for i in range(b, b + W):
                n = f[i + W]
                below[i] = below[i + W] if n == f[i] else n
        above = np.zeros(w, np.uint8)
        _row_max3(f, r, uint64(1), w, uint64(0))
    other = np.uint8(0) if maxima else np.uint8(255)  # a candidate's value in ``others``: never the answer
    has = np.zeros(h + 2, np.bool_)  # rows with candidates (row y at y + 1): only they need seeds
    for y in range(H):
        b = y * W
        up = b - W if y > 0 else b
        down = b + W if y + _U1 < H else b
        out = (y + _U1) * W8 + _U1
        any_on = False
        if maxima:
            if y + _U1 < H:  # row maxima one row ahead
                _row_max3(f, r, uint64(1), w, down)
            if y > 0:
                for x in range(W):
                    a, v = f[up + x], f[b + x]
                    above[x] = above[x] if a == v else a
        for x in range(W):
            v = f[b + x]
            if maxima:
                on = (max(max(r[up + x], r[b + x]), r[down + x]) == v) & (v > 0)
                on = on & (above[x] <= v) & (below[b + x] <= v)
            else:
                left = f[b + x - _U1] if x > 0 else v
                right = f[b + x + _U1] if x + _U1 < W else v
                on = min(min(f[up + x], f[down + x]), min(left, right)) >= v
            if use_keep:
                on = on & (kp[b + x] != 0)
            c[out + x] = np.uint8(1) if on else np.uint8(0)
            o[b + x] = other if on else v
            any_on |= on
        has[y + _U1] = any_on
    if maxima:  # the rows around candidates only
        for y in range(H):
            if has[y] | has[y + _U1] | has[y + uint64(2)]:
                _row_max3(o, r, uint64(1), w, y * W)
    for y in range(H):
        if not has[y + _U1]:
            continue  # no candidate: its seeds are never read
        b = y * W
        up = b - W if y > 0 else b
        down = b + W if y + _U1 < H else b
        out = (y + _U1) * W8 + _U1
        for x in range(W):
            v = f[b + x]
            if maxima:
                hit = max(max(r[up + x], r[b + x]), r[down + x]) == v
            else:
                left = o[b + x - _U1] if x > 0 else other
                right = o[b + x + _U1] if x + _U1 < W else other
                hit = min(min(o[up + x], o[down + x]), min(left, right)) == v
            s[out + x] = np.uint8(1) if hit & (c[out + x] != 0) else np.uint8(0)


_ONES = uint64(0x0101010101010101)
_BYTE_INDEX = uint64(0x0001020304050607)  # (1 << 8k) * this >> 56 == k


@njit(cache=True)
def _lowest_byte(bits):
    """The index of the lowest byte of ``bits`` (not 0) with bit 0 set, when only bytes' bit 0 can be set."""
    return (bits & (~bits + _U1)) * _BYTE_INDEX >> uint64(56)


@njit(cache=True)
def _below(b):
    """The bits of bytes 0 .. b - 1 (b < 8)."""
    return (_U1 << (uint64(8) * b)) - _U1


@njit(cache=True)
def flat_zones(u8, cand, seed, diagonal, interior, highest_first, runs):
    """The flat zones of candidates (``mark_candidates``) that are true extrema: one row (value, y, x) per zone
    (its first pixel in raster order), sorted by value (stable), highest first when ``highest_first``.

    Zones: candidate row runs joined 8-connected when ``diagonal``, else 4 (adjacent candidates share their
    value); a zone is an extremum unless one of its pixels is a seed (``interior``: or it touches the border).
    Runs are read a word (8 pixels) at a time, their ends found by bit tricks: the cost is ~ pixels / 8 + runs.
    ``runs``: int32 scratch (5, >= h * (w // 2 + 1)).
    """
    h, w = u8.shape
    W8 = cand.shape[1]
    n_words = W8 // 8
    words, seeds = cand.reshape(-1).view(np.uint64), seed.reshape(-1).view(np.uint64)
    parent, x0s, x1s, ys, bad = runs[0], runs[1], runs[2], runs[3], runs[4]
    everything = ~uint64(0)
    d = 1 if diagonal else 0
    n = 0
    prev_first, prev_end = 0, 0  # runs of the row above
    for y in range(h):
        first = n
        row_k = (y + 1) * n_words  # the padded row's first word; pixel x at byte x + 1
        end_k = row_k + n_words
        k = row_k
        todo = everything  # the bytes of word k not read yet
        while True:
            word = words[k] & todo
            while word == 0:  # to the next run's first pixel
                k += 1
                if k == end_k:
                    break
                word = words[k]
            if k == end_k:
                break
            b = _lowest_byte(word)
            start = (k - row_k) * 8 + np.int64(b)
            todo = ~_below(b)
            gaps = (words[k] ^ _ONES) & todo  # bit 0 of each byte not in a run
            seeded = uint64(0)
            while gaps == 0:  # the run goes on through the word (the pad ends it inside the row)
                seeded |= seeds[k] & todo
                k += 1
                todo = everything
                gaps = words[k] ^ _ONES
            e = _lowest_byte(gaps)
            seeded |= seeds[k] & todo & _below(e)
            todo = ~_below(e)
            end = (k - row_k) * 8 + np.int64(e)  # the padded column after the run
            parent[n], x0s[n], x1s[n], ys[n] = n, start - 1, end - 2, y
            bad[n] = 1 if seeded != 0 else 0
            if interior and (y == 0 or y == h - 1 or start == 1 or end - 2 == w - 1):
                bad[n] = 1
            n += 1
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
