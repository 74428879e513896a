"""Images/s of a whole protocol evaluation (``LocalizationAccumulator.update``) and where its time goes.

Run: ``.venv/bin/python benchmarks/bench_score.py [SCORE_FILE.npz]`` (about 30 s). Without a file the maps are
64 seeded CAM-like 8x8 maps of 500x375 images, each with a box and a mask. A score file is what
``wsolbench eval RUN --save-maps`` writes (``wsolbench score``'s format). For each protocol (wsoleval with
masks for PxAP, cub) it prints images/s of ``update`` and the time per image of its parts, timed apart on the
same maps: preparing the map (resize, min-max, uint8), the box search, the best IoU per threshold, and the
PxAP histograms (which prepare the map too). Then the speed-up of scoring on 2 worker processes over 1
(``protocols/parallel.py``; ``wsolbench score --workers``) on 512 such maps under wsoleval, with the check that
both give the same bytes. The machine's load average is printed: on a shared machine read the ratio with it.
"""
from __future__ import annotations

import os
import sys
import time

import cv2
import numpy as np

from wsolbench.protocols.box_scores import best_iou_per_threshold
from wsolbench.protocols.level_boxes import threshold_boxes
from wsolbench.protocols.presets import PROTOCOLS
from wsolbench.protocols.scoremaps import to_uint8


def synthetic(n: int = 64, height: int = 375, width: int = 500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:8, 0:8]
    maps = np.zeros((n, 8, 8), np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0, 8, 2)
            maps[i] += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(0.8, 2.5) ** 2))
    x0, y0 = rng.integers(0, width // 2, n), rng.integers(0, height // 2, n)
    boxes = np.stack([x0, y0, x0 + width // 3, y0 + height // 3], 1)[:, None, :]
    masks = np.zeros((n, 64, 64), np.uint8)
    for i, (a, b) in enumerate(zip(x0 * 64 // width, y0 * 64 // height)):
        masks[i, b : b + 21, a : a + 21] = 1
    return {"maps": maps, "image_sizes": np.tile([height, width], (n, 1)), "boxes": boxes, "masks": masks}


def per_image(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main(path: str | None) -> None:
    data = dict(np.load(path)) if path else synthetic()
    maps, sizes, boxes = data["maps"], data["image_sizes"].astype(np.int64), data["boxes"]
    masks = data.get("masks")
    n = len(maps)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {n} images, maps "
          f"{maps.shape[1]}x{maps.shape[2]}, images {sizes[0, 1]}x{sizes[0, 0]} (first); OpenCV threads "
          f"{cv2.getNumThreads()}")
    print("protocol   images/s   per image (us): prepare   boxes    IoU   PxAP   (update ~ the sum)")
    for name in ("wsoleval", "cub"):
        protocol = PROTOCOLS.build(name)
        with_masks = masks if name == "wsoleval" else None
        acc = protocol.accumulator()
        acc.update(maps[:2], sizes[:2], boxes[:2], masks=None if with_masks is None else with_masks[:2])  # warm
        start = time.perf_counter()
        acc.update(maps, sizes, boxes, masks=with_masks)
        rate = n / (time.perf_counter() - start)
        shape = lambda i: (int(sizes[i, 0]), int(sizes[i, 1]))  # noqa: E731
        u8s = [to_uint8(protocol.prepare_map(maps[i], *shape(i))) for i in range(n)]
        found = [threshold_boxes(u8s[i], protocol.thresholds, protocol.multi_contour) for i in range(n)]
        gts = [protocol.check_boxes(boxes[i], *shape(i), i) for i in range(n)]
        prepare = per_image(lambda i: to_uint8(protocol.prepare_map(maps[i], *shape(i))), n)
        search = per_image(lambda i: threshold_boxes(u8s[i], protocol.thresholds, protocol.multi_contour), n)
        iou = per_image(lambda i: best_iou_per_threshold(found[i], protocol.boxes_in_convention(
            found[i].boxes, *u8s[i].shape), gts[i]), n)
        pxap = per_image(lambda i: protocol.mask_histograms(maps[i], *shape(i), with_masks[i], i), n) \
            if with_masks is not None else 0.0
        print(f"{name:<10} {rate:8.1f}   {prepare:21.0f} {search:7.0f} {iou:6.0f} {pxap:6.0f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    workers_speedup()


def cpu_seconds() -> float:
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def workers_speedup(n: int = 512) -> None:
    import torch

    from wsolbench.protocols.maps_file import accumulate

    data = synthetic(n)
    protocol = PROTOCOLS.build("wsoleval")
    accumulate(protocol, {k: v[:4] for k, v in data.items()}, workers=1)  # warm (numba cache, OpenCV)
    times, states = {}, {}
    print(f"workers   ({n} maps, wsoleval, interval 0.001, with masks; load average {os.getloadavg()[0]:.2f})")
    for workers in (1, 2):
        cpu = cpu_seconds()
        start = time.perf_counter()
        acc = accumulate(protocol, data, batch=32, workers=workers)
        times[workers] = time.perf_counter() - start
        states[workers] = acc.states
        print(f"  {workers} worker(s): {times[workers]:6.2f} s  {n / times[workers]:7.1f} maps/s  "
              f"(CPU time, this process and its workers: {cpu_seconds() - cpu:.2f} s)")
    same = all(torch.equal(states[1][k], states[2][k]) for k in states[1])
    print(f"  speed-up 1 -> 2 workers: {times[1] / times[2]:.2f}x; same states: {same}; "
          f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
