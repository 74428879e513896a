"""The box search of an earlier commit against the working tree's, on the same maps, in one run.

Run: ``.venv/bin/python benchmarks/bench_boxes_against.py REV [n_maps] [SCORE_FILE.npz ...]`` (REV: any
commit with ``protocols/level_boxes.py``; about a minute with 36 maps). The commit's ``level_boxes.py`` and
compiled-loop files (``protocols/_*.py``) are taken from git into a temporary package, so both versions run
in this process, and both are checked equal to the reference on the first maps of each set. The maps are
``bench_boxes.py``'s (and the score files' real maps). Prints maps/s and the ratio to the reference of each.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_boxes import map_sets, timed  # noqa: E402
from reference_boxes import reference_boxes, same_boxes  # noqa: E402

from wsolbench.protocols.level_boxes import threshold_boxes  # noqa: E402


def load_revision(rev: str, folder: Path):
    """``threshold_boxes`` of commit ``rev``, imported as package ``boxes_at_rev`` from ``folder``."""
    repo = HERE.parent
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "protocols/"], cwd=repo, check=True,
                           capture_output=True, text=True).stdout.split()
    package = folder / "boxes_at_rev" / "protocols"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    for name in names:
        if name == "protocols/level_boxes.py" or Path(name).name.startswith("_") and name.endswith(".py"):
            if name.endswith("__init__.py"):
                continue
            text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=repo, check=True, capture_output=True,
                                  text=True).stdout
            (package / Path(name).name).write_text(text.replace("wsolbench.protocols", "boxes_at_rev.protocols"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("boxes_at_rev.protocols.level_boxes").threshold_boxes


def main(rev: str, n_maps: int = 36, score_files: tuple[str, ...] = ()) -> None:
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        before = load_revision(rev, Path(tmp))
        sets = map_sets(n_maps, score_files)
        for fn in (before, threshold_boxes):  # compiled loops: built or loaded before timing
            for multi in (False, True):
                fn(sets["cam-like 7x7"][0], np.arange(0, 1, 0.01), multi)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; before = {rev}, after = working tree")
        print(f"{'maps':14s} {'thr':>5s} {'rule':>8s} {'reference':>10s} {'before':>9s} {'after':>9s} {'before x':>9s} {'after x':>8s}   (maps/s)")
        for name, maps in sets.items():
            for n_thr in (100, 1000):
                thresholds = np.arange(0, 1, 1 / n_thr)
                for multi in (False, True):
                    for m in maps[:3]:
                        ref = reference_boxes(m, thresholds, multi)
                        for fn in (before, threshold_boxes):
                            assert same_boxes(fn(m, thresholds, multi), ref)
                    r = timed(lambda m: reference_boxes(m, thresholds, multi), maps)
                    a = timed(lambda m: before(m, thresholds, multi), maps)
                    b = timed(lambda m: threshold_boxes(m, thresholds, multi), maps)
                    rule = "multi" if multi else "largest"
                    print(f"{name:14s} {n_thr:>5d} {rule:>8s} {r:>10.1f} {a:>9.1f} {b:>9.1f} {a / r:>8.1f}x {b / r:>7.1f}x")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: bench_boxes_against.py REV [n_maps] [SCORE_FILE.npz ...]")
    revision = args.pop(0)
    count = int(args.pop(0)) if args and args[0].isdigit() else 36
    main(revision, count, tuple(args))
