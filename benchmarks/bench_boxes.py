"""End to end per map (wsoleval resize to 224, uint8, boxes, best IoU per threshold): the fast box search
(``level_boxes.best_ious``) against the per-threshold reference (``reference_boxes`` + numpy IoU), side by
side in one run, on smooth CAM-like maps (28 x 28 Gaussian blobs + 5 % noise), noisy maps (the same at 224
plus uniform noise up to 0.3) and, given ``--real FILE.npz``, the maps of a trained run (``wsolbench eval
RUN --save-maps``), at intervals 0.01 and 0.001, both box rules. Then the per-map cost of each stage of the
fast path, and the numba compile time (cold cache, then cached).

Every map is timed on its own, for both searches the best of ``--repeats`` calls in a row (warm caches
for each, as in a loop over maps), the fast calls then the reference calls map by map, so both see the
same load; the machine is shared, so the best is the least disturbed; a row is the mean over the same maps
for both. (Timing the reference once where it is slow biased the ratios upwards on a loaded machine: one
call of 20-400 ms is likely to be preempted, the best of five sub-millisecond ones is not.) Both searches must agree on the first two maps of each row.
Run: ``.venv/bin/python benchmarks/bench_boxes.py [--maps N] [--real FILE.npz]``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from wsolbench.protocols import _max_tree
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


def prepare(raw) -> np.ndarray:
    return to_uint8(resize_wsoleval(raw, 224))


def fast(raw, thresholds, multi):
    return best_ious(prepare(raw), thresholds, multi, GT, True)


def reference(raw, thresholds, multi):
    levels = reference_level_boxes(prepare(raw), thresholds, multi)
    scored = levels.boxes.copy()
    scored[:, 2:] = np.minimum(scored[:, 2:] + 1, 223)
    return best_iou_per_threshold(levels, scored, GT)


def per_map_ms(fn, items, repeats) -> float:
    """Mean over the items of the best of ``repeats`` calls, in ms."""
    return float(np.mean([min(_seconds(fn, item) for _ in range(repeats)) for item in items]) * 1e3)


def _seconds(fn, item) -> float:
    start = time.perf_counter()
    fn(item)
    return time.perf_counter() - start


def ratios(kinds, repeats) -> None:
    """Fast and reference calls map by map, so that both see the same load on the shared machine."""
    print("| maps | interval | rule | reference ms/map | fast ms/map | ratio |\n|---|---|---|---|---|---|")
    for name, maps in kinds.items():
        for interval in (0.01, 0.001):
            thresholds = np.arange(0, 1, interval)
            for multi in (True, False):
                assert all(np.array_equal(fast(m, thresholds, multi), reference(m, thresholds, multi)) for m in maps[:2])
                f, r = [], []
                for m in maps:
                    f.append(min(_seconds(lambda x: fast(x, thresholds, multi), m) for _ in range(repeats)))
                    r.append(min(_seconds(lambda x: reference(x, thresholds, multi), m) for _ in range(repeats)))
                f, r = np.mean(f) * 1e3, np.mean(r) * 1e3
                rule = "all" if multi else "largest"
                print(f"| {name} | {interval} | {rule} | {r:.2f} | {f:.3f} | {r / f:.1f}x |", flush=True)


def stages(kinds, repeats) -> None:
    """Per map, interval 0.001, all regions: resize + uint8; the hole fill; the counting sort with the
    neighbour masks; the foreground sweep (its IoUs included); the holes (their order and sweep: the
    rest of the total); the IoUs alone, from the cost of 8 ground-truth rows against 1 (the IoU work grows
    with the rows, nothing else does)."""
    thresholds = np.arange(0, 1, 0.001)
    gt8 = np.repeat(GT, 8, axis=0)
    print("\n| maps | resize + uint8 | hole fill | sort + masks | foreground sweep | holes | of which IoU | box search total |"
          "\n|---|---|---|---|---|---|---|---|")
    for name, maps in kinds.items():
        u8s = [prepare(m) for m in maps]
        padded = [np.pad(u, 1).reshape(-1) for u in u8s]
        h, w = u8s[0].shape
        resize = per_map_ms(prepare, maps, repeats)
        fill = per_map_ms(lambda p: _max_tree.fill_holes(p, h, w), padded, repeats)
        sort = per_map_ms(lambda p: _max_tree.by_value(p, h, w), padded, repeats)
        sorted_ = []
        for u, p in zip(u8s, padded):
            coords, order_mask, begin = _max_tree.by_value(p, h, w)
            levels = _max_tree.levels_of(u.max(), thresholds)[0]
            sorted_.append((coords, order_mask, begin[256 - levels]))
        sweep = per_map_ms(lambda c: _max_tree.sweep(c[0], c[1], _max_tree._NO_LAST, h, w, c[2], False, False, GT, True),
                           sorted_, repeats)
        total = per_map_ms(lambda u: best_ious(u, thresholds, True, GT, True), u8s, repeats)
        total8 = per_map_ms(lambda u: best_ious(u, thresholds, True, gt8, True), u8s, repeats)
        iou = max(total8 - total, 0.0) / 7
        holes = total - fill - sort - sweep
        print(f"| {name} | {resize:.3f} | {fill:.3f} | {sort:.3f} | {sweep:.3f} | {holes:.3f} | {iou:.3f} | {total:.3f} |",
              flush=True)


def compile_times() -> None:
    """First call in a fresh process with an empty numba cache (compiles), then again (loads the cache)."""
    code = ("import time, numpy as np; t = time.perf_counter(); from wsolbench.protocols.level_boxes import best_ious; "
            "u = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8); "
            "[best_ious(u, np.arange(0, 1, 0.01), m, np.array([[1.0, 2, 30, 40]]), True) for m in (True, False)]; "
            "print(round(time.perf_counter() - t, 2))")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold, warm = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
                      .stdout.strip() for _ in range(2))
    print(f"\nnumba, import + first call of both rules: {cold} s with an empty cache (compiling), {warm} s cached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", type=int, default=6, help="maps of each kind")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--real", help="a maps .npz of a trained run (its 'maps' key), as a third kind")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    kinds = {"smooth": [smooth(rng) for _ in range(args.maps)], "noisy": [noisy(rng) for _ in range(args.maps)]}
    if args.real:
        with np.load(args.real) as npz:
            real = npz["maps"]
        kinds["real"] = [m for m in real[:: max(1, len(real) // args.maps)][: args.maps]]
    best_ious(prepare(kinds["smooth"][0]), np.arange(0, 1, 0.01), True, GT, True)  # compile (or load) first
    best_ious(prepare(kinds["smooth"][0]), np.arange(0, 1, 0.01), False, GT, True)
    ratios(kinds, args.repeats)
    stages(kinds, args.repeats)
    compile_times()


if __name__ == "__main__":
    main()
