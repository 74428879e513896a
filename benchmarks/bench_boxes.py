"""Maps per second of the fast box search against the per-threshold reference, at 100 and 1000 thresholds.

Run: ``.venv/bin/python benchmarks/bench_boxes.py [n_maps] [SCORE_FILE.npz ...]`` (about 20 s with the default
12 maps). Score files (``wsolbench eval RUN --save-maps``) add their maps, true class then top-5, made into
uint8 as the wsoleval protocol makes them (224x224, bicubic, min-max) and as the cub / ilsvrc presets make
them at an image's size (500x375, bilinear): real CAMs of a trained run. All
paths are checked equal to the reference on the first maps of each set before timing. Columns: the default
("auto"), and its two exact paths alone: the certified scan ("one-pass") and the component tree ("tree").
The compiled loops (numba) are built on the first call in a fresh environment and cached: that first call is
timed apart. Maps are 224x224 uint8 as the wsoleval protocol makes them: a random grid (7x7 or 28x28, as
CAMs come off a network) bicubic upsampled; "cam-like" is a few Gaussian blobs on the grid, "cam+noise" the
same on a 28x28 grid with 10 % noise (a CAM with a few spurious peaks).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_boxes import reference_boxes, same_boxes  # noqa: E402

_start = time.perf_counter()
from wsolbench.protocols.level_boxes import threshold_boxes  # noqa: E402
from wsolbench.protocols.scoremaps import resize_original, resize_wsoleval, to_uint8  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - _start


def upsample(grid: np.ndarray) -> np.ndarray:
    m = cv2.resize(grid.astype(np.float32), (224, 224), interpolation=cv2.INTER_CUBIC)
    m -= m.min()
    return (m / m.max() * 255).astype(np.uint8)


def cam_like(rng, grid: int, noise: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[0:grid, 0:grid]
    f = np.zeros((grid, grid))
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, grid, 2)
        sigma = rng.uniform(0.8, 2.5) * grid / 7
        f += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    if noise:
        f = f + noise * rng.random((grid, grid))
    return upsample(f)


def score_file_maps(path: str, n_maps: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first maps of a score file (the true class's, then the top-5 maps) as uint8: 224 x 224 as the
    wsoleval protocol makes them (bicubic), or ``size`` (height, width) as the cub / ilsvrc presets make them
    at an image's size (bilinear)."""
    data = np.load(path)
    raw = [data["maps"]] + ([data["top5_maps"].reshape(-1, *data["maps"].shape[1:])] if "top5_maps" in data.files else [])
    prepare = resize_wsoleval if size is None else (lambda m: resize_original(m, *size))
    return [to_uint8(prepare(m)) for m in np.concatenate(raw)[:n_maps]]


def map_sets(n_maps: int, score_files: tuple[str, ...] = ()) -> dict[str, list[np.ndarray]]:
    """The benchmark's maps by set name (seeded): random grids, CAM-like blobs, and the score files' maps
    (named by their run folder, shortened)."""
    rng = np.random.default_rng(0)
    sets = {
        "random 7x7": [upsample(rng.random((7, 7))) for _ in range(n_maps)],
        "random 28x28": [upsample(rng.random((28, 28))) for _ in range(n_maps)],
        "cam-like 7x7": [cam_like(rng, 7) for _ in range(n_maps)],
        "cam+noise 28": [cam_like(rng, 28, 0.1) for _ in range(n_maps)],
    }
    for path in score_files:  # a run's real maps at 224 (wsoleval) and at a CUB image's size (cub / ilsvrc)
        name = Path(path).parent.name.split("__")[0][:8]
        sets[f"{name} 224"] = score_file_maps(path, n_maps)
        sets[f"{name} 500x375"] = score_file_maps(path, n_maps, (375, 500))
    return sets


def timed(fn, maps) -> float:
    start = time.perf_counter()
    for m in maps:
        fn(m)
    return len(maps) / (time.perf_counter() - start)


MODES = ("auto", "one-pass", "tree")


def main(n_maps: int = 12, score_files: tuple[str, ...] = ()) -> None:
    cv2.setNumThreads(1)
    sets = map_sets(n_maps, score_files)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (idle when well below the core count)")
    start = time.perf_counter()
    for multi in (False, True):
        for mode in MODES:
            threshold_boxes(sets["cam-like 7x7"][0], np.arange(0, 1, 0.01), multi, mode=mode)
    print(f"import {IMPORT_SECONDS:.2f} s, first calls {time.perf_counter() - start:.2f} s (numba import and cache load; a fresh environment compiles, ~30 s)")
    print(f"{'maps':14s} {'thresholds':>10s} {'rule':>8s} {'reference':>10s} " + " ".join(f"{m:>9s}" for m in MODES)
          + f" {'ratio':>7s}   (maps/s; ratio: auto / reference)")
    for name, maps in sets.items():
        for n_thr in (100, 1000):
            thresholds = np.arange(0, 1, 1 / n_thr)
            for multi in (False, True):
                for m in maps[:3]:  # same boxes at every threshold before any timing
                    ref = reference_boxes(m, thresholds, multi)
                    for mode in MODES:
                        assert same_boxes(threshold_boxes(m, thresholds, multi, mode=mode), ref), mode
                ref_rate = timed(lambda m: reference_boxes(m, thresholds, multi), maps)
                rates = [timed(lambda m: threshold_boxes(m, thresholds, multi, mode=mode), maps) for mode in MODES]
                rule = "multi" if multi else "largest"
                print(f"{name:14s} {n_thr:>10d} {rule:>8s} {ref_rate:>10.1f} " + " ".join(f"{r:>9.1f}" for r in rates)
                      + f" {rates[0] / ref_rate:>6.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    count = int(args.pop(0)) if args and args[0].isdigit() else 12
    main(count, tuple(args))
