"""The leaderboard's intervals and paired comparisons, from the runs' per-image files (``wsolbench.stats``).

For one dataset x protocol table: every run whose ``per-image-PROTOCOL.npz`` reproduces its reported GT-known
Loc gets bootstrap draws; runs on the same test images share the resampled indices (one ``stats.draws`` call).
A row (the seeds of one config, sorted by seed) gets ``stats.row_values`` of its seeds' draws: one seed, that
run's image-only draws; k seeds, their mean plus the seed level, whose random numbers every row of k seeds
shares seed index by seed index (``stats.seed_level``). So the difference of two rows is paired at both levels
(the same image resamples; the same seed draws when their seed counts agree, independent ones when not).
A run without the file (an older run) keeps its value and gets no interval; nor does its row.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wsolbench import stats as S
from wsolbench.errors import WsolbenchError

COMPARED = {"gt_known_loc": "GT-known Loc", "maxboxacc_v2": "MaxBoxAccV2"}  # the "vs best" columns and pair lists


@dataclass
class TableIntervals:
    measures: list[str]
    resamples: int
    seed: int
    rows: dict = field(default_factory=dict)  # config -> {measure: (B,) draws of the row's mean over seeds}
    images: dict = field(default_factory=dict)  # config -> key of its test images (rows compare within one key)
    seeds: dict = field(default_factory=dict)  # config -> number of seeds behind its draws (1: test images only)

    def span(self, config: str, measure: str) -> tuple[float, float] | None:
        d = self.rows.get(config, {}).get(measure)
        if d is None or np.isnan(d).any():
            return None
        return S.interval(d)

    def difference(self, a: str, b: str, measure: str) -> tuple[float, float] | None:
        """95% interval of row a - row b on the same resampled images and seed draws (None when not comparable)."""
        if a not in self.rows or b not in self.rows or self.images[a] != self.images[b]:
            return None
        da, db = self.rows[a].get(measure), self.rows[b].get(measure)
        if da is None or db is None or np.isnan(da).any() or np.isnan(db).any():
            return None
        return S.interval(da - db)


def _records(row, run_dir: Path | None) -> S.Records | None:
    if run_dir is None:
        return None
    try:
        variant = row.variant if isinstance(getattr(row, "variant", None), str) else ""
        rec = S.load_records(run_dir, row.protocol, row.policy, row.threshold, variant)
    except WsolbenchError:
        return None
    if pd.isna(row.gt_known_loc) or abs(S.full_sample(rec, "gt_known_loc") - float(row.gt_known_loc)) > 1e-6:
        return None  # the file belongs to another evaluation of this run: no interval rather than a wrong one
    return rec


def add_intervals(group: pd.DataFrame, run_dirs: dict, measures: list[str], b: int = S.B_DEFAULT,
                  seed: int = S.SEED_DEFAULT) -> tuple[pd.DataFrame, TableIntervals]:
    """Fill the tidy rows' ``{measure}_low`` / ``_high`` and return the rows' (configs') draws."""
    group = group.copy()
    records = {i: _records(row, run_dirs.get(row.run_id)) for i, row in group.iterrows()}
    by_images: dict[str, list] = {}
    for i, rec in records.items():
        if rec is not None:
            by_images.setdefault(hashlib.sha1("\n".join(rec.image_ids).encode()).hexdigest(), []).append(i)
    run_draws, run_images = {}, {}
    for key, indices in by_images.items():
        d = S.draws([records[i] for i in indices], measures, b, seed)
        for r, i in enumerate(indices):
            run_draws[i], run_images[i] = {m: d[m][r] for m in measures}, key
            for m in measures:
                group.loc[i, f"{m}_low"], group.loc[i, f"{m}_high"] = S.interval(d[m][r])
    table = TableIntervals(measures, b, seed)
    levels: dict[int, tuple] = {}  # seed count -> the seed level's draws, shared by every row of that count
    for config, rows in group.groupby("config", sort=True):
        keys = {run_images.get(i) for i in rows.index}
        if len(keys) == 1 and None not in keys:  # every seed has records, on the same images
            order = rows.sort_values(["seed", "run_id"], kind="stable").index  # the sorted seed list
            k = len(order)
            if k > 1 and k not in levels:
                levels[k] = S.seed_level(k, b, seed)
            table.rows[config] = {m: S.row_values(np.stack([run_draws[i][m] for i in order]), levels.get(k))
                                  for m in measures}
            table.images[config], table.seeds[config] = keys.pop(), k
    return group, table


def _value(group: pd.DataFrame, config: str, measure: str) -> float:
    return float(group.loc[group["config"] == config, measure].astype(float).mean())


def vs_best(group: pd.DataFrame, table: TableIntervals, measure: str) -> dict[str, str]:
    """config -> "best", "tied" (the paired interval of row - best holds 0) or "below"; "-" not comparable."""
    candidates = [c for c in table.rows if table.span(c, measure) is not None]
    if not candidates:
        return {}
    best = max(candidates, key=lambda c: (_value(group, c, measure), c))
    out = {}
    for config in group["config"].unique():
        span = None if config == best else table.difference(config, best, measure)
        out[config] = "best" if config == best else "-" if span is None else "tied" if span[0] <= 0 <= span[1] else "below"
    return out


def significant_pairs(group: pd.DataFrame, table: TableIntervals, measure: str, trained: set[str],
                      labels: dict[str, str]) -> tuple[list[str], list[str]]:
    """Paired differences among the trained rows: (significant lines, not-distinguishable lines)."""
    configs = sorted((c for c in table.rows if c in trained), key=lambda c: (-_value(group, c, measure), labels[c]))
    yes, no = [], []
    for a, b in itertools.combinations(configs, 2):
        span = table.difference(a, b, measure)
        if span is None:
            continue
        diff = _value(group, a, measure) - _value(group, b, measure)
        line = f"{labels[a]} - {labels[b]}: {diff:+.2f} [{span[0]:+.1f}, {span[1]:+.1f}]"
        (no if span[0] <= 0 <= span[1] else yes).append(line)
    return yes, no
