"""Seconds of the bootstrap over test images (``wsolbench.stats``): 10,000 images x 1,000 resamples.

Run: ``.venv/bin/python benchmarks/bench_bootstrap.py [N_IMAGES] [RESAMPLES]`` (under a minute). The per-image
hits are seeded and shaped like real ones: each image's box reaches IoU 0.3 / 0.5 / 0.7 on a band of thresholds
(nested bands, narrower for higher IoU), so the threshold columns differ. For 1,000 thresholds (wsoleval's
interval 0.001) and 100 (cub's 0.01) it prints the seconds of: drawing the resample counts; GT-known Loc at a
fixed (val-chosen) threshold; GT-known Loc test-optimal (the max re-taken per resample); MaxBoxAccV2
test-optimal (three IoU levels); every measure at once; and a paired difference of two runs.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from wsolbench import stats as S


def records(n: int, t: int, seed: int, name: str) -> S.Records:
    rng = np.random.default_rng(seed)
    grid = np.arange(t) / t
    centre = rng.uniform(0.1, 0.7, n)[:, None]
    hits = np.stack([np.abs(grid[None, :] - centre) < rng.uniform(0, w, n)[:, None] for w in (0.4, 0.25, 0.1)], 1)
    labeled = np.ones(n, bool)
    top1 = rng.random(n) < 0.7
    return S.Records(source=name, image_ids=np.array([f"img{i}" for i in range(n)]), hits=hits, labeled=labeled,
                     top1=top1, top5=top1 | (rng.random(n) < 0.5), top5_hits=hits[:, 1], thresholds=grid,
                     iou_thresholds=(0.3, 0.5, 0.7), protocol="wsoleval", val_hits_sum=None)


def timed(what: str, fn) -> None:
    start = time.perf_counter()
    fn()
    print(f"  {what:<52} {time.perf_counter() - start:6.2f} s")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    b = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    for t in (1000, 100):
        optimal = records(n, t, 0, "A")
        fixed = optimal.with_policy("fixed", 0.4)
        other = records(n, t, 1, "B")
        print(f"{n} images x {b} resamples, {t} thresholds x 3 IoUs:")
        timed("resample counts alone", lambda: S.resample_counts(n, b, np.random.default_rng(0)))
        timed("GT-known Loc, fixed threshold", lambda: S.draws([fixed], ["gt_known_loc"], b))
        timed("GT-known Loc, test-optimal (max per resample)", lambda: S.draws([optimal], ["gt_known_loc"], b))
        timed("MaxBoxAccV2, test-optimal (3 IoUs)", lambda: S.draws([optimal], ["maxboxacc_v2"], b))
        timed("all 7 measures, test-optimal", lambda: S.draws([optimal], list(S.MEASURES), b))
        timed("paired difference of two runs, GT-known, test-optimal",
              lambda: S.paired_difference([optimal], [other], "gt_known_loc", b))


if __name__ == "__main__":
    main()
