"""Cost of PxAP's per-image rows (protocols/accumulator.py ``img_mask_hist``): memory, disk, bootstrap seconds.

Run: ``.venv/bin/python benchmarks/bench_pxap_rows.py [N_IMAGES] [INTERVAL]`` (default 1,000 images at
wsoleval's interval 0.001; a few seconds). Maps are shaped like real ones: smooth 28 x 28 maps (a blob near
the object plus noise), upsampled to 224 x 224 and min-max normalised by the protocol, with a rectangular
object mask; each image's object / background histograms come from the protocol's own ``mask_histograms``.
It prints the rows' bytes in memory (uint16, as the accumulator keeps them), their size in the per-image file
(``np.savez_compressed``, as ``wsolbench.stats.write_records`` writes it), and the seconds of 1,000 bootstrap
resamples of PxAP for these images and for ten times as many (rows repeated).
"""
from __future__ import annotations

import io
import sys
import time

import numpy as np

from wsolbench import stats as S
from wsolbench.plugins import load_builtin
from wsolbench.registry import PROTOCOLS


def rows(n: int, interval: float, seed: int = 0) -> np.ndarray:
    load_builtin()
    proto = PROTOCOLS.build("wsoleval", interval=interval)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 2, len(proto.edges) - 1), np.uint16)
    for i in range(n):
        y0, x0 = rng.integers(0, 150, 2)
        y1, x1 = y0 + rng.integers(40, 74), x0 + rng.integers(40, 74)
        mask = np.zeros((224, 224), np.uint8)
        mask[y0:y1, x0:x1] = 1
        cy, cx = (y0 + y1) / 16, (x0 + x1) / 16
        raw = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 6) ** 2)) + 0.3 * rng.random((28, 28))
        pos, neg = proto.mask_histograms(raw, 224, 224, mask, i)
        out[i, 0], out[i, 1] = pos, neg
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.001
    t0 = time.perf_counter()
    hist = rows(n, interval)
    made = time.perf_counter() - t0
    buf = io.BytesIO()
    np.savez_compressed(buf, test_mask_hist=hist)
    print(f"{n} images, {hist.shape[2]} bins (interval {interval:g}): rows {hist.nbytes / 1e6:.2f} MB in memory "
          f"(uint16), {len(buf.getvalue()) / 1e6:.2f} MB compressed on disk; histograms made in {made:.1f} s")
    print(f"non-empty bins per image: median {int(np.median((hist > 0).sum(axis=(1, 2))))} of {2 * hist.shape[2]}")
    for k in (1, 10):
        h = np.tile(hist, (k, 1, 1))
        t = h.shape[2] - 2
        rec = S.Records(source="bench", image_ids=np.array([f"i{i}" for i in range(len(h))]),
                        hits=np.zeros((len(h), 1, t), bool), labeled=np.zeros(len(h), bool), top1=np.zeros(len(h), bool),
                        top5=np.zeros(len(h), bool), top5_hits=np.zeros((len(h), t), bool),
                        thresholds=np.arange(t) * interval, iou_thresholds=(0.5,), protocol="wsoleval",
                        val_hits_sum=None, mask_hist=h)
        t0 = time.perf_counter()
        low, high = S.interval(S.draws([rec], ["pxap"], b=1000, seed=0)["pxap"][0])
        print(f"{len(h)} images x 1000 resamples: PxAP {S.full_sample(rec, 'pxap'):.2f} [{low:.2f}, {high:.2f}] "
              f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
