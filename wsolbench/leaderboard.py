"""Leaderboards from run folders alone: one markdown table per dataset x protocol, plus the tidy CSV.

Only measured runs enter the measured rows; the paper's reported numbers (``reference/paper_tables.csv``,
error rates converted to accuracy = 100 - error) appear in separate rows labelled ``reported``.
A corrupt or unfinished run folder is reported and left out; regenerating gives identical files.
A collapsed run (``metrics.json`` ``collapse``: why) stays in its row, counted in its seeds and mean, and is
marked: ``!`` after its seed, and a line under the table.
"""
from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from wsolbench.engine import rundir as R
from wsolbench.engine.atomic import write_text
from wsolbench.engine.collapse import run_collapse
from wsolbench.engine.runconfig import NOT_IDENTITY
from wsolbench.errors import WsolbenchError
from wsolbench.engine.sweep import leaderboard_rows

MEASURES = [("top1_loc", "Top-1 Loc"), ("top5_loc", "Top-5 Loc"), ("gt_known_loc", "GT-known Loc"),
            ("maxboxacc_v2", "MaxBoxAccV2"), ("top1_cls", "Top-1 Cls")]
REPORTED_METRICS = {"top1_loc_err": "top1_loc", "top5_loc_err": "top5_loc", "gt_known_loc_err": "gt_known_loc",
                    "top1_cls_err": "top1_cls", "top5_cls_err": "top5_cls"}
INTERVAL_MEASURES = [*[m for m, _ in MEASURES], "maxboxacc", "top5_cls", "pxap"]  # pxap: where the runs had masks
TIDY_COLUMNS = ["dataset", "protocol", "method", "backbone", "config", "seed", "policy", "cls_views", "variant",
                "threshold", "box_rule",
                "epochs", *[m for m, _ in MEASURES], "maxboxacc", "top5_cls", "pxap", "commit", "run_id", "grid_file",
                "collapse",  # why training collapsed; empty for a healthy run
                *[f"{m}_{side}" for m in INTERVAL_MEASURES for side in ("low", "high")]]  # 95% bootstrap interval


def _read_metrics(path: Path, run_id: str, problems: list[str]) -> dict | None:
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        problems.append(f"{path.parent}: no {path.name} (unfinished or interrupted run), left out")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path.parent}: unreadable JSON in {path.name} ({exc}), left out")
        return None
    if not isinstance(metrics, dict) or metrics.get("run_id") != run_id:
        problems.append(f"{path.parent}: {path.name} does not belong to this run's config, left out")
        return None
    return metrics


def collect_runs(runs_dir: Path, run_dirs: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The tidy table (one row per complete run and protocol) and one problem line per file left out.

    A run's ``metrics.json`` (its own protocol) marks it complete; its ``eval-PROTOCOL.json`` files (extra
    protocols scored from the same maps, or ``wsolbench eval``) add rows under their protocols.
    ``run_dirs``: filled with run_id -> run folder. The ``_low`` / ``_high`` columns are filled by
    ``wsolbench.intervals.add_intervals``.
    """
    rows, problems = [], []
    for config_path in sorted(Path(runs_dir).rglob(R.CONFIG)):
        run_dir = config_path.parent
        try:
            config = json.loads(config_path.read_text())
            run_id = config["run_id"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{run_dir}: unreadable {R.CONFIG} ({exc}), left out")
            continue
        primary = _read_metrics(run_dir / R.METRICS, run_id, problems)
        if primary is None:
            continue
        config = {**config, "method": canonical_method(config["method"])}  # an old run under an alias: one row
        if run_dirs is not None:
            run_dirs[run_id] = run_dir
        # what does not change a run's numbers (the scoring workers, ...) does not split a row either
        identity = {k: v for k, v in config.items() if k not in ("seed", "run_id", *NOT_IDENTITY)}
        config_id = lambda variant: hashlib.sha1(json.dumps(  # noqa: E731 - an evaluation variant is another row
            {**identity, "eval_variant": variant} if variant else identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
        all_metrics = [primary]
        for extra in sorted(run_dir.glob("eval-*.json")):
            metrics = _read_metrics(extra, run_id, problems)
            same = metrics and not row_variant(metrics) and \
                (metrics.get("protocol"), metrics.get("policy")) == (primary.get("protocol"), primary.get("policy"))
            if metrics is not None and not same:
                all_metrics.append(metrics)
        for metrics in all_metrics:
            row = {
                "dataset": config["dataset"], "protocol": metrics.get("protocol"), "method": row_label(config["method"], metrics),
                "backbone": config["backbone"], "seed": config["seed"], "policy": metrics.get("policy"),
                "cls_views": metrics.get("cls_views", "one view"), "variant": row_variant(metrics),
                "threshold": metrics.get("threshold"), "box_rule": metrics.get("box_rule"),
                "epochs": config.get("epochs"), "commit": metrics.get("commit"), "run_id": run_id,
                "grid_file": config.get("grid_file"),  # wsolbench run --config FILE, if it came from one
                "config": config_id(row_variant(metrics)),  # runs that differ only in seed share it, and are averaged
                # a property of the training: the same on every protocol's row
                "collapse": _collapse(run_collapse(run_dir, primary.get("collapse"))),
            }
            for key in [m for m, _ in MEASURES] + ["maxboxacc", "top5_cls", "pxap"]:
                row[key] = metrics.get(key)
            rows.append(row)
    df = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    return df.sort_values(["dataset", "protocol", "method", "backbone", "config", "seed"], kind="stable",
                          ignore_index=True), problems


def row_variant(metrics: dict) -> str:
    """The evaluation variant of a metrics file ("" for the run's own; an older explainer file: its explainer)."""
    return metrics.get("variant") or metrics.get("explainer") or ""


def row_label(method: str, metrics: dict) -> str:
    """The row's method: ``cam``, ``cam + gradcam`` (an explainer's maps), ``cam + ten-crop`` (ten-crop classes),
    ``cam + classifier resnet50/seed0`` (another run's classes); the parts in that order."""
    parts = [method, metrics.get("explainer"), "ten-crop" if metrics.get("cls_views") == "ten-crop" else None]
    if metrics.get("classifier"):
        parts.append(f"classifier {metrics['classifier']}/seed{metrics.get('classifier_seed')}")
    return " + ".join(p for p in parts if p)


def _collapse(value: str | None) -> str:
    """The run's collapse reason on one line, or "" (healthy)."""
    return "" if value is None else " ".join(str(value).split())  # one line in the table and the CSV


def is_collapsed(value) -> bool:
    """A tidy row's ``collapse`` cell names a reason (the CSV reads an empty cell back as NaN)."""
    return isinstance(value, str) and bool(value.strip())


def canonical_method(name: str) -> str:
    """A method alias (``acol``) as its registered name (``acol-simplified``); an unknown name as it is."""
    from wsolbench.registry import METHODS, RegistryError

    try:
        return METHODS.canonical(name)
    except RegistryError:  # e.g. a plugin method whose plugin is not loaded now
        return name


def reported_table() -> pd.DataFrame:
    """The paper's reported numbers as accuracies, one row per (table, dataset, method, backbone, input size, note)."""
    path = resources.files("wsolbench") / "reference" / "paper_tables.csv"
    raw = pd.read_csv(path, keep_default_na=False)
    raw = raw[raw["metric"].isin(REPORTED_METRICS)]
    raw = raw.assign(measure=raw["metric"].map(REPORTED_METRICS), accuracy=100.0 - raw["value_percent"].astype(float))
    keys = ["table", "dataset", "method", "backbone", "input_size", "note"]
    wide = raw.pivot_table(index=keys, columns="measure", values="accuracy", aggfunc="first").reset_index()
    return wide.sort_values(keys, kind="stable", ignore_index=True)


def _fmt(values: pd.Series) -> str:
    values = values.dropna().astype(float)
    if values.empty:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def _threshold(group: pd.DataFrame) -> str:
    ts = group["threshold"].dropna().astype(float)
    policy = ", ".join(sorted(set(group["policy"].dropna().astype(str)))) or "-"
    if "cls_views" in group and (group["cls_views"] == "ten-crop").any():
        policy += "; classes: ten-crop"
    if ts.empty:
        return f"- ({policy})"
    span = f"{ts.min():.3f}" if ts.min() == ts.max() else f"{ts.min():.3f}-{ts.max():.3f}"
    return f"{span} ({policy})"


def _span(value: str, span) -> str:
    """``52.31 ± 3.10 [45.2, 58.9]`` (one seed: ``61.25 [54.0, 68.5]``); ``[-]`` when the row has a value but no
    per-image records."""
    if value == "-":
        return value
    return f"{value} [-]" if span is None else f"{value} [{span[0]:.1f}, {span[1]:.1f}]"


def summary_table(df: pd.DataFrame, table=None, verdicts: dict | None = None) -> pd.DataFrame:
    """One row per method x backbone x config: mean ± sample std (ddof=1) over seeds, with the row's 95%
    interval when ``table`` (``wsolbench.intervals.TableIntervals``) has it (over seeds and test images; one
    seed: test images only); ``verdicts``: extra columns, {column: {config: text}}. Seeds: ``0,1!,2 (3; 1
    collapsed)``, ``!`` marking a collapsed run."""
    rows = []
    with_pxap = "pxap" in df and df["pxap"].notna().any()
    for (method, backbone, config), group in df.groupby(["method", "backbone", "config"], sort=True):
        row = {"method": method, "backbone": backbone}
        for key, label in MEASURES:
            row[label] = _fmt(group[key]) if table is None else _span(_fmt(group[key]), table.span(config, key))
        if with_pxap:  # from the masks (the synthetic set has them), its interval from per-image histograms
            row["PxAP"] = _fmt(group["pxap"]) if table is None else _span(_fmt(group["pxap"]), table.span(config, "pxap"))
        for column, by_config in (verdicts or {}).items():
            row[column] = by_config.get(config, "-")
        row["threshold (policy)"] = _threshold(group)
        row["seeds (n)"] = _seeds(group)
        row["epochs"] = ",".join(str(e) for e in sorted(set(group["epochs"])))
        row["commit"] = ", ".join(sorted(set(group["commit"].astype(str))))
        row["config"] = config
        rows.append(row)
    return pd.DataFrame(rows)


def _seeds(group: pd.DataFrame) -> str:
    """``0,1!,2 (3; 1 collapsed)``: the row's seeds, ``!`` after a collapsed run's, and n."""
    collapse = group["collapse"] if "collapse" in group else pd.Series("", index=group.index)
    marks = sorted((int(s), "!" if is_collapsed(c) else "") for s, c in zip(group["seed"], collapse))
    n_bad = sum(1 for _, m in marks if m)
    return f"{','.join(f'{s}{m}' for s, m in marks)} ({len(group)}" + (f"; {n_bad} collapsed)" if n_bad else ")")


def collapsed_runs(group: pd.DataFrame) -> list[tuple[str, str]]:
    """(``method/backbone seed N, run RUN_ID``, reason) of each collapsed run in the rows, in table order."""
    if "collapse" not in group:
        return []
    bad = group[group["collapse"].map(is_collapsed)].drop_duplicates("run_id")
    bad = bad.sort_values(["method", "backbone", "config", "seed", "run_id"], kind="stable")
    return [(f"{r.method}/{r.backbone} seed {r.seed}, run {r.run_id}", r.collapse) for r in bad.itertuples()]


def _reported_rows(reported: pd.DataFrame, dataset: str) -> pd.DataFrame:
    rep = reported[reported["dataset"] == dataset]
    rows = []
    for _, r in rep.iterrows():
        label = f"{r['method']} (reported, paper {r['table']}" + (f", {r['input_size']} px" if r["input_size"] else "")
        label += f"; {r['note']})" if r["note"] else ")"
        row = {"method": label, "backbone": r["backbone"]}
        for key, col in MEASURES:
            row[col] = f"{r[key]:.2f}" if key in r and pd.notna(r[key]) else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def _label(rows: pd.DataFrame) -> dict[str, str]:
    """config -> ``method/backbone`` (with the config id where two configs share both)."""
    base = {c: f"{g['method'].iloc[0]}/{g['backbone'].iloc[0]}" for c, g in rows.groupby("config")}
    counts = pd.Series(list(base.values())).value_counts()
    return {c: name if counts[name] == 1 else f"{name} [{c}]" for c, name in base.items()}


def _pair_lines(group: pd.DataFrame, spans, compared: list[str], run_dirs: dict, console, title: str) -> list[str]:
    """The markdown section (and console lines) of paired differences among trained rows."""
    from wsolbench import intervals as I

    # trained: every seed of the row ran at least one epoch (epochs.jsonl has a line)
    trained = {c for c, g in group.groupby("config")
               if all((Path(run_dirs[r]) / R.EPOCHS).is_file() and (Path(run_dirs[r]) / R.EPOCHS).stat().st_size
                      for r in g["run_id"] if r in run_dirs)}
    labels = _label(group)
    text = []
    for measure in compared:
        yes, no = I.significant_pairs(group, spans, measure, trained, labels)
        if not yes and not no:
            continue
        name = I.COMPARED[measure]
        text += [f"## Paired differences among trained rows: {name} (row - row, 95% interval, same test images "
                 "and seed draws)", ""]
        for heading, lines in (("Significant at 95%", yes), ("Not distinguishable", no)):
            text += [f"{heading}: none", ""] if not lines else [f"{heading}:", "", *[f"- {line}" for line in lines], ""]
        if console is not None:
            console.print(f"{title}, {name}: significant differences: {'; '.join(yes) or 'none'}", highlight=False)
    return text


def leaderboard_table(group: pd.DataFrame, run_dirs: dict):
    """One leaderboard's tidy rows with their interval columns, the intervals, the measures compared against the
    best row, and the summary table (cells with intervals, the vs-best columns): the markdown's and the report's."""
    from wsolbench import intervals as I

    group, spans = I.add_intervals(group, run_dirs, INTERVAL_MEASURES)
    compared = [m for m in I.COMPARED if group[m].notna().any()]
    verdicts = {f"vs best ({I.COMPARED[m]})": I.vs_best(group, spans, m) for m in compared}
    return group, spans, compared, summary_table(group, spans, verdicts)


def collect_leaderboard_runs(runs_dir: Path) -> tuple[pd.DataFrame, list[str], dict]:
    """The tidy rows a leaderboard shows (a swept group: its val-selected setting only), the problems, and
    run id -> run folder."""
    run_dirs: dict = {}
    df, problems = collect_runs(runs_dir, run_dirs)
    return leaderboard_rows(df, runs_dir), problems, run_dirs  # sweeps: engine/sweep.py


def board_stem(dataset: str, protocol: str, name: str | None = None) -> str:
    """``synthetic-cub``, or with a board name ``synthetic-pretrained-cub`` (boards of other run folders beside it)."""
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise WsolbenchError(f"--name {name!r}: letters, digits, '-', '_' and '.' only (it goes into file names)")
    return f"{dataset}-{name}-{protocol}" if name else f"{dataset}-{protocol}"


def _name_option(name: str | None) -> str:
    return f" --name {name}" if name else ""


def _grid_files(group: pd.DataFrame) -> list[str]:
    """The header line naming the grid files the rows' runs came from (none: no line)."""
    files = sorted(set(group["grid_file"].dropna().astype(str)))
    if not files:
        return []
    return ["Produced by: " + ", ".join(f"`wsolbench run --config {f}`" for f in files)
            + " (shipped grid files are in `configs/`)."]


def write_leaderboards(runs_dir: Path, out_dir: Path, console=None, name: str | None = None) -> list[Path]:
    """Regenerate ``out_dir``'s boards of ``runs_dir`` (``name``: their file names, see ``board_stem``);
    returns the files written."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    df, problems, run_dirs = collect_leaderboard_runs(runs_dir)
    from wsolbench.engine.claims import missing_note

    missing = missing_note(runs_dir)  # planned grid cells not complete yet
    for line in problems + ([missing] if missing else []):
        if console is not None:
            console.print(f"[yellow]warning:[/] {line}", highlight=False)
    paper = reported_table()  # read once
    written = []
    for (dataset, protocol), group in df.groupby(["dataset", "protocol"], sort=True):
        stem = board_stem(dataset, protocol, name)
        csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
        group, spans, compared, table = leaderboard_table(group, run_dirs)
        write_text(csv_path, group.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
        reported = _reported_rows(paper, dataset)
        text = [f"# {dataset}: measured runs under the `{protocol}` protocol", "",
                "Each row: mean ± sample standard deviation (ddof=1) over seeds, in percent; one seed shows its value; "
                "n (the number of seeds) closes the seeds column.",
                f"In brackets: the 95% interval of the row's mean ({spans.resamples} resamples, seed {spans.seed}; "
                "`[-]`: a run kept no per-image records). A row of 2 or more seeds: over training seeds AND test "
                "images (the seeds' mean on resampled test images plus a Student-t draw of the seed spread with "
                "n - 1 degrees of freedom; two seeds give wide intervals by design). A one-seed row: over test "
                "images only; it says nothing of another training seed (`--seeds 0 1 2` adds the seed level).",
                "Seeds: `!` marks a collapsed run, kept in its row (counted in n and the mean) and listed under the table.",
                "vs best: `tied` where the paired interval of (row - best row) holds 0, `below` where it does not.",
                "Threshold: the box threshold and the policy that chose it (`val`: chosen on the held-out split).",
                *_grid_files(group),
                f"Tidy table: `{csv_path.name}`. Regenerate: `wsolbench leaderboard --runs {runs_dir} --out {out_dir}"
                f"{_name_option(name)}`.",
                f"Pictures per row (maps and boxes, threshold curves, each loss term over the steps): [{stem}.html]({stem}.html), "
                f"written by `wsolbench report --runs {runs_dir} --out {out_dir}{_name_option(name)}`; one run's: "
                "`wsolbench show RUN_DIR`.",
                "", table.to_markdown(index=False), ""] + ([missing, ""] if missing else [])
        bad = collapsed_runs(group)
        if bad:
            text += ["Collapsed runs (kept in their rows):", "", *[f"- {who}: {why}" for who, why in bad], ""]
        text += _pair_lines(group, spans, compared, run_dirs, console, f"{dataset} / {protocol}")
        if not reported.empty:
            text += ["## Reported in the I2C paper (not measured here)", "",
                     "Accuracy = 100 - the paper's error rate; the paper's own threshold practice, not this protocol.",
                     "", reported.to_markdown(index=False), ""]
        write_text(md_path, "\n".join(text))
        written += [md_path, csv_path]
    write_text(out_dir / "reported.csv", paper.to_csv(index=False, float_format="%.2f", lineterminator="\n"))
    written.append(out_dir / "reported.csv")
    return written
