"""End to end per map (wsoleval resize to 224, uint8, boxes, best IoU per threshold): the fast box search
(``level_boxes.best_ious``) against the per-threshold reference (``reference_boxes`` + numpy IoU), side by
side in one run, on smooth CAM-like maps (28 x 28 Gaussian blobs + 5 % noise) and noisy maps (the same at 224
plus uniform noise up to 0.3), at intervals 0.01 and 0.001, both box rules. Times are the best of the maps'
per-map means over 3 repeats (the machine is shared). Run: ``.venv/bin/python benchmarks/bench_boxes.py [n]``.
"""
from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from wsolbench.protocols.box_scores import best_iou_per_threshold
from wsolbench.protocols.level_boxes import best_ious
from wsolbench.protocols.reference_boxes import reference_level_boxes
from wsolbench.protocols.scoremaps import resize_wsoleval, to_uint8

GT = np.array([[50.0, 60, 150, 170]])


def smooth(rng) -> np.ndarray:
    g = 28
    yy, xx = np.mgrid[0:g, 0:g]
    f = np.zeros((g, g))
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, g, 2)
        s = rng.uniform(0.8, 2.5) * g / 7
        f += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return f + 0.05 * rng.random((g, g))


def noisy(rng) -> np.ndarray:
    m = cv2.resize(smooth(rng).astype(np.float32), (224, 224), interpolation=cv2.INTER_CUBIC)
    return m + rng.uniform(0, 0.3) * rng.random((224, 224))


def fast(raw, thresholds, multi):
    return best_ious(to_uint8(resize_wsoleval(raw, 224)), thresholds, multi, GT, True)


def reference(raw, thresholds, multi):
    u8 = to_uint8(resize_wsoleval(raw, 224))
    levels = reference_level_boxes(u8, thresholds, multi)
    scored = levels.boxes.copy()
    scored[:, 2:] = np.minimum(scored[:, 2:] + 1, 223)
    return best_iou_per_threshold(levels, scored, GT)


def per_map_ms(fn, maps, thresholds, multi, repeats=3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for m in maps:
            fn(m, thresholds, multi)
        best = min(best, (time.perf_counter() - start) / len(maps))
    return best * 1e3


def main(n: int = 6) -> None:
    rng = np.random.default_rng(0)
    print("| maps | interval | rule | reference ms/map | fast ms/map | ratio |\n|---|---|---|---|---|---|")
    for kind in (smooth, noisy):
        maps = [kind(rng) for _ in range(n)]
        for interval in (0.01, 0.001):
            thresholds = np.arange(0, 1, interval)
            for multi in (True, False):
                assert all(np.array_equal(fast(m, thresholds, multi), reference(m, thresholds, multi)) for m in maps[:2])
                f = per_map_ms(fast, maps, thresholds, multi)
                r = per_map_ms(reference, maps[:2], thresholds, multi, repeats=1 if interval < 0.01 else 3)
                rule = "all" if multi else "largest"
                print(f"| {kind.__name__} | {interval} | {rule} | {r:.1f} | {f:.2f} | {r / f:.1f}x |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
