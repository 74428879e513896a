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
    fast = threshold_boxes(u8, np.array([t]), multi, mode="one-pass").at_threshold(0)
    ref = reference_boxes(u8, [t], multi)[0]
    key = lambda b: sorted(map(tuple, np.asarray(b).tolist()))  # noqa: E731
    assert key(fast) == key(ref)
    return key(fast)


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
        # the certified one-pass scan on every map (also where "auto" would search each level), and "auto"
        for mode in ("one-pass", "auto") if i % 5 == 0 else ("one-pass",):
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
            fast = threshold_boxes(u8, thresholds, multi, mode="one-pass")
            ref = reference_boxes(u8, thresholds, multi)
            for j in range(0, len(thresholds)):
                assert sorted(map(tuple, fast.at_threshold(j).tolist())) == sorted(map(tuple, ref[j].tolist()))
