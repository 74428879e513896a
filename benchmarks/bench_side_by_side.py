"""Grid cells one after another (one process, torch's default threads) against side by side (``-j N``, each
cell at cores / N threads): the wall time of the same small grid, interleaved, fresh run folders each time.

    python benchmarks/bench_side_by_side.py [--cells 4] [--epochs 2] [--repeats 3] [--jobs 2]

Prints each variant's median and range over the repeats and the ratio of medians, with the machine's load.
The data set is generated once, before timing (the main job caches it too).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WSOLBENCH = [sys.executable, "-m", "wsolbench"]


def grid(out: Path, data: Path, cells: int, epochs: int, extra: list[str]) -> list[str]:
    return [*WSOLBENCH, "run", "-m", "cam", "-b", "resnet10t", "-d", "synthetic", "--data-root", str(data),
            "--seeds", *[str(s) for s in range(cells)], "--epochs", str(epochs), "--out", str(out),
            "--no-progress", *extra]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([*WSOLBENCH, "data", "synth", "--out", str(data), "--per-class", "48", "--test-per-class", "150"],
                       check=True, stdout=subprocess.DEVNULL)  # the main job's set
        variants = {"one after another": ["-j", "1"], f"side by side (-j {args.jobs})": ["-j", str(args.jobs)]}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.repeats):
            for name, extra in variants.items():
                out = Path(tmp) / f"runs-{r}-{len(times[name])}-{extra[1]}"
                times[name].append(timed(grid(out, data, args.cells, args.epochs, extra)))
    print(f"{args.cells} cam cells x {args.epochs} epochs, {os.cpu_count()} cores, load before/after: "
          f"{os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f})")
    a, b = (statistics.median(v) for v in times.values())
    print(f"side by side / one after another: {b / a:.2f}")


if __name__ == "__main__":
    main()
