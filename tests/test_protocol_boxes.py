"""Boxes at every threshold: hand-built maps with known boxes, and the fast path against the reference."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolbench.protocols.level_boxes import MAX_MAXIMA, NO_REGION, interior_minima, regional_maxima, threshold_boxes
from wsolbench.registry import PROTOCOLS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_boxes import reference_boxes  # noqa: E402


def boxes_at(u8, t, multi):
    """Fast (the certified scan and the component tree) and reference boxes at one threshold, as sorted lists
    (order carries no meaning)."""
    ref = reference_boxes(u8, [t], multi)[0]
    key = lambda b: sorted(map(tuple, np.asarray(b).tolist()))  # noqa: E731
    for mode in ("one-pass", "tree"):
        assert key(threshold_boxes(u8, np.array([t]), multi, mode=mode).at_threshold(0)) == key(ref), mode
    return key(ref)


def test_two_blobs():
    u = np.zeros((40, 40), np.uint8)
    u[3:9, 2:10] = 255  # 8 x 6 pixels: contour area 7 * 5 = 35
    u[20:27, 20:25] = 200  # 5 x 7 pixels: contour area 4 * 6 = 24
    assert boxes_at(u, 0.0, multi=True) == [(2, 3, 9, 8), (20, 20, 24, 26)]
    assert boxes_at(u, 0.0, multi=False) == [(2, 3, 9, 8)]
    assert boxes_at(u, 0.9, multi=True) == [(2, 3, 9, 8)]  # cut int(0.9 * 255) = 229 > 200


def test_smaller_area_but_more_pixels_loses_to_contour_area():
    # a 1 x 12 line has 12 pixels but contour area 0; a 3 x 3 square has 9 pixels and area 4
    u = np.zeros((20, 20), np.uint8)
    u[2, 1:13] = 255
    u[10:13, 10:13] = 255
    assert boxes_at(u, 0.5, multi=False) == [(10, 10, 12, 12)]


def test_ring_with_hole_gives_the_hole_border_box():
    u = np.zeros((32, 32), np.uint8)
    u[5:26, 5:26] = 255
    u[8:23, 8:23] = 0  # hole: x, y in 8..22
    assert boxes_at(u, 0.5, multi=True) == [(5, 5, 25, 25), (7, 7, 23, 23)]  # hole box grown by one pixel
    assert boxes_at(u, 0.5, multi=False) == [(5, 5, 25, 25)]


def test_map_touching_the_border():
    u = np.zeros((40, 40), np.uint8)
    u[30:40, 0:10] = 255
    assert boxes_at(u, 0.5, multi=True) == [(0, 30, 9, 39)]
    wsoleval = PROTOCOLS.build("wsoleval")
    # the benchmark's box is (x, y, x + w, y + h), clipped to the last pixel
    assert wsoleval.boxes_in_convention(np.array([[0, 30, 9, 39]]), 40, 40).tolist() == [[0, 30, 10, 39]]


def test_constant_and_zero_maps():
    flat = np.full((16, 24), 100, np.uint8)  # every pixel > int(t * 100) for t < 1
    for t in (0.0, 0.5, 0.99):
        assert boxes_at(flat, t, multi=True) == [(0, 0, 23, 15)]
    zero = np.zeros((16, 24), np.uint8)
    assert boxes_at(zero, 0.0, multi=True) == [NO_REGION]
    assert boxes_at(zero, 0.5, multi=False) == [NO_REGION]
    # a constant float map normalises to zeros: no region, the benchmark's box (0, 0, 0, 0)
    proto = PROTOCOLS.build("wsoleval", interval=0.1)
    u8 = (proto.prepare_map(np.full((7, 7), 3.0), 50, 50) * 255).astype(np.uint8)
    assert u8.max() == 0
    assert proto.boxes_in_convention(np.array([NO_REGION]), 224, 224).tolist() == [[0, 0, 0, 0]]


def _random_maps(rng, count):
    maps = []
    for i in range(count):
        size = int(rng.integers(16, 64))
        kind = i % 3
        if kind == 0:  # smooth: a small random grid, bicubic upsampled (CAM-like)
            grid = rng.random((int(rng.integers(2, 9)),) * 2).astype(np.float32)
            m = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        elif kind == 1:  # noisy
            m = rng.random((size, int(rng.integers(16, 64))))
        else:  # smooth plus noise, coarsely quantised: plateaus, holes, ties
            grid = rng.random((5, 5)).astype(np.float32)
            m = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) + 0.2 * rng.random((size, size))
            m = np.round(m * 6) / 6
        m = m - m.min()
        maps.append((m / max(m.max(), 1e-9) * 255).astype(np.uint8))
    return maps


@pytest.mark.parametrize("multi", [False, True], ids=["largest", "multi"])
def test_fast_path_equals_reference_at_every_threshold(multi):
    rng = np.random.default_rng(7 + multi)
    thresholds = np.arange(0, 1, 0.01)
    for i, u8 in enumerate(_random_maps(rng, 150)):
        ref = reference_boxes(u8, thresholds, multi)
        # the certified one-pass scan and the component tree on every map (also where "auto" would pick
        # another path), and "auto"
        for mode in ("one-pass", "tree", "auto") if i % 5 == 0 else ("one-pass", "tree"):
            fast = threshold_boxes(u8, thresholds, multi, mode=mode)
            for j in range(len(thresholds)):
                got = sorted(map(tuple, fast.at_threshold(j).tolist()))
                want = sorted(map(tuple, ref[j].tolist()))
                assert got == want, (u8.shape, thresholds[j], mode)


def test_fast_path_equals_reference_at_the_benchmark_size_and_interval():
    rng = np.random.default_rng(3)
    thresholds = np.arange(0, 1, 0.001)
    for grid in (7, 28):
        m = cv2.resize(rng.random((grid, grid)).astype(np.float32), (224, 224), interpolation=cv2.INTER_CUBIC)
        u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
        for multi in (False, True):
            ref = reference_boxes(u8, thresholds, multi)
            for mode in ("one-pass", "tree"):
                fast = threshold_boxes(u8, thresholds, multi, mode=mode)
                for j in range(0, len(thresholds)):
                    assert sorted(map(tuple, fast.at_threshold(j).tolist())) == sorted(map(tuple, ref[j].tolist())), mode


def _same_as_reference(u8, thresholds, multi, modes=("one-pass", "tree", "auto")):
    ref = reference_boxes(u8, thresholds, multi)
    for mode in modes:
        fast = threshold_boxes(u8, np.asarray(thresholds), multi, mode=mode)
        for j in range(len(thresholds)):
            got = sorted(map(tuple, fast.at_threshold(j).tolist()))
            assert got == sorted(map(tuple, ref[j].tolist())), (mode, thresholds[j])


def test_blob_inside_a_ring_and_a_ring_with_an_outlet():
    u = np.zeros((48, 48), np.uint8)
    u[4:40, 4:40] = 200  # ring ...
    u[10:34, 10:34] = 20  # ... around a hole of value 20
    u[18:26, 18:26] = 255  # a peak inside the hole: a component inside another's hole
    assert boxes_at(u, 0.5, multi=True) == [(4, 4, 39, 39), (9, 9, 34, 34), (18, 18, 25, 25)]
    assert boxes_at(u, 0.5, multi=False) == [(4, 4, 39, 39)]
    assert boxes_at(u, 0.05, multi=True) == [(4, 4, 39, 39)]  # cut 12 < 20: the hole is filled
    u[20:22, 0:10] = 20  # an outlet from the hole to the border: no hole any more
    # the outlet (value 20, background at cut 127) opens the ring: one outer contour, the ring's box
    assert boxes_at(u, 0.5, multi=True) == [(4, 4, 39, 39), (18, 18, 25, 25)]
    _same_as_reference(u, np.arange(0, 1, 0.01), True)
    _same_as_reference(u, np.arange(0, 1, 0.01), False)


def test_components_no_empty_row_or_column_separates():
    # an L and a square in its corner: boxes overlap on both axes, so only a contour search tells them apart
    u = np.zeros((40, 40), np.uint8)
    u[2:30, 2:6] = 180
    u[26:30, 2:30] = 180
    u[8:20, 12:24] = 240
    assert boxes_at(u, 0.5, multi=True) == [(2, 2, 29, 29), (12, 8, 23, 19)]
    # contour areas: the square 11 * 11 = 121; the L 3 * 27 (upright) + 24 * 3 (foot) = 153
    assert boxes_at(u, 0.5, multi=False) == [(2, 2, 29, 29)]
    u[8:20, 12:24] = 0
    u[6:22, 10:26] = 240  # square 15 * 15 = 225 > 153
    assert boxes_at(u, 0.5, multi=False) == [(10, 6, 25, 21)]
    for multi in (False, True):
        _same_as_reference(u, np.arange(0, 1, 0.01), multi)


def test_equal_areas_are_settled_in_opencv_order():
    # two identical squares, either side of an empty column: equal contour areas, so OpenCV's list order
    # decides (it lists sibling contours last found first: the square starting lower wins)
    u = np.zeros((30, 40), np.uint8)
    u[5:15, 3:13] = 255
    u[12:22, 25:35] = 255
    assert boxes_at(u, 0.5, multi=False) == [(25, 12, 34, 21)]
    u2 = np.zeros((30, 40), np.uint8)  # the mirror image: now the left square starts lower
    u2[12:22, 3:13] = 255
    u2[5:15, 25:35] = 255
    assert boxes_at(u2, 0.5, multi=False) == [(3, 12, 12, 21)]


def test_two_blobs_close_in_size_and_ringing_like_a_bicubic_cam():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:7, 0:7]
    for _ in range(4):
        f = np.zeros((7, 7))
        for _ in range(3):
            cy, cx = rng.uniform(0, 7, 2)
            f += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(0.8, 2.5) ** 2))
        m = cv2.resize(f.astype(np.float32), (96, 96), interpolation=cv2.INTER_CUBIC)
        u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
        for multi in (False, True):
            _same_as_reference(u8, np.arange(0, 1, 0.01), multi, modes=("one-pass",))


def test_odd_shapes_and_thresholds():
    rng = np.random.default_rng(11)
    row = (rng.random((1, 30)) * 255).astype(np.uint8)
    for u8 in (row, row.T.copy(), np.full((1, 1), 7, np.uint8), (rng.random((9, 2)) * 255).astype(np.uint8)):
        for multi in (False, True):
            _same_as_reference(u8, [0.0, 0.3, 0.999], multi)
    u8 = (rng.random((20, 20)) * 255).astype(np.uint8)
    for multi in (False, True):  # unsorted, repeated, out of [0, 1)
        _same_as_reference(u8, [0.9, -0.2, 0.1, 1.0, 1.5, 0.1], multi)
    for mode in ("auto", "tree", "one-pass"):
        assert len(threshold_boxes(u8, np.zeros(0), True, mode=mode).start) == 1


def test_auto_hands_a_map_with_many_maxima_to_the_component_tree(monkeypatch):
    import wsolbench.protocols.level_boxes as level_boxes

    calls = []
    real = level_boxes._from_tree
    monkeypatch.setattr(level_boxes, "_from_tree", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    rng = np.random.default_rng(21)
    m = cv2.resize(rng.random((7, 7)).astype(np.float32), (96, 80), interpolation=cv2.INTER_CUBIC)
    u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    peaks = regional_maxima(u8)[:, 0]
    assert level_boxes.FEW_MAXIMA < np.count_nonzero(peaks * 4 >= peaks[0]) <= len(peaks) <= level_boxes.MAX_MAXIMA
    for multi in (False, True):
        calls.clear()
        _same_as_reference(u8, np.arange(0, 1, 0.01), multi, modes=("auto",))
        assert calls == [0]  # the whole map from the tree
    # one peak and low ripples: many low maxima (as a trained CAM has), which the scan settles cheaply
    blob = 0.03 * rng.random((8, 8)).astype(np.float32)
    blob[3, 4] = 1.0
    m = cv2.resize(blob, (96, 80), interpolation=cv2.INTER_CUBIC)
    ringing = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    assert len(regional_maxima(ringing)) > level_boxes.FEW_MAXIMA
    calls.clear()
    for multi in (False, True):
        _same_as_reference(ringing, np.arange(0, 1, 0.01), multi, modes=("auto",))
    assert calls == []


def test_holes_at_many_levels_come_from_the_background_pass(monkeypatch):
    # one blob with six pits on its slopes: a hole at every level above each pit's bottom, so the scan hands
    # the holes of the levels to come over to the background pass and certifies only the outer contour
    import wsolbench.protocols.level_boxes as level_boxes

    calls = []
    real = level_boxes.hole_rows
    monkeypatch.setattr(level_boxes, "hole_rows", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    yy, xx = np.mgrid[0:80, 0:96]
    m = np.exp(-((yy - 40) ** 2 + (xx - 48) ** 2) / (2 * 30.0**2))
    rng = np.random.default_rng(3)
    for _ in range(6):
        cy, cx = rng.uniform(15, 65), rng.uniform(15, 80)
        m -= rng.uniform(0.1, 0.4) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 4) ** 2))
    u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    assert len(regional_maxima(u8)) == 1 and len(interior_minima(u8)) == 6
    _same_as_reference(u8, np.arange(0, 1, 0.005), True, modes=("auto",))
    assert len(calls) == 1 and calls[0] > 0  # from a level on, after a few levels searched for holes


def test_component_tree_on_a_large_non_square_map():
    # the cub / ilsvrc presets score maps at the image's own size
    rng = np.random.default_rng(22)
    m = cv2.resize(rng.random((28, 28)).astype(np.float32), (500, 375), interpolation=cv2.INTER_CUBIC)
    m += 0.05 * rng.random(m.shape).astype(np.float32)
    u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    for multi in (False, True):
        _same_as_reference(u8, np.arange(0, 1, 0.05), multi, modes=("tree", "auto"))


def test_opencv_contour_order_is_known_for_settling_equal_areas():
    from wsolbench.protocols.level_boxes import _opencv_tie_order

    # 0 would still be exact (ties searched), but slower; this OpenCV lists separate contours last first
    assert _opencv_tie_order() in (1, -1)


def test_noisy_map_takes_the_per_level_search_with_the_same_boxes():
    rng = np.random.default_rng(2)
    u8 = (rng.random((40, 40)) * 255).astype(np.uint8)  # hundreds of maxima: "auto" searches every level
    assert len(regional_maxima(u8)) > MAX_MAXIMA
    for multi in (False, True):
        _same_as_reference(u8, np.arange(0, 1, 0.05), multi, modes=("auto", "one-pass", "per-level", "tree"))


def _flat_zones(u8, connectivity):
    """Brute force: (zone label image, {label: is an extremum}) for maxima, and the same for minima."""
    kernel = np.ones((3, 3), np.uint8) if connectivity == 8 else cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    labels = np.zeros(u8.shape, np.int64)
    offset = 0
    for v in np.unique(u8):
        n, lab = cv2.connectedComponents((u8 == v).view(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S)
        labels[lab > 0] = lab[lab > 0] + offset
        offset += n
    is_max, is_min = {}, {}
    for z in np.unique(labels):
        zone = (labels == z).view(np.uint8)
        ring = cv2.dilate(zone, kernel) - zone
        v = int(u8[zone > 0][0])
        is_max[z] = v > 0 and bool((u8[ring > 0] < v).all())
        ys, xs = np.nonzero(zone)
        inside = ys.min() > 0 and xs.min() > 0 and ys.max() < u8.shape[0] - 1 and xs.max() < u8.shape[1] - 1
        is_min[z] = inside and bool((u8[ring > 0] > v).all())
    return labels, is_max, is_min


def test_regional_maxima_and_interior_minima_against_brute_force():
    # sizes whose padded rows (w + 2) end inside, at and past a word of 8 pixels: plateau runs then start,
    # end and go on across words, and reach the right border
    rng = np.random.default_rng(4)
    for h, w in ((20, 24), (20, 24), (9, 30), (14, 62), (11, 71), (7, 5)) * 2:
        grid = rng.random((4, 4)).astype(np.float32)
        m = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) + 0.3 * rng.random((h, w))
        u8 = np.round((m - m.min()) / (m.max() - m.min()) * 5).astype(np.uint8) * 40  # plateaus
        maxima = regional_maxima(u8)
        labels8, is_max, _ = _flat_zones(u8, 8)
        found = {int(labels8[y, x]) for _, y, x in maxima.tolist()}
        assert len(found) == len(maxima) and found == {z for z, ok in is_max.items() if ok}
        assert [v for v, _, _ in maxima.tolist()] == sorted((v for v, _, _ in maxima.tolist()), reverse=True)
        # minima: each listed one is a true interior minimum, and every hole at every level holds one
        minima = interior_minima(u8)
        labels4, _, is_min = _flat_zones(u8, 4)
        assert all(is_min[int(labels4[y, x])] for _, y, x in minima.tolist())
        for v in np.unique(u8)[1:]:
            n, holes = cv2.connectedComponents((u8 < v).view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
            border = set(holes[0].tolist()) | set(holes[-1].tolist()) | set(holes[:, 0].tolist()) | set(holes[:, -1].tolist())
            for h in set(range(1, n)) - border:
                assert any(holes[y, x] == h for value, y, x in minima.tolist() if value < v)


def test_cells_of_rectangles_that_cross_block_boundaries():
    # blobs placed so that cells start and end inside, at and across the 16-row blocks of the row/column maxima
    for h, w in ((50, 40), (33, 17), (16, 48), (17, 16)):
        rng = np.random.default_rng(h * w)
        u8 = np.zeros((h, w), np.uint8)
        for _ in range(6):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            u8[y : y + int(rng.integers(1, 9)), x : x + int(rng.integers(1, 9))] = rng.integers(40, 255)
        for multi in (False, True):
            _same_as_reference(u8, np.arange(0, 1, 0.05), multi, modes=("one-pass",))


def test_line_links_take_the_smallest_value_on_the_rounded_straight_line():
    from wsolbench.protocols._level_boxes_kernels import line_links

    rng = np.random.default_rng(12)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(2, 50, 2))
        u8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
        n = int(rng.integers(1, 10))
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        maxima = np.stack([u8[ys, xs], ys, xs], 1).astype(np.int64)
        links = line_links(u8, maxima, 4)
        assert len(links) == n * min(4, n - 1)
        assert list(links[:, 0]) == sorted(links[:, 0], reverse=True)
        for low, a, b in links.tolist():
            (y0, x0), (y1, x1) = maxima[a, 1:], maxima[b, 1:]
            steps = max(abs(y1 - y0), abs(x1 - x0))
            # point s of the line rounded to the nearest pixel, written with plain floor divisions
            line = [(y0 + ((y1 - y0) * s * 2 + steps) // (2 * steps), x0 + ((x1 - x0) * s * 2 + steps) // (2 * steps)) for s in range(1, steps)]
            assert low == min(int(u8[y, x]) for y, x in [(y0, x0), (y1, x1), *line])


def test_regional_maxima_on_maps_of_alternating_widths():
    # widths 23 and 17 share the scratch mask's padded width (24): the narrower call must not see the wider
    # call's candidates past its own columns
    rng = np.random.default_rng(5)
    for width in (23, 17, 23, 20, 17):
        grid = rng.random((3, 3)).astype(np.float32)
        u8 = (cv2.resize(grid, (width, 15), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 6).round().astype(np.uint8) * 40
        labels8, is_max, _ = _flat_zones(u8, 8)
        found = {int(labels8[y, x]) for _, y, x in regional_maxima(u8).tolist()}
        assert found == {z for z, ok in is_max.items() if ok}


def test_largest_rule_counts_a_rival_ring_by_its_outer_contour():
    # a thin diagonal band has more full 2x2 windows than a thin square ring, but the ring's outer contour
    # encloses its hole: the ring is the largest region (its box, not the band's)
    for width, length, ring in ((2, 10, 1), (3, 20, 2), (4, 30, 3)):
        u8 = np.zeros((64, 64), np.uint8)
        for k in range(length):
            u8[2 + k, 2 + k : 2 + k + width] = 200
        u8[2, 2] = 250
        u8[46:60, 46:60] = 150
        u8[46 + ring : 60 - ring, 46 + ring : 60 - ring] = 0
        u8[46, 46] = 180
        assert boxes_at(u8, 0.3, multi=False) == [(46, 46, 59, 59)]
        _same_as_reference(u8, np.arange(0, 1, 0.02), multi=False)


def test_row_of_a_pixel_index_without_integer_division():
    from wsolbench.protocols._component_tree import _row_of

    rng = np.random.default_rng(8)
    for w in [1, 2, 3, 7, 224, 500, 4099, 65536, 99991] + rng.integers(1, 100000, 20).tolist():
        rows = rng.integers(0, 100_000_000 // w + 1, 50)
        for p in np.concatenate([rows * w, rows * w + w - 1, rows * w + rng.integers(0, w, 50)]).tolist():
            assert _row_of(p, 1.0 / w) == p // w


def test_tree_on_the_filled_map_gives_the_largest_rule_without_searches():
    # the largest rule from the tree on the map with its holes filled: the reference's box at every level,
    # with no level left to a contour search (OpenCV's tie order is probed), on noisy maps full of holes
    from wsolbench.protocols.level_boxes import filled, threshold_cuts, tree_rows

    rng = np.random.default_rng(9)
    left_by_plain_tree = 0
    for u8 in _random_maps(rng, 45) + [_rings(rng) for _ in range(5)]:
        thresholds = np.arange(0, 1, 0.01)
        values = np.unique(threshold_cuts(u8, thresholds))[::-1] + 1
        values = values[values <= u8.max()]
        e = filled(u8)
        assert (e >= u8).all()
        levels, rows, to_search = tree_rows(u8, values, False, fill=True)
        assert to_search == []
        assert sorted(levels.tolist()) == list(range(len(values)))
        for lev, box in zip(levels.tolist(), rows.tolist()):
            ref = reference_boxes(u8, [(values[lev] - 1) / float(u8.max()) + 1e-9], False)[0]
            assert [tuple(box)] == [tuple(b) for b in ref.tolist()], lev
        left_by_plain_tree += len(tree_rows(u8, values, False)[2])
    assert left_by_plain_tree > 0  # the maps do hold levels the plain tree cannot settle


def _rings(rng):
    """Nested square rings of random values: holes inside holes at many levels."""
    u8 = np.zeros((int(rng.integers(20, 60)), int(rng.integers(20, 60))), np.uint8)
    for k in range(min(u8.shape) // 4):
        u8[2 * k : u8.shape[0] - 2 * k, 2 * k : u8.shape[1] - 2 * k] = rng.integers(0, 256)
    return u8
