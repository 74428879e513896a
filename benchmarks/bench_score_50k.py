"""Wall time of ``wsolbench score`` on 50,000 maps at wsolevaluation's settings: interval 0.001, all contours,
IoU 0.3 / 0.5 / 0.7, on 2 worker processes, the input streamed from an uncompressed ``.npz``.

Run: ``.venv/bin/python benchmarks/bench_score_50k.py [N] [--size S] [--workers W]`` (default 50,000 maps of
28 x 28, as a CAM of a 224-pixel input is, which the protocol resizes to 224 x 224; ``--size 224`` writes
10 GB). The maps are CAM-like: one to three Gaussian blobs plus 5% noise, seeded, written a chunk at a time
into ``maps.npy`` of an uncompressed zip (never whole in memory), with 500 x 375 images and one box each.
It prints the time to write the file, the scoring wall time, the CPU time of the scoring (this process and
its workers) per map, and the load average before and after: on a shared machine the wall time is the
machine's share, the CPU time per map the cost of the work.
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np


def cam_like(rng, n: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    maps = 0.05 * rng.random((n, size, size), dtype=np.float32)
    for blob in range(3):
        present = (rng.integers(1, 4, n) > blob)[:, None, None]
        cy, cx = (rng.uniform(0, size, n).astype(np.float32)[:, None, None] for _ in range(2))
        sigma = rng.uniform(0.04, 0.12, n).astype(np.float32)[:, None, None] * size
        peak = rng.uniform(0.5, 1, n).astype(np.float32)[:, None, None]
        maps += present * peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return maps


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    return buf.getvalue()


def write_maps(path: Path, n: int, size: int, chunk: int = 2000, height: int = 375, width: int = 500) -> None:
    """An uncompressed .npz written a chunk of maps at a time."""
    rng = np.random.default_rng(0)
    x0, y0 = rng.integers(0, width // 2, n), rng.integers(0, height // 2, n)
    boxes = np.stack([x0, y0, x0 + width // 3, y0 + height // 3], 1)[:, None, :]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (n, size, size)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("maps.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for start in range(0, n, chunk):
                f.write(cam_like(rng, min(chunk, n - start), size).tobytes())
        zf.writestr("image_sizes.npy", npy_bytes(np.tile([height, width], (n, 1))))
        zf.writestr("boxes.npy", npy_bytes(boxes))


def cpu_seconds() -> float:
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=50_000)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from wsolbench.plugins import load_builtin
    from wsolbench.protocols.maps_file import accumulate
    from wsolbench.protocols.maps_folder import open_maps
    from wsolbench.registry import PROTOCOLS

    load_builtin()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "maps.npz"
        start = time.perf_counter()
        write_maps(path, args.n, args.size)
        print(f"wrote {args.n} maps of {args.size}x{args.size} ({path.stat().st_size / 1e9:.2f} GB) in "
              f"{time.perf_counter() - start:.1f} s")
        protocol = PROTOCOLS.build("wsoleval")  # interval 0.001, all contours, IoU 0.3 / 0.5 / 0.7
        accumulate(protocol, {"maps": cam_like(np.random.default_rng(1), 2, args.size),
                              "image_sizes": np.array([[375, 500]] * 2), "boxes": np.array([[[0, 0, 99, 99]]] * 2)})
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.workers} workers")
        cpu = cpu_seconds()
        start = time.perf_counter()
        acc = accumulate(protocol, open_maps(path), batch=64, workers=args.workers)
        wall = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        metrics = protocol.summarize(acc, policy="test-optimal")
        print(f"scored {int(acc.states['n_images'])} maps in {wall:.1f} s ({wall / 60:.2f} min), MaxBoxAccV2 "
              f"{metrics['maxboxacc_v2']:.2f}; CPU time (this process and its workers) {cpu:.1f} s = "
              f"{cpu * 1e3 / args.n:.2f} ms per map; on {args.workers} free cores: {cpu / args.workers:.0f} s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
