"""Settings sweeps: ``--set key=v1,v2`` expanded into settings, and selection of one setting on val.

The rule (see docs/sweeps.md): per dataset x method x backbone, the setting whose runs have the best
mean val figure over their seeds wins; ties go to the first setting in sweep order. A run's val figure
is written by training into its own ``val.json`` (GT-known Loc at val's own best threshold under the
run's protocol; MaxBoxAccV2 under ``wsoleval``), and selection reads those files and nothing else, so
test numbers never choose a setting. The record (candidates, rule, val figures, choice) goes to
``<out>/<dataset>/sweeps/<method>__<backbone>__<digest>.json``; the leaderboard shows only the
selected setting's rows of a swept group (``leaderboard_rows``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from pathlib import Path

from wsolbench.engine.atomic import write_json
from wsolbench.errors import WsolbenchError

VAL_FILE = "val.json"
SWEEPS = "sweeps"
RULE = ("per dataset x method x backbone: the setting with the highest mean over its seeds of the val figure "
        "(val split with boxes, its own best box threshold); ties: the first in sweep order; test numbers are not read")


# --- expansion -------------------------------------------------------------------------------------------

def product_size(sweep: dict) -> int:
    return math.prod(len(values) for values in sweep.values())


def setting_at(sweep: dict, index: int) -> dict:
    """The ``index``-th setting of the product of ``sweep``'s lists, in ``itertools.product`` order."""
    out = {}
    for key in reversed(list(sweep)):
        index, i = divmod(index, len(sweep[key]))
        out[key] = sweep[key][i]
    return {key: out[key] for key in sweep}


def sweep_settings(sweep: dict, budget: int | None = None, seed: int = 0) -> tuple[list[dict], dict]:
    """The settings to run (the whole product, or ``budget`` of them drawn with ``random.Random(seed)``)
    and what was done, for the record."""
    size = product_size(sweep)
    if size == 0:
        raise WsolbenchError("--set: the sweep's product is empty")
    if budget is not None and budget < 1:
        raise WsolbenchError(f"--sweep-budget must be at least 1, got {budget}")
    if budget is None or budget >= size:
        indices = list(range(size))
    else:
        indices = sorted(random.Random(seed).sample(range(size), budget))
    info = {"product_size": size, "budget": budget, "sweep_seed": seed, "indices": indices,
            "values": {k: list(v) for k, v in sweep.items()}}
    return [setting_at(sweep, i) for i in indices], info


def check_sweep(sweep: dict, methods: list[str], defaults: dict | None = None) -> None:
    """Every value typed and checked against the Config of each method that has the key (one line on error)."""
    from wsolbench.engine.runconfig import coerce_settings
    from wsolbench.registry import METHODS

    for name in methods:
        config_cls = METHODS.get(name).obj.Config
        fields = {f.name for f in dataclasses.fields(config_cls)}
        base = {k: v for k, v in (defaults or {}).items() if k in fields}
        for key, values in sweep.items():
            if key not in fields:
                continue
            for value in values:
                try:
                    config_cls(**coerce_settings(config_cls, {**base, key: value}))
                except WsolbenchError as exc:
                    raise WsolbenchError(f"--set {key}={value}: {exc} ({name})") from None
                except TypeError as exc:
                    raise WsolbenchError(f"--set {key}={value}: {exc} ({name})") from None


# --- the val figure of one run ---------------------------------------------------------------------------

def val_figure(protocol, val_acc) -> dict:
    """GT-known Loc (MaxBoxAccV2 under wsoleval) of the val split at val's own best threshold."""
    metric = "maxboxacc_v2" if protocol.name == "wsoleval" else "gt_known_loc"
    n_val = int(val_acc.states["n_images"]) if val_acc is not None else 0
    if n_val == 0:
        return {"metric": metric, "value": None, "protocol": protocol.name, "n_val_images": 0,
                "reason": "the val split has no image"}
    summary = protocol.summarize(val_acc, None, policy="test-optimal")  # val as its own test: its best threshold
    return {"metric": metric, "value": summary[metric], "protocol": protocol.name, "threshold": summary["threshold"],
            "n_val_images": n_val, "top1_cls": summary.get("top1_cls")}


def write_val_figure(run_dir: Path, protocol, val_acc, run_id: str) -> None:
    """Called by training before metrics.json (which marks the run complete)."""
    write_json(Path(run_dir) / VAL_FILE, {**val_figure(protocol, val_acc), "run_id": run_id})


# --- selection -------------------------------------------------------------------------------------------

def _read_val(run_dir: Path, run_id: str) -> tuple[float | None, str]:
    path = run_dir / VAL_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no {VAL_FILE} (unfinished run, or trained before val figures were written)"
    except (OSError, ValueError) as exc:
        return None, f"unreadable {VAL_FILE} ({exc})"
    if data.get("run_id") != run_id:
        return None, f"{VAL_FILE} belongs to another run"
    if data.get("value") is None:
        return None, data.get("reason", "no val figure")
    return float(data["value"]), data.get("metric", "")


def _group_digest(cfg) -> str:
    identity = {k: v for k, v in cfg.identity().items() if k not in ("seed", "method_settings")}
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def select(configs: list, out: Path | None = None, sweep_info: dict | None = None) -> list[dict]:
    """One record per swept group (more than one distinct setting) of ``configs``; written under ``out``."""
    groups: dict[tuple, dict] = {}
    for cfg in configs:
        key = (cfg.dataset, cfg.method, cfg.backbone, _group_digest(cfg))
        settings = json.dumps(cfg.method_settings, sort_keys=True, default=str)
        groups.setdefault(key, {}).setdefault(settings, []).append(cfg)
    records = []
    for (dataset, method, backbone, digest), by_setting in groups.items():
        if len(by_setting) < 2:
            continue
        candidates, metric = [], None
        for settings, cfgs in by_setting.items():
            runs = []
            for cfg in cfgs:
                run_dir = Path(cfg.out) / cfg.dataset / cfg.run_id()
                value, about = _read_val(run_dir, cfg.run_id())  # about: the metric's name, or the problem
                runs.append({"run_id": cfg.run_id(), "seed": cfg.seed, "val": value,
                             **({"problem": about} if value is None else {})})
                metric = metric or (about if value is not None else None)
            values = [r["val"] for r in runs]
            complete = all(v is not None for v in values)
            candidates.append({"settings": json.loads(settings), "runs": runs,
                               "val_mean": sum(values) / len(values) if complete else None})
        ranked = [c for c in candidates if c["val_mean"] is not None]
        chosen = max(ranked, key=lambda c: c["val_mean"]) if ranked else None  # max keeps the first on ties
        swept = sorted({k for c in candidates for k in c["settings"]
                        if len({json.dumps(d["settings"].get(k), default=str) for d in candidates}) > 1})
        record = {"dataset": dataset, "method": method, "backbone": backbone, "group": digest, "rule": RULE,
                  "metric": metric, "split": "val", "swept_keys": swept, "n_candidates": len(candidates),
                  "n_ranked": len(ranked), "candidates": candidates,
                  "selected": None if chosen is None else {"settings": chosen["settings"], "val_mean": chosen["val_mean"],
                                                           "run_ids": [r["run_id"] for r in chosen["runs"]]},
                  "sweep": sweep_info}
        if out is not None:
            write_json(Path(out) / dataset / SWEEPS / f"{method}__{backbone.replace('/', '-')}__{digest}.json", record)
        records.append(record)
    return records


# --- leaderboard hook ------------------------------------------------------------------------------------

METRIC_NAMES = {"gt_known_loc": "GT-known", "maxboxacc_v2": "MaxBoxAccV2"}


def selection_label(record: dict) -> str:
    sel = record["selected"]
    shown = ", ".join(f"{k}={sel['settings'].get(k)}" for k in record["swept_keys"])
    name = METRIC_NAMES.get(record["metric"], record["metric"])
    return f"[{shown}; selected by val {name} {sel['val_mean']:.1f} from {record['n_candidates']}]"


def read_records(runs_dir: Path) -> list[dict]:
    records = []
    for path in sorted(Path(runs_dir).glob(f"*/{SWEEPS}/*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return records


def leaderboard_rows(df, runs_dir: Path):
    """The tidy table with swept groups reduced to their selected setting, whose method cell carries
    the label ``selected by val ... from N``; rows outside any sweep are left as they are."""
    hidden, labels = set(), {}
    for record in read_records(runs_dir):
        selected = set((record.get("selected") or {}).get("run_ids", []))
        for cand in record["candidates"]:
            for run in cand["runs"]:
                if run["run_id"] not in selected:
                    hidden.add(run["run_id"])
        if selected:
            for run_id in selected:
                labels[run_id] = selection_label(record)
    if not hidden and not labels:
        return df
    df = df[~df["run_id"].isin(hidden - set(labels))].copy()
    mask = df["run_id"].isin(labels)
    df.loc[mask, "method"] = df.loc[mask].apply(lambda r: f"{r['method']} {labels[r['run_id']]}", axis=1)
    return df
