"""Compiled loops (numba) of the certified level scan in ``level_boxes.py``.

- ``levels_and_extents`` (``distinct_levels``, ``row_col_max``): thresholds to distinct levels, and each
  level's foreground box;
- ``line_links``, ``escape_values``: cheap certificates that two maxima are connected below a value, and
  that a minimum's background reaches the border above one;
- ``fill_block_maxima``: column maxima of 16-row blocks, for the row and column maxima of any rectangle
  (``_band_max``) that ``_xy_cells`` cuts by; ``window_lows``: 2x2 window lows for contour-area counts
  (``_window_count``);
- ``scan_levels``: boxes level after level while they can be certified without a contour search;
- ``gather_boxes``: every level's boxes in one array.
The regional extrema it starts from are in ``_extrema.py``, the component tree for noisy maps in
``_component_tree.py``. Compiled on the first call in a fresh environment (about 30 s for the three box-search files)
and cached next to the files (``cache=True``).

numba (LLVM) vectorises a loop only over flat (1-D) arrays with unsigned indices (a signed index gets a
wrap-around test per access, a 2-D index a stride product): ``_U1`` keeps index arithmetic unsigned.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from wsolbench.protocols._union_find import find

_U1 = uint64(1)


@njit(cache=True)
def _extents_of(rows, cols, values):
    """The bounding box (x0, y0, x1, y1) of ``u8 >= v`` for each of ``values`` (descending, each <= the max),
    from the map's row and column maxima."""
    h, w = rows.shape[0], cols.shape[0]
    # the first row/column from each side whose max reaches v: on running maxima from that side, which
    # rise monotonically, a pointer walks back as v descends
    ext = np.empty((values.shape[0], 4), np.int64)
    from_left, from_top = _running_max(cols), _running_max(rows)
    from_right, from_bottom = _running_max(cols[::-1]), _running_max(rows[::-1])
    x0, y0, x1, y1 = w, h, w, h
    for i in range(values.shape[0]):
        v = values[i]
        while x0 > 0 and from_left[x0 - 1] >= v:
            x0 -= 1
        while y0 > 0 and from_top[y0 - 1] >= v:
            y0 -= 1
        while x1 > 0 and from_right[x1 - 1] >= v:
            x1 -= 1
        while y1 > 0 and from_bottom[y1 - 1] >= v:
            y1 -= 1
        ext[i, 0], ext[i, 1], ext[i, 2], ext[i, 3] = x0, y0, w - 1 - x1, h - 1 - y1
    return ext


@njit(cache=True)
def _running_max(a):
    out = np.empty(a.shape[0], np.int64)
    m = 0
    for k in range(a.shape[0]):
        m = max(m, a[k])
        out[k] = m
    return out


@njit(cache=True)
def gather_boxes(n_empty, boxes, counts, extra_levels, extra_rows, searched):
    """One (K, 4) array of every level's boxes and the start of each level; the first ``n_empty`` levels get
    (0, 0, -1, -1); level i gets its ``counts[i]`` certified boxes first, or, where ``counts[i] < 0``
    (searched: ``searched[i]``), ``-counts[i] - 1`` rows left for the caller, then its ``extra_rows`` (rows
    whose ``extra_levels`` is i, in their order; none for a searched level)."""
    n = boxes.shape[0]
    per_level = np.zeros(n, np.int64)
    for r in range(extra_levels.shape[0]):
        if not searched[extra_levels[r]]:
            per_level[extra_levels[r]] += 1
    start = np.zeros(n_empty + n + 1, np.int64)
    for i in range(n_empty):
        start[i + 1] = start[i] + 1
    for i in range(n):
        c = counts[i] if counts[i] >= 0 else -counts[i] - 1
        start[n_empty + i + 1] = start[n_empty + i] + c + per_level[i]
    out = np.empty((start[-1], 4), np.int64)
    for i in range(n_empty):
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = 0, 0, -1, -1
    fill = np.empty(n, np.int64)  # the next row of each level's extra rows
    for i in range(n):
        for k in range(counts[i]):
            out[start[n_empty + i] + k] = boxes[i, k]
        fill[i] = start[n_empty + i] + (counts[i] if counts[i] >= 0 else -counts[i] - 1)
    for r in range(extra_levels.shape[0]):
        i = extra_levels[r]
        if not searched[i]:
            out[fill[i]] = extra_rows[r]
            fill[i] += 1
    return out, start


@njit(cache=True)
def row_col_max(u8):
    """Each row's and each column's maximum (``u8`` C-contiguous; vectorised)."""
    h, w = u8.shape
    W = uint64(w)
    f = u8.ravel()
    rows = np.empty(h, np.uint8)
    cols = u8[0].copy()
    for y in range(h):
        base = uint64(y) * W
        m = np.uint8(0)
        for x in range(W):
            v = f[base + x]
            m = max(m, v)
            cols[x] = max(cols[x], v)
        rows[y] = m
    return rows, cols


@njit(cache=True)
def escape_values(u8, minima):
    """For each minimum (value, y, x): the smallest max along the four straight rays from it to the border.

    Those rays are 4-connected paths: at a level above that value the minimum's background reaches the border,
    so it lies in no hole.
    """
    h, w = u8.shape
    out = np.empty(minima.shape[0], np.int64)
    for m in range(minima.shape[0]):
        y, x = minima[m, 1], minima[m, 2]
        a = b = c = d = 0
        for xx in range(0, x + 1):
            a = max(a, u8[y, xx])
        for xx in range(x, w):
            b = max(b, u8[y, xx])
        for yy in range(0, y + 1):
            c = max(c, u8[yy, x])
        for yy in range(y, h):
            d = max(d, u8[yy, x])
        out[m] = min(min(a, b), min(c, d))
    return out


@njit(cache=True)
def line_links(u8, maxima, neighbours):
    """Links (level, a, b) between maxima: the smallest value on the straight 8-connected pixel line from a
    to b; at any level <= it, a and b are in one component. Each maximum is linked to its ``neighbours``
    nearest others; highest level first (stable)."""
    n = maxima.shape[0]
    k = min(neighbours, n - 1)
    links = np.empty((max(n * k, 0), 3), np.int64)
    count = 0
    dist = np.empty(n, np.int64)
    for a in range(n):
        for b in range(n):
            dist[b] = (maxima[a, 1] - maxima[b, 1]) ** 2 + (maxima[a, 2] - maxima[b, 2]) ** 2
        dist[a] = -1
        for _ in range(k):
            b = -1  # the nearest not taken yet (taken ones are marked -1)
            for c in range(n):
                if dist[c] >= 0 and (b < 0 or dist[c] < dist[b]):
                    b = c
            dist[b] = -1
            y0, x0, y1, x1 = maxima[a, 1], maxima[a, 2], maxima[b, 1], maxima[b, 2]
            steps = max(abs(y1 - y0), abs(x1 - x0))
            low = min(u8[y0, x0], u8[y1, x1])
            # point s is (y0 + (2 dy s + steps) // (2 steps), same for x): rounded to the nearest pixel, so
            # consecutive points differ by at most 1 in each axis. The floor divisions are kept incrementally
            # (quotient q, remainder r in [0, 2 steps)): each step adds 2 dy, at most one carry.
            den = max(2 * steps, 1)  # steps 0 (one pixel): no point in between
            qy, ry = y0 + steps // den, steps % den
            qx, rx = x0 + steps // den, steps % den
            for s in range(1, steps):
                ry += 2 * (y1 - y0)
                if ry >= den:
                    ry -= den
                    qy += 1
                elif ry < 0:
                    ry += den
                    qy -= 1
                rx += 2 * (x1 - x0)
                if rx >= den:
                    rx -= den
                    qx += 1
                elif rx < 0:
                    rx += den
                    qx -= 1
                low = min(low, u8[qy, qx])
            links[count, 0] = low
            links[count, 1] = a
            links[count, 2] = b
            count += 1
    links = links[:count]
    return links[np.argsort(-links[:, 0], kind="mergesort")]


BLOCK = 16  # rows per block of ``fill_block_maxima``


@njit(cache=True)
def fill_block_maxima(u8, out):
    """``out[b, x]`` = max of ``u8[BLOCK * b : BLOCK * (b + 1), x]`` (vectorised)."""
    h, w = u8.shape
    W = uint64(w)
    f, o = u8.ravel(), out.ravel()
    for b in range(out.shape[0]):
        base = uint64(b) * W
        for x in range(W):
            o[base + x] = 0
        for y in range(b * BLOCK, min((b + 1) * BLOCK, h)):
            row = uint64(y) * W
            for x in range(W):
                o[base + x] = max(o[base + x], f[row + x])


@njit(cache=True)
def _max_into(out, src, base, lo, hi):
    for x in range(lo, hi):
        out[x] = max(out[x], src[base + x])


@njit(cache=True)
def _band_max(u8, blocks, a0, a1, b0, b1, out):
    """``out[b] = max(u8[a0 : a1 + 1, b])`` for b in [b0, b1]: whole blocks from ``blocks``
    (``fill_block_maxima``), the rows before and after them one by one; vectorised along b."""
    W = uint64(u8.shape[1])
    f, fb = u8.ravel(), blocks.ravel()
    lo, hi = uint64(b0), uint64(b1 + 1)
    for x in range(lo, hi):
        out[x] = 0
    first_block = -(-a0 // BLOCK)  # the first block starting at or after a0
    end_block = (a1 + 1) // BLOCK  # blocks before this one end at or before a1
    if first_block >= end_block:  # no whole block inside
        for a in range(a0, a1 + 1):
            _max_into(out, f, uint64(a) * W, lo, hi)
        return
    for a in range(a0, first_block * BLOCK):
        _max_into(out, f, uint64(a) * W, lo, hi)
    for b in range(first_block, end_block):
        _max_into(out, fb, uint64(b) * W, lo, hi)
    for a in range(end_block * BLOCK, a1 + 1):
        _max_into(out, f, uint64(a) * W, lo, hi)


@njit(cache=True)
def _runs_at_least(profile, lo, hi, v, runs):
    """The runs of ``profile[lo : hi + 1] >= v`` as (first, last) rows of ``runs``; returns how many (-1 if
    more than fit). One run, the usual case, costs a vectorised min between the ends."""
    first, last = lo, hi
    while first <= hi and profile[first] < v:
        first += 1
    if first > hi:
        return 0
    while profile[last] < v:
        last -= 1
    low = np.uint8(255)
    for k in range(uint64(first), uint64(last + 1)):
        low = min(low, profile[k])
    if low >= v:
        runs[0, 0], runs[0, 1] = first, last
        return 1
    n = 0
    start = -1
    for k in range(first, last + 2):
        on = k <= last and profile[k] >= v
        if on and start < 0:
            start = k
        elif not on and start >= 0:
            if n == runs.shape[0]:
                return -1
            runs[n, 0], runs[n, 1] = start, k - 1
            n += 1
            start = -1
    return n


@njit(cache=True)
def _push_bands(stack, top, runs, k, of_rows, x0, y0, x1, y1):
    """Push the ``k`` bands of rectangle (x0, y0, x1, y1) given by ``runs`` (rows, or columns); returns the
    new top, -1 if they do not fit (or ``k`` is -1: too many runs)."""
    if k < 0 or top + k > stack.shape[0]:
        return -1
    for r in range(k):
        if of_rows:
            stack[top] = (x0, runs[r, 0], x1, runs[r, 1])
        else:
            stack[top] = (runs[r, 0], y0, runs[r, 1], y1)
        top += 1
    return top


@njit(cache=True)
def _xy_cells(u8, turned, blocks, turned_blocks, row_max, col_max, v, extent, cells, stack, profile, runs):
    """Split the foreground ``>= v`` inside ``extent`` by empty rows and columns, recursively.

    Every cell returned holds whole 8-connected components (an empty row or column band separates them) and is
    their tight bounding box; returns the number of cells written to ``cells`` (-1 if more than fit). A
    rectangle's row and column maxima come from ``_band_max`` on the map and its transpose (``turned``);
    ``blocks`` / ``turned_blocks``: their ``fill_block_maxima``; for ``extent`` itself, the foreground's box,
    they are the map's ``row_max`` / ``col_max``. Scratch: ``stack`` (>= 4 * len(cells) + 4, 4), ``profile``
    (>= max(h, w)), ``runs`` (R, 2).
    """
    cap = cells.shape[0]
    stack[0] = extent
    top = 1
    n = 0
    first = True
    while top > 0:
        top -= 1
        x0, y0, x1, y1 = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        whole, first = first, False  # still the extent: every foreground pixel is inside it
        final = False
        while True:
            # rows with foreground (maxima along x: on the transpose), as runs
            if whole:
                k = _runs_at_least(row_max, y0, y1, v, runs)
            else:
                _band_max(turned, turned_blocks, x0, x1, y0, y1, profile)
                k = _runs_at_least(profile, y0, y1, v, runs)
            if k != 1:  # several bands, each split further (or, defensively, none: dropped)
                top = _push_bands(stack, top, runs, k, True, x0, y0, x1, y1)
                if top < 0:
                    return -1
                break
            whole = whole and runs[0, 0] == y0 and runs[0, 1] == y1
            y0, y1 = runs[0, 0], runs[0, 1]
            # then columns, within those rows
            if whole:
                k = _runs_at_least(col_max, x0, x1, v, runs)
            else:
                _band_max(u8, blocks, y0, y1, x0, x1, profile)
                k = _runs_at_least(profile, x0, x1, v, runs)
            if k != 1:
                top = _push_bands(stack, top, runs, k, False, x0, y0, x1, y1)
                if top < 0:
                    return -1
                break
            if runs[0, 0] == x0 and runs[0, 1] == x1:
                final = True  # no narrower in either direction: a cell
                break
            whole = False
            x0, x1 = runs[0, 0], runs[0, 1]
        if final:
            if n == cap:
                return -1
            cells[n] = (x0, y0, x1, y1)
            n += 1
    return n


@njit(cache=True)
def window_lows(u8, low1, low2):
    """Smallest (``low1``) and second smallest (``low2``) value of every 2x2 window, indexed by its top-left
    pixel (arrays h x w; the last row and column are unused). Vectorised."""
    h, w = u8.shape
    W = uint64(w)
    f, l1, l2 = u8.ravel(), low1.ravel(), low2.ravel()
    for y in range(h - 1):
        top = uint64(y) * W
        bottom = top + W
        for x in range(top, top + W - _U1):
            a, b, c, d = f[x], f[x + _U1], f[bottom - top + x], f[bottom - top + x + _U1]
            lo_ab, hi_ab, lo_cd, hi_cd = min(a, b), max(a, b), min(c, d), max(c, d)
            l1[x] = min(lo_ab, lo_cd)
            l2[x] = min(max(lo_ab, lo_cd), min(hi_ab, hi_cd))


@njit(cache=True)
def _window_count(low1, low2, x0, y0, x1, y1, v, three, limit):
    """2x2 windows with their top-left pixel in [x0, x1) x [y0, y1) at level v: how many have 4 foreground
    pixels (``low1`` >= v), plus (``three``) how many have 3 or more (``low2`` >= v); stops once the count
    exceeds ``limit``. Twice the contour area of a hole-free component is the count with ``three`` (unit
    squares and half squares inside its outer contour); full windows alone bound any component's area from
    below."""
    W = uint64(low1.shape[1])
    l1, l2 = low1.ravel(), low2.ravel()
    lo, hi = uint64(x0), uint64(x1)
    vv = np.uint8(v)
    total = 0
    for y in range(y0, y1):
        base = uint64(y) * W
        row = uint64(0)
        if three:
            for x in range(base + lo, base + hi):
                row += uint64(l1[x] >= vv) + uint64(l2[x] >= vv)
        else:
            for x in range(base + lo, base + hi):
                row += uint64(l1[x] >= vv)
        total += np.int64(row)
        if total > limit:
            break
    return total


@njit(cache=True)
def _largest_by_windows(cells, n_cells, v, low1, low2, minima, escape):
    """The cell whose outer contour certainly has the largest area, or -1 (unsure or a tie).

    Cells are counted biggest box first; a cell whose box bound cannot reach the best count so far is skipped.
    """
    bound = np.empty(n_cells, np.int64)  # twice the largest possible contour area in the box
    for c in range(n_cells):
        bound[c] = 2 * (cells[c, 2] - cells[c, 0]) * (cells[c, 3] - cells[c, 1])
    order = np.empty(n_cells, np.int64)  # biggest bound first (insertion sort: few cells)
    for c in range(n_cells):
        j = c
        while j > 0 and bound[order[j - 1]] < bound[c]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = c
    best, best_lo, best_hi, rival_hi = -1, -1, -1, -1  # best certain count; the highest upper bound of the others
    for c in order:
        if bound[c] < best_lo:
            rival_hi = max(rival_hi, bound[c])
            continue
        x0, y0, x1, y1 = cells[c, 0], cells[c, 1], cells[c, 2], cells[c, 3]
        lo = _window_count(low1, low2, x0, y0, x1, y1, v, True, 1 << 62)  # exact for a hole-free component
        hi = lo
        for m in range(minima.shape[0]):
            if minima[m, 0] >= v:
                break
            if escape[m] >= v and x0 < minima[m, 2] < x1 and y0 < minima[m, 1] < y1:  # may hold a hole
                hi = bound[c]
                break
        if lo > best_lo:
            if best >= 0:
                rival_hi = max(rival_hi, best_hi)
            best, best_lo, best_hi = c, lo, hi
        else:
            rival_hi = max(rival_hi, hi)
    if rival_hi >= best_lo:
        return -1
    return best


@njit(cache=True)
def scan_levels(start, values, extents, u8, turned, blocks, turned_blocks, row_max, col_max, maxima, group, links,
                minima, escape, minima_known, largest, low1, low2, boxes, counts, cell_of_max, need):
    """Certified boxes of levels ``start, start + 1, ...`` (``values`` descending: foreground ``u8 >= v``).

    - A component holds a regional maximum: where all maxima alive (value >= v) are known connected
      (``group``, a union-find over ``maxima``; ``links`` (level, a, b), highest first, are joined on the way
      down; the caller joins more from contour searches) there is one component, the foreground's extent.
    - Otherwise the foreground is cut into cells by empty rows and columns (``_xy_cells``, from the map, its
      transpose ``turned`` and their block maxima); a cell whose maxima are all in one group is one component
      and its box is the cell.
    - All-regions rule: a hole holds an interior minimum below v, strictly inside its component's box and
      with ``escape`` >= v; a cell with none has no hole.
    - Largest-region rule, several cells: the cell B with the biggest box wins when its full 2x2 windows (unit
      squares inside its outer contour, counted from ``low1`` in B's box) outnumber the box area (w - 1)(h - 1)
      of every other cell, which bounds every contour in it; failing that, windows are counted per cell:
      twice a hole-free component's contour area is (windows >= 3 of its pixels) + (windows with 4), and a
      lower bound of it with holes; a rival cell that may hold a hole (see above: ``minima``, needed here in
      both rules) is only bounded by its box.
    Writes ``boxes[i, :counts[i]]`` and returns the first level not certified (``len(values)`` when none), its
    cells in ``boxes[i]`` (``counts[i] = -(cells + 1)``) and each alive maximum's cell in ``cell_of_max``. It also
    returns where ``blocks`` (empty: ``fill_block_maxima``), ``low1``/``low2`` (``window_lows``) or
    ``minima`` (``minima_known`` False) are needed but still empty, with ``need[0]`` = 1, 2 or 3; a level left
    uncertain only by a possible hole (all-regions rule) says so with ``need[0]`` = 5.
    """
    n_levels = values.shape[0]
    cap = boxes.shape[1]
    n_max = maxima.shape[0]
    cells = np.empty((cap, 4), np.int64)
    stack = np.empty((4 * cap + 4, 4), np.int64)  # scratch of _xy_cells
    profile = np.empty(max(u8.shape[0], u8.shape[1]), np.uint8)
    runs = np.empty((stack.shape[0], 2), np.int64)  # as many bands as the stack holds
    first_root = np.empty(cap, np.int64)
    link = 0
    for i in range(start, n_levels):
        v = values[i]
        while link < links.shape[0] and links[link, 0] >= v:
            ra, rb = find(group, links[link, 1]), find(group, links[link, 2])
            if ra != rb:
                group[rb] = ra
            link += 1
        alive = 0
        while alive < n_max and maxima[alive, 0] >= v:
            alive += 1
        root = find(group, 0) if alive > 0 else -1
        one_group = alive > 0
        for m in range(1, alive):
            if find(group, m) != root:
                one_group = False
                break
        if one_group:
            cells[0] = extents[i]
            n_cells = 1
        else:
            if blocks.shape[0] == 0:
                need[0] = 1
                return i
            n_cells = _xy_cells(u8, turned, blocks, turned_blocks, row_max, col_max, v, extents[i], cells, stack,
                                profile, runs)
        certain = n_cells > 0
        for m in range(alive):
            cell_of_max[m] = -1
        if certain:
            # each alive maximum's cell; a cell with maxima of two groups may hold two components
            first_root[:n_cells] = -1
            for m in range(alive):
                y, x = maxima[m, 1], maxima[m, 2]
                for c in range(n_cells):
                    if cells[c, 0] <= x <= cells[c, 2] and cells[c, 1] <= y <= cells[c, 3]:
                        cell_of_max[m] = c
                        r = find(group, m)
                        if first_root[c] < 0:
                            first_root[c] = r
                        elif first_root[c] != r:
                            certain = False
                        break
        if certain and not largest:
            for m in range(minima.shape[0]):
                if minima[m, 0] >= v:
                    break  # sorted ascending: the rest are foreground
                if escape[m] < v:
                    continue  # its background runs straight to the border
                y, x = minima[m, 1], minima[m, 2]
                for c in range(n_cells):
                    if cells[c, 0] < x < cells[c, 2] and cells[c, 1] < y < cells[c, 3]:
                        certain = False
                        break
                if not certain:
                    need[0] = 5  # the outer contours are certain; a hole may be there
                    break
        if certain and largest and n_cells > 1:
            best = 0
            for c in range(1, n_cells):
                area_c = (cells[c, 2] - cells[c, 0]) * (cells[c, 3] - cells[c, 1])
                if area_c > (cells[best, 2] - cells[best, 0]) * (cells[best, 3] - cells[best, 1]):
                    best = c
            runner_up = 0
            for c in range(n_cells):
                if c != best:
                    runner_up = max(runner_up, (cells[c, 2] - cells[c, 0]) * (cells[c, 3] - cells[c, 1]))
            b = cells[best]
            if low1.shape[0] == 0:
                need[0] = 2
                return i
            if _window_count(low1, low2, b[0], b[1], b[2], b[3], v, False, runner_up) > runner_up:
                cells[0] = cells[best]
                n_cells = 1
            else:
                if not minima_known:
                    need[0] = 3
                    return i
                best = _largest_by_windows(cells, n_cells, v, low1, low2, minima, escape)
                if best >= 0:
                    cells[0] = cells[best]
                    n_cells = 1
                else:
                    certain = False
        if not certain:
            if n_cells > 0:
                boxes[i, :n_cells] = cells[:n_cells]
            counts[i] = -(max(n_cells, 0) + 1)
            return i
        boxes[i, :n_cells] = cells[:n_cells]
        counts[i] = n_cells
    return n_levels


@njit(cache=True)
def mixed_cells(cells, cell_of_max, group):
    """Whether some cell holds maxima of two groups (not yet known to be connected)."""
    first = np.full(cells.shape[0], -1, np.int64)
    for m in range(cell_of_max.shape[0]):
        c = cell_of_max[m]
        if c >= 0:
            r = find(group, m)
            if first[c] < 0:
                first[c] = r
            elif first[c] != r:
                return True
    return False


@njit(cache=True)
def learn_merges(cells, cell_of_max, outer, group):
    """A cell holding exactly one outer contour (``outer``: their boxes) is one component: join its maxima."""
    for c in range(cells.shape[0]):
        inside = 0
        for k in range(outer.shape[0]):
            if cells[c, 0] <= outer[k, 0] and outer[k, 2] <= cells[c, 2] and cells[c, 1] <= outer[k, 1] and outer[k, 3] <= cells[c, 3]:
                inside += 1
        if inside != 1:
            continue
        root = -1
        for m in range(cell_of_max.shape[0]):
            if cell_of_max[m] == c:
                r = find(group, m)
                if root < 0:
                    root = r
                elif r != root:
                    group[r] = root


@njit(cache=True)
def distinct_levels(cuts, top):
    """Distinct cuts as levels, highest first: (values ``cut + 1`` of the levels with foreground, i.e.
    ``<= top``; how many levels have none; each cut's level)."""
    order = np.argsort(cuts)
    n = cuts.shape[0]
    level_of = np.empty(n, np.int64)
    distinct = np.empty(n, np.int64)
    k = 0
    for r in range(n - 1, -1, -1):  # highest cut first
        c = cuts[order[r]]
        if k == 0 or distinct[k - 1] != c:
            distinct[k] = c
            k += 1
        level_of[order[r]] = k - 1
    n_empty = 0
    while n_empty < k and distinct[n_empty] + 1 > top:
        n_empty += 1
    values = distinct[n_empty:k] + 1
    return values, n_empty, level_of


@njit(cache=True)
def levels_and_extents(u8, thresholds):
    """The levels of ``thresholds`` (1-D float64) on ``u8``: the reference's cut ``int(t * max)`` of each
    (float64 product, truncated), as ``distinct_levels`` returns them, with each level's foreground box, and
    the map's row and column maxima it comes from."""
    rows, cols = row_col_max(u8)
    top = 0
    for y in range(rows.shape[0]):
        top = max(top, np.int64(rows[y]))
    cuts = np.empty(thresholds.shape[0], np.int64)
    for j in range(thresholds.shape[0]):
        cuts[j] = np.int64(thresholds[j] * np.float64(top))
    values, n_empty, level_of = distinct_levels(cuts, top)
    return values, n_empty, level_of, _extents_of(rows, cols, values), rows, cols
