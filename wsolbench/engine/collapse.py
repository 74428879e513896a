"""When a training run counts as collapsed: kept in its leaderboard row and marked, never averaged in silently.

- the loss became non-finite: training stopped at that step (recorded by the run, ``train.py``);
- its val Top-1 Cls ends near chance: below ``NEAR_CHANCE`` x chance (100 / classes; on the synthetic set's 128
  val images and 8 classes, twice chance is 4 standard deviations above chance);
- its val Top-1 Cls fell: the last epoch's is below ``FELL`` x the best epoch's (a run that learned and then
  lost it, e.g. a fine-tune that diverges without a non-finite loss).

The first two are recorded in ``metrics.json`` when the run ends; the fall is read from ``epochs.jsonl``, so the
leaderboard applies it to runs of every version (``run_collapse``).
"""
from __future__ import annotations

import json
from pathlib import Path

NEAR_CHANCE = 2.0
FELL = 0.5


def near_chance(val_top1_cls: float | None, num_classes: int) -> str | None:
    chance = 100.0 / num_classes
    if val_top1_cls is None or val_top1_cls >= NEAR_CHANCE * chance:
        return None
    return f"val Top-1 Cls {val_top1_cls:.1f}% ends near chance ({chance:.1f}%)"


def fell(val_top1_by_epoch: list[float]) -> str | None:
    """The fall rule on the val Top-1 Cls of each epoch, in order."""
    if len(val_top1_by_epoch) < 2:
        return None
    best = max(range(len(val_top1_by_epoch)), key=lambda i: val_top1_by_epoch[i])
    last = val_top1_by_epoch[-1]
    if last >= FELL * val_top1_by_epoch[best]:
        return None
    return (f"val Top-1 Cls fell from {val_top1_by_epoch[best]:.1f}% (epoch {best + 1}) to {last:.1f}% "
            f"(epoch {len(val_top1_by_epoch)})")


def val_top1_by_epoch(run_dir: Path) -> list[float]:
    """The val Top-1 Cls of each epoch in ``epochs.jsonl`` (none for a run without classes or epochs)."""
    values = []
    try:
        lines = (Path(run_dir) / "epochs.jsonl").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        try:
            value = (json.loads(line).get("val") or {}).get("top1_cls")
        except (json.JSONDecodeError, AttributeError):
            continue
        if value is not None:
            values.append(float(value))
    return values


def run_collapse(run_dir: Path, recorded: str | None) -> str | None:
    """A run's collapse: what its metrics.json recorded, else the fall rule on its epochs."""
    return recorded or fell(val_top1_by_epoch(run_dir))
