"""The main job's schedule and input size, chosen on VAL numbers only: each method's last-epoch val Top-1 Cls and
val GT-known Loc (test-optimal threshold on the 128 held-out images, ``epochs.jsonl``) and its cost, for run
folders trained with different ``--epochs`` / ``--input-size``. Test numbers are never read.

    wsolbench run -m spg -m i2c ... --seeds 0 --epochs 8 --set loss_start_epoch=3 -j 2 --out runs-e8
    python benchmarks/schedule_on_val.py runs-e12 runs-e8 runs-e6
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def last_val(run_dir: Path) -> dict:
    lines = (run_dir / "epochs.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["val"] if lines else {}


def main(folders: list[str]) -> None:
    rows = defaultdict(dict)  # method -> (epochs, input size) -> [(val cls, val gt-known, seconds, seed)]
    for folder in folders:
        for config in sorted(Path(folder).glob("*/*/config.json")):
            run_dir = config.parent
            if not (run_dir / "metrics.json").exists() or not (run_dir / "epochs.jsonl").exists():
                continue
            cfg = json.loads(config.read_text())
            val = last_val(run_dir)
            seconds = json.loads((run_dir / "times.json").read_text())["total_s"]
            rows[cfg["method"]].setdefault((cfg["epochs"], cfg["resolved_input_size"]), []).append(
                (val.get("top1_cls"), val.get("gt_known_loc"), seconds, cfg["seed"]))
    schedules = sorted({e for by in rows.values() for e in by}, reverse=True)
    print("| method | " + " | ".join(f"{e[0]} epochs, {e[1]} px: val Cls / GT-known (seeds) / s a run" for e in schedules) + " |")
    print("|---|" + "---|" * len(schedules))
    for method in sorted(rows):
        cells = []
        for e in schedules:
            runs = rows[method].get(e, [])
            if not runs:
                cells.append("-")
                continue
            mean = lambda i: sum(r[i] for r in runs) / len(runs)  # noqa: E731
            cells.append(f"{mean(0):.1f} / {mean(1):.1f} ({len(runs)}) / {mean(2):.0f}")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["runs"])
