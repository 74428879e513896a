"""Boxes at every threshold: hand-built maps with known boxes, and the fast path against the reference."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolbench.protocols.level_boxes import NO_REGION, threshold_boxes
from wsolbench.registry import PROTOCOLS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_boxes import reference_boxes  # noqa: E402


def boxes_at(u8, t, multi):
    """Fast and reference boxes at one threshold, as sorted lists (order carries no meaning)."""
    ref = reference_boxes(u8, [t], multi)[0]
    key = lambda b: sorted(map(tuple, np.asarray(b).tolist()))  # noqa: E731
    assert key(threshold_boxes(u8, np.array([t]), multi).at_threshold(0)) == key(ref)
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
        fast = threshold_boxes(u8, thresholds, multi)
        for j in range(len(thresholds)):
            got = sorted(map(tuple, fast.at_threshold(j).tolist()))
            want = sorted(map(tuple, ref[j].tolist()))
            assert got == want, (i, u8.shape, thresholds[j])


def test_fast_path_equals_reference_at_the_benchmark_size_and_interval():
    rng = np.random.default_rng(3)
    thresholds = np.arange(0, 1, 0.001)
    for grid in (7, 28):
        m = cv2.resize(rng.random((grid, grid)).astype(np.float32), (224, 224), interpolation=cv2.INTER_CUBIC)
        u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
        for multi in (False, True):
            ref = reference_boxes(u8, thresholds, multi)
            fast = threshold_boxes(u8, thresholds, multi)
            for j in range(0, len(thresholds)):
                assert sorted(map(tuple, fast.at_threshold(j).tolist())) == sorted(map(tuple, ref[j].tolist())), j


def _same_as_reference(u8, thresholds, multi):
    ref = reference_boxes(u8, thresholds, multi)
    fast = threshold_boxes(u8, np.asarray(thresholds), multi)
    for j in range(len(thresholds)):
        got = sorted(map(tuple, fast.at_threshold(j).tolist()))
        assert got == sorted(map(tuple, ref[j].tolist())), thresholds[j]


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
            _same_as_reference(u8, np.arange(0, 1, 0.01), multi)


def test_odd_shapes_and_thresholds():
    rng = np.random.default_rng(11)
    row = (rng.random((1, 30)) * 255).astype(np.uint8)
    for u8 in (row, row.T.copy(), np.full((1, 1), 7, np.uint8), (rng.random((9, 2)) * 255).astype(np.uint8)):
        for multi in (False, True):
            _same_as_reference(u8, [0.0, 0.3, 0.999], multi)
    u8 = (rng.random((20, 20)) * 255).astype(np.uint8)
    for multi in (False, True):  # unsorted, repeated, out of [0, 1)
        _same_as_reference(u8, [0.9, -0.2, 0.1, 1.0, 1.5, 0.1], multi)
    assert len(threshold_boxes(u8, np.zeros(0), True).start) == 1


def test_many_maxima_and_a_peak_with_low_ripples():
    # the maps that once chose between paths: many maxima of a quarter of the top; one peak with ringing
    rng = np.random.default_rng(21)
    m = cv2.resize(rng.random((7, 7)).astype(np.float32), (96, 80), interpolation=cv2.INTER_CUBIC)
    u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    blob = 0.03 * rng.random((8, 8)).astype(np.float32)
    blob[3, 4] = 1.0
    m = cv2.resize(blob, (96, 80), interpolation=cv2.INTER_CUBIC)
    ringing = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    for multi in (False, True):
        _same_as_reference(u8, np.arange(0, 1, 0.01), multi)
        _same_as_reference(ringing, np.arange(0, 1, 0.01), multi)


def test_holes_at_many_levels():
    # one blob with six pits on its slopes: a hole at every level above each pit's bottom
    yy, xx = np.mgrid[0:80, 0:96]
    m = np.exp(-((yy - 40) ** 2 + (xx - 48) ** 2) / (2 * 30.0**2))
    rng = np.random.default_rng(3)
    for _ in range(6):
        cy, cx = rng.uniform(15, 65), rng.uniform(15, 80)
        m -= rng.uniform(0.1, 0.4) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 4) ** 2))
    u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    for multi in (False, True):
        _same_as_reference(u8, np.arange(0, 1, 0.005), multi)


def test_component_tree_on_a_large_non_square_map():
    # the cub / ilsvrc presets score maps at the image's own size
    rng = np.random.default_rng(22)
    m = cv2.resize(rng.random((28, 28)).astype(np.float32), (500, 375), interpolation=cv2.INTER_CUBIC)
    m += 0.05 * rng.random(m.shape).astype(np.float32)
    u8 = ((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8)
    for multi in (False, True):
        _same_as_reference(u8, np.arange(0, 1, 0.05), multi)


def test_noisy_map_with_hundreds_of_maxima():
    rng = np.random.default_rng(2)
    u8 = (rng.random((40, 40)) * 255).astype(np.uint8)
    for multi in (False, True):
        _same_as_reference(u8, np.arange(0, 1, 0.05), multi)


def test_cells_of_rectangles_that_cross_block_boundaries():
    # blobs placed so that cells start and end inside, at and across the 16-row blocks of the row/column maxima
    for h, w in ((50, 40), (33, 17), (16, 48), (17, 16)):
        rng = np.random.default_rng(h * w)
        u8 = np.zeros((h, w), np.uint8)
        for _ in range(6):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            u8[y : y + int(rng.integers(1, 9)), x : x + int(rng.integers(1, 9))] = rng.integers(40, 255)
        for multi in (False, True):
            _same_as_reference(u8, np.arange(0, 1, 0.05), multi)


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


def test_filled_map_against_filling_every_level_by_flood():
    # the background pass's filled map: at every level v, filled >= v is the foreground with its holes filled
    from wsolbench.protocols.level_boxes import filled_map

    rng = np.random.default_rng(9)
    for u8 in _random_maps(rng, 12) + [_rings(rng) for _ in range(4)]:
        h, w = u8.shape
        filled = filled_map(u8)
        for v in range(1, 256):
            n, labels = cv2.connectedComponents((u8 < v).view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
            edge = set(labels[0].tolist()) | set(labels[-1].tolist()) | set(labels[:, 0].tolist()) | set(labels[:, -1].tolist())
            outside = np.isin(labels, list(edge - {0})) & (u8 < v)
            assert ((filled >= v) == ~outside).all(), v


def test_rings_inside_rings_at_every_threshold():
    rng = np.random.default_rng(10)
    for _ in range(6):
        u8 = _rings(rng)
        for multi in (False, True):
            _same_as_reference(u8, np.arange(0, 1, 0.01), multi)


def test_best_ious_equal_the_stored_boxes_scored_with_numpy():
    from wsolbench.protocols.box_scores import best_iou_per_threshold
    from wsolbench.protocols.level_boxes import best_ious

    rng = np.random.default_rng(12)
    thresholds = np.arange(0, 1, 0.01)
    for u8 in _random_maps(rng, 24):
        h, w = u8.shape
        gt = np.sort(rng.uniform(0, [w, h, w, h], (int(rng.integers(1, 4)), 4)).reshape(-1, 2, 2), axis=1).reshape(-1, 4)
        gt = gt[:, [0, 1, 2, 3]]
        gt = np.stack([np.minimum(gt[:, 0], gt[:, 2]), np.minimum(gt[:, 1], gt[:, 3]),
                       np.maximum(gt[:, 0], gt[:, 2]), np.maximum(gt[:, 1], gt[:, 3])], 1)
        for multi in (False, True):
            levels = threshold_boxes(u8, thresholds, multi)
            for grow in (False, True):
                scored = levels.boxes.copy()
                if grow:
                    scored[:, 2] = np.minimum(scored[:, 2] + 1, w - 1)
                    scored[:, 3] = np.minimum(scored[:, 3] + 1, h - 1)
                want = best_iou_per_threshold(levels, scored, gt)
                assert np.array_equal(best_ious(u8, thresholds, multi, gt, grow), want)


def test_the_same_map_twice_gives_the_same_boxes():
    rng = np.random.default_rng(13)
    for u8 in _random_maps(rng, 6):
        for multi in (False, True):
            a, b = threshold_boxes(u8, np.arange(0, 1, 0.01), multi), threshold_boxes(u8.copy(), np.arange(0, 1, 0.01), multi)
            assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.start, b.start) and np.array_equal(a.level_of, b.level_of)


def _rings(rng):
    """Nested square rings of random values: holes inside holes at many levels."""
    u8 = np.zeros((int(rng.integers(20, 60)), int(rng.integers(20, 60))), np.uint8)
    for k in range(min(u8.shape) // 4):
        u8[2 * k : u8.shape[0] - 2 * k, 2 * k : u8.shape[1] - 2 * k] = rng.integers(0, 256)
    return u8


def test_the_same_map_scored_twice_takes_the_same_steps_and_gives_the_same_ious():
    # every map takes the same steps (no timings, caps or choice of path), so the result is a pure
    # function of the map: the same after other maps were scored, and in a fresh process
    import json
    import subprocess

    from wsolbench.protocols.level_boxes import best_ious

    rng = np.random.default_rng(14)
    maps = _random_maps(rng, 6)
    gt = np.array([[3.0, 4, 12, 14]])
    first = [best_ious(u, np.arange(0, 1, 0.001), m, gt, True).tolist() for u in maps for m in (False, True)]
    again = [best_ious(u.copy(), np.arange(0, 1, 0.001), m, gt, True).tolist() for u in maps[::-1] for m in (True, False)]
    assert first == [again[len(again) - 1 - i] for i in range(len(again))]
    code = ("import json, sys, numpy as np; from wsolbench.protocols.level_boxes import best_ious; "
            "maps = [np.array(m, np.uint8) for m in json.loads(sys.stdin.read())]; "
            "print(json.dumps([best_ious(u, np.arange(0, 1, 0.001), m, np.array([[3.0, 4, 12, 14]]), True).tolist() "
            "for u in maps for m in (False, True)]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps([u.tolist() for u in maps]),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == first
