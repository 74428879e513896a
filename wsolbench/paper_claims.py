"""The I2C paper's comparative claims, each checked against measured leaderboards: ``wsolbench claims``.

The paper ("Inter-Image Communication for Weakly Supervised Localization", ECCV 2020) makes four claims of the
form "A localizes better than B". For each, this module reads the paper's two reported numbers
(``reference/paper_tables.csv`` through ``leaderboard.reported_table``: accuracy = 100 - the printed error) and,
in every regime (a folder of run folders with a name), our paired difference of the same two methods on the
same test images, with the leaderboard's own 95% paired interval (``TableIntervals.difference``), then words a
verdict. Only the direction of a claim is checked: the paper's numbers are ILSVRC at 224-320 px on VGG16 /
InceptionV3, ours are whatever data and backbone the regime ran.

Verdicts (per measure): ``agrees`` (our interval excludes 0 on the paper's side), ``contradicts`` (excludes 0
on the other side), ``not distinguishable`` (holds 0), ``not measured`` (a method of the pair has no row in
that regime's board, or no row on a shared backbone), ``no interval`` (both rows exist but one kept no
per-image records, or the rows are on different test images).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wsolbench.errors import WsolbenchError

PROTOCOL = "cub"  # the paper's protocol: the largest region's box, IoU 0.5, Top-1 / GT-known Loc
MEASURES = (("gt_known_loc", "GT-known Loc"), ("top1_loc", "Top-1 Loc"))
SIDE_NOTES = ("ablation text",)  # reported rows taken only when the table has no row of its own
STABILITY_METHODS = ("i2c", "i2c-released")
STABILITY_REFERENCE = "acol-simplified"  # the same head without SC/GC, shown beside them


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    source: str
    paper_a: tuple[str, str, str]  # (table, method, backbone) in paper_tables.csv, ILSVRC rows
    paper_b: tuple[str, str, str]
    pairs: tuple[tuple[str, str], ...]  # our (method A, method B): A - B is the paper's A - B
    notes: tuple[str, ...] = ()


CLAIMS = (
    Claim("i2c-over-acol", "I2C over ACoL", "Table 1 (ILSVRC val, VGG16, 224 px)",
          ("table1", "I2C", "VGG16"), ("table1", "ACoL", "VGG16"),
          (("i2c", "acol-simplified"), ("i2c-released", "acol-simplified")),
          ("The paper's ACoL row is the full ACoL of its authors (with the erasing branch); ours is "
           "`acol-simplified`, the I2C paper's three-conv head without erasing, which is the head I2C is built on.",)),
    Claim("sc-over-plain", "SC over the plain baseline", "Table 4 (ILSVRC val, InceptionV3, 320 px)",
          ("table4", "I2C-SC", "InceptionV3"), ("table4", "CAM-plain", "InceptionV3"),
          (("i2c-sc", "cam"), ("i2c-sc", "acol-simplified")),
          ()),  # the plain-row note is derived from the numbers: see _plain_note
    Claim("gc-over-sc", "SC+GC over SC", "Table 4 (ILSVRC val, InceptionV3, 320 px)",
          ("table4", "I2C-SC+GC", "InceptionV3"), ("table4", "I2C-SC", "InceptionV3"),
          (("i2c", "i2c-sc"), ("i2c-released", "i2c-sc")),
          ("`i2c-released` is I2C with the reference code's choices (raster-order seeds, un-squared distances, "
           "its alpha and lambda2), so its row checks the claim for the code the authors released.",)),
    Claim("momentum-over-backprop", "momentum-updated centres over back-propagated ones",
          "Table 4's ablation (ILSVRC val, InceptionV3, 320 px)",
          ("table4", "I2C-SC+GC", "InceptionV3"), ("table4", "I2C-SC+GC(backprop-updated centers)", "InceptionV3"),
          (("i2c", "i2c-bpgc"),),
          ()),
)


# --- the paper's side -------------------------------------------------------------------------------
@dataclass
class PaperRow:
    table: str
    method: str
    backbone: str
    input_size: str
    note: str
    values: dict  # measure -> accuracy (percent)
    passed_over: list = field(default_factory=list)  # (note, values) of other rows of the same method


def _paper_row(reported: pd.DataFrame, table: str, method: str, backbone: str) -> PaperRow:
    rows = reported[(reported["table"] == table) & (reported["dataset"] == "ilsvrc") & (reported["method"] == method)
                    & (reported["backbone"] == backbone)]
    own = rows[~rows["note"].str.contains("|".join(SIDE_NOTES + ("differs from",)), regex=True)]
    chosen = own if len(own) else rows
    if len(chosen) != 1:
        raise WsolbenchError(f"paper_tables.csv: expected one {table} row of {method} / {backbone}, found {len(chosen)}")
    r = chosen.iloc[0]
    values = {m: float(r[m]) for m, _ in MEASURES if m in r and pd.notna(r[m])}
    others = [(o["note"], {m: float(o[m]) for m, _ in MEASURES if m in o and pd.notna(o[m])})
              for _, o in rows.iterrows() if o.name != r.name]
    return PaperRow(table, method, backbone, str(r["input_size"]), str(r["note"]), values, others)


@dataclass
class PaperClaim:
    claim: Claim
    a: PaperRow
    b: PaperRow

    @property
    def differences(self) -> dict[str, float]:
        """measure -> the paper's A - B in accuracy points, where it reports both."""
        return {m: self.a.values[m] - self.b.values[m] for m, _ in MEASURES if m in self.a.values and m in self.b.values}


def paper_claims(reported: pd.DataFrame | None = None) -> list[PaperClaim]:
    from wsolbench.leaderboard import reported_table

    reported = reported_table() if reported is None else reported
    return [PaperClaim(c, _paper_row(reported, *c.paper_a), _paper_row(reported, *c.paper_b)) for c in CLAIMS]


def _table(name: str) -> str:
    """``table4`` as the paper names it: ``Table 4``."""
    return f"Table {name[5:]}" if name.startswith("table") else name


def _fmt_values(values: dict) -> str:
    return ", ".join(f"{name} {values[m]:.2f}" for m, name in MEASURES if m in values) or "-"


def _paper_notes(pc: PaperClaim, reported: pd.DataFrame) -> list[str]:
    """The caveats of the reported rows used (and the rows passed over), worded for the page."""
    lines = list(pc.claim.notes)
    for row in (pc.a, pc.b):
        if SIDE_NOTES[0] in row.note:
            lines.append(f"{row.method}: its numbers ({_fmt_values(row.values)}) are the ones the paper's ablation "
                         f"text quotes for {_table(row.table)}'s ablation (no other reported figure).")
        for note, values in row.passed_over:
            lines.append(f"{row.method}: {_table(row.table)}'s own numbers are used ({_fmt_values(row.values)}); the other "
                         f"reported row ({_fmt_values(values)}; {note}) is not.")
            other, sign = (pc.b, 1) if row is pc.a else (pc.a, -1)
            alt = {m: sign * (values[m] - other.values[m]) for m, _ in MEASURES if m in values and m in other.values}
            if alt:
                same = all((alt[m] > 0) == (pc.differences.get(m, 0) > 0) for m in alt)
                lines.append("With that row instead, the paper's difference would be "
                             + ", ".join(f"{name} {alt[m]:+.2f}" for m, name in MEASURES if m in alt)
                             + (" (the same direction)." if same else " (another direction)."))
        if row.note and SIDE_NOTES[0] not in row.note and not row.passed_over:
            lines.append(f"{row.method} ({_table(row.table)}): {row.note}.")
    if pc.claim.key == "sc-over-plain":
        lines.append(_plain_note(pc, reported))
    return lines


def _plain_note(pc: PaperClaim, reported: pd.DataFrame) -> str:
    cam = reported[(reported["table"] == "table1") & (reported["dataset"] == "ilsvrc") & (reported["method"] == "CAM")
                   & (reported["backbone"] == "InceptionV3")]
    same = len(cam) == 1 and all(abs(float(cam.iloc[0][m]) - v) < 1e-9 for m, v in pc.b.values.items())
    if same:
        head = (f"Which baseline is \"plain\"? The numbers Table 4 reports for it ({_fmt_values(pc.b.values)}) are "
                f"exactly Table 1's CAM / InceptionV3 row (224 px, although Table 4 is at 320 px), so the reported "
                f"numbers support `cam`: the `i2c-sc - cam` row is the one that checks the printed difference. ")
    else:
        head = (f"Which baseline is \"plain\"? The numbers Table 4 reports for it ({_fmt_values(pc.b.values)}) are not "
                f"Table 1's CAM / InceptionV3 row. ")
    return head + ("SC is added to the I2C head, which is the ACoL-simplified head, so `i2c-sc - acol-simplified` "
                   "is the like-for-like ablation (SC alone, the head held fixed); the paper's wording (\"plain\") "
                   "does not say which, and its numbers do not measure that difference.")


# --- our side ---------------------------------------------------------------------------------------
@dataclass
class Regime:
    name: str
    runs_dir: Path
    boards: dict = field(default_factory=dict)  # dataset -> (group, spans) of the cub protocol board
    run_dirs: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    other_protocols: list = field(default_factory=list)
    n_runs: int = 0


def parse_regimes(specs: list[str]) -> list[tuple[str, Path]]:
    """``DIR`` (named by the folder as written) or ``NAME=DIR``; an existing folder named with '=' is a DIR."""
    out = []
    for spec in specs:
        if "=" in spec and not Path(spec).is_dir():
            name, _, folder = spec.partition("=")
            if not name.strip() or not folder:
                raise WsolbenchError(f"--runs '{spec}': write DIR or NAME=DIR")
            out.append((name.strip(), Path(folder)))
        else:
            out.append((spec, Path(spec)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise WsolbenchError(f"--runs: two regimes named '{next(n for n in names if names.count(n) > 1)}'; "
                             f"name them apart with NAME=DIR")
    for name, folder in out:
        if not folder.is_dir():
            raise WsolbenchError(f"{folder}: no such folder of runs (regime '{name}')")
    return out


def read_regime(name: str, runs_dir: Path) -> Regime:
    """The regime's ``cub`` protocol board of every dataset, with the leaderboard's intervals."""
    from wsolbench.leaderboard import collect_leaderboard_runs, leaderboard_table

    df, problems, run_dirs = collect_leaderboard_runs(runs_dir)
    if df.empty:
        raise WsolbenchError(f"{runs_dir}: holds no complete run (regime '{name}')"
                             + (f"; {len(problems)} folder(s) left out, first: {problems[0]}" if problems else ""))
    regime = Regime(name, Path(runs_dir), run_dirs=run_dirs, problems=problems, n_runs=int(df["run_id"].nunique()))
    for (dataset, protocol), group in df.groupby(["dataset", "protocol"], sort=True):
        if protocol != PROTOCOL:
            regime.other_protocols.append(f"{dataset}/{protocol}")
            continue
        group, spans, _, _ = leaderboard_table(group, run_dirs)
        regime.boards[dataset] = (group, spans)
    return regime


def _of_method(group: pd.DataFrame, method: str) -> pd.DataFrame:
    """Rows of ``method`` (a swept row's method cell carries its selection label after a space and '[')."""
    names = group["method"].astype(str)
    return group[(names == method) | names.str.startswith(method + " [")]


def _metrics_json(regime: Regime, run_id: str) -> dict:
    try:
        return json.loads((Path(regime.run_dirs[run_id]) / "metrics.json").read_text())
    except (KeyError, OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def collapse_of(regime: Regime, rows: pd.DataFrame) -> tuple[list[str], int]:
    """(``seed N: reason`` per collapsed seed, as the leaderboard marks them; the number of seeds whose
    metrics.json predates the collapse record)."""
    from wsolbench.leaderboard import is_collapsed

    collapsed = [f"seed {seed}: {why}" for seed, why in zip(rows["seed"], rows["collapse"]) if is_collapsed(why)]
    unrecorded = sum("collapse" not in _metrics_json(regime, run_id) for run_id in rows["run_id"])
    return collapsed, unrecorded


def _collapse_cell(regime: Regime, rows: pd.DataFrame) -> str:
    collapsed, unrecorded = collapse_of(regime, rows)
    if collapsed:
        return "; ".join(collapsed)
    return "not recorded" if unrecorded == len(rows) else "none" + (f" ({unrecorded} not recorded)" if unrecorded else "")


def final_val_top1_cls(regime: Regime, run_id: str) -> float | None:
    """The last epoch's val Top-1 Cls from the run's epochs.jsonl (None when it has none)."""
    from wsolbench.engine.collapse import val_top1_by_epoch

    values = val_top1_by_epoch(Path(regime.run_dirs.get(run_id, "")))
    return values[-1] if values else None


def verdict(paper_diff: float | None, span) -> str:
    if paper_diff is None:
        return "-"
    if span is None:
        return "no interval"
    low, high = span
    if low <= 0 <= high:
        return "not distinguishable"
    ours = 1 if low > 0 else -1
    paper = (paper_diff > 0) - (paper_diff < 0)
    return "agrees" if ours == paper else "contradicts"


@dataclass
class Comparison:
    """One row of a claim's table: A - B in one regime, dataset and backbone (or why it is not measured)."""
    regime: str
    dataset: str
    backbone: str
    a: str
    b: str
    label: str
    seeds: str = "-"
    ours: dict = field(default_factory=dict)  # measure -> (difference, span or None)
    verdicts: dict = field(default_factory=dict)  # measure -> verdict
    collapsed: str = "-"
    why: str = ""


def _config_labels(rows: pd.DataFrame, method: str) -> dict[str, str]:
    configs = sorted(rows["config"].unique())
    return {c: method if len(configs) == 1 else f"{method} [{c}]" for c in configs}


def compare(pc: PaperClaim, regime: Regime) -> list[Comparison]:
    diffs = pc.differences
    out = []
    for a, b in pc.claim.pairs:
        if not regime.boards:
            out.append(Comparison(regime.name, "-", "-", a, b, f"{a} - {b}",
                                  verdicts={m: "not measured" for m in diffs},
                                  why=f"no `{PROTOCOL}` protocol board in this regime"))
            continue
        for dataset, (group, spans) in regime.boards.items():
            rows_a, rows_b = _of_method(group, a), _of_method(group, b)
            missing = [m for m, rows in ((a, rows_a), (b, rows_b)) if rows.empty]
            shared = sorted(set(rows_a["backbone"]) & set(rows_b["backbone"]))
            if missing or not shared:
                why = (f"no `{'`, `'.join(missing)}` run" if missing else
                       f"no shared backbone ({a}: {', '.join(sorted(set(rows_a['backbone'])))}; "
                       f"{b}: {', '.join(sorted(set(rows_b['backbone'])))})")
                out.append(Comparison(regime.name, dataset, "-", a, b, f"{a} - {b}",
                                      verdicts={m: "not measured" for m in diffs}, why=why))
                continue
            for backbone in shared:
                ra, rb = rows_a[rows_a["backbone"] == backbone], rows_b[rows_b["backbone"] == backbone]
                la, lb = _config_labels(ra, a), _config_labels(rb, b)
                for ca in sorted(la):
                    for cb in sorted(lb):
                        out.append(_measured(regime, dataset, backbone, a, b, ra[ra["config"] == ca],
                                             rb[rb["config"] == cb], f"{la[ca]} - {lb[cb]}", spans, diffs))
    return out


def _measured(regime, dataset, backbone, a, b, ra, rb, label, spans, diffs) -> Comparison:
    ca, cb = ra["config"].iloc[0], rb["config"].iloc[0]
    row = Comparison(regime.name, dataset, backbone, a, b, label, seeds=f"{len(ra)} / {len(rb)}")
    for m, _ in MEASURES:
        va, vb = ra[m].dropna().astype(float), rb[m].dropna().astype(float)
        if len(va) != len(ra) or len(vb) != len(rb) or va.empty or vb.empty:
            continue  # a side does not report this measure (Top-1 Loc needs class labels)
        span = spans.difference(ca, cb, m)
        row.ours[m] = (float(va.mean() - vb.mean()), span)
        row.verdicts[m] = verdict(diffs.get(m), span)
    if "gt_known_loc" in row.ours and row.ours["gt_known_loc"][1] is None:
        row.why = "no paired interval: a run kept no per-image records, or the rows hold different test images"
    policies = sorted(set(ra["policy"].astype(str)) | set(rb["policy"].astype(str)))
    if len(policies) > 1:
        row.why = (row.why + "; " if row.why else "") + f"threshold policies differ ({', '.join(policies)})"
    cells = []
    for method, rows in ((a, ra), (b, rb)):
        cell = _collapse_cell(regime, rows)
        if cell != "none":
            cells.append(f"{method}: {cell}")
    row.collapsed = "; ".join(cells) or "none"
    return row


# --- the page -----------------------------------------------------------------------------------------
def _cell(value: float | None, span) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f} [-]" if span is None else f"{value:+.2f} [{span[0]:+.2f}, {span[1]:+.2f}]"


def _commits(regime: Regime) -> str:
    commits = set()
    for group, _ in regime.boards.values():
        commits |= set(group["commit"].dropna().astype(str))
    return ", ".join(f"`{c}`" for c in sorted(commits)) or "-"


def _policies(regime: Regime) -> str:
    policies = set()
    for group, _ in regime.boards.values():
        policies |= set(group["policy"].dropna().astype(str))
    return ", ".join(f"`{p}`" for p in sorted(policies)) or "-"


def _stability_rows(regime: Regime) -> list[dict]:
    rows = []
    for dataset, (group, _) in regime.boards.items():
        for method in (*STABILITY_METHODS, STABILITY_REFERENCE):
            of = _of_method(group, method)
            for (backbone, config), runs in of.groupby(["backbone", "config"], sort=True):
                runs = runs.sort_values("seed")
                collapsed, unrecorded = collapse_of(regime, runs)
                vals = [final_val_top1_cls(regime, r) for r in runs["run_id"]]
                stable = ("no" if collapsed else "not recorded" if unrecorded else "yes")
                if method == STABILITY_REFERENCE:
                    stable += " (reference: the same head without SC/GC)"
                rows.append({
                    "regime": regime.name, "dataset": dataset, "method": method, "backbone": backbone,
                    "config": config, "seeds (n)": f"{','.join(str(s) for s in runs['seed'])} ({len(runs)})",
                    "collapsed seeds": "; ".join(collapsed) or ("not recorded" if unrecorded == len(runs) else "none"),
                    "final val Top-1 Cls per seed": ", ".join("-" if v is None else f"{v:.1f}" for v in vals),
                    "test Top-1 Cls": _mean_std(runs["top1_cls"]),
                    "trained stably": stable,
                })
        for method in STABILITY_METHODS:
            if _of_method(group, method).empty:
                rows.append({"regime": regime.name, "dataset": dataset, "method": method, "backbone": "-", "config": "-",
                             "seeds (n)": "0", "collapsed seeds": "-", "final val Top-1 Cls per seed": "-",
                             "test Top-1 Cls": "-", "trained stably": "not measured"})
    if not regime.boards:
        for method in STABILITY_METHODS:
            rows.append({"regime": regime.name, "dataset": "-", "method": method, "backbone": "-", "config": "-",
                         "seeds (n)": "0", "collapsed seeds": "-", "final val Top-1 Cls per seed": "-",
                         "test Top-1 Cls": "-", "trained stably": "not measured"})
    return rows


def _mean_std(values: pd.Series) -> str:
    values = values.dropna().astype(float)
    if values.empty:
        return "-"
    return f"{values.iloc[0]:.2f}" if len(values) == 1 else f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def regenerate_command(specs: list[str], out: Path) -> str:
    return shlex.join(["wsolbench", "claims", *[x for s in specs for x in ("--runs", s)], "--out", str(out)])


def claims_page(regimes: list[Regime], command: str, paper: list[PaperClaim] | None = None,
                reported: pd.DataFrame | None = None) -> tuple[str, dict]:
    """The markdown page and {claim key: [Comparison, ...]}."""
    from wsolbench.leaderboard import reported_table

    reported = reported_table() if reported is None else reported
    paper = paper_claims(reported) if paper is None else paper
    resamples = sorted({(getattr(spans, "resamples", None), getattr(spans, "seed", None))
                        for r in regimes for _, spans in r.boards.values()}, key=str)
    boot = "; ".join(f"{b} resamples, seed {s}" for b, s in resamples if b is not None)
    text = ["# The I2C paper's comparative claims, checked against measured runs", "",
            "Generated; do not edit. Regenerate with (from the folder it was run in):", "", f"    {command}", "",
            "- What is compared: each comparative claim of \"Inter-Image Communication for Weakly Supervised "
            "Localization\" (ECCV 2020), its reported difference beside our paired difference of the same two "
            "methods in each regime.",
            f"- Our numbers: each regime's `{PROTOCOL}` protocol board, one per dataset (the paper's protocol: the box "
            "of the largest region of the map, IoU 0.5, Top-1 and GT-known Loc); the same rows, intervals and "
            "pairing as `wsolbench leaderboard` (seeds averaged per row; a swept method: its val-selected setting).",
            f"- Difference: row A - row B in accuracy points, with its 95% paired bootstrap interval on the same "
            f"test images (the leaderboard's pair intervals{'; ' + boot if boot else ''}). "
            "Seeds: the number of runs on each side (A / B).",
            "- The paper's numbers are reported, not measured here: ILSVRC validation, VGG16 (Table 1) and "
            "InceptionV3 (Table 4) at 224-320 px, accuracy = 100 - the printed error, under the paper's own "
            "threshold practice. Ours are measured on each regime's own data and backbone. The direction of a "
            "claim is what is checked, not its size.",
            "- Verdict, per measure: `agrees` (our interval excludes 0 on the paper's side), `contradicts` "
            "(excludes 0 on the other side), `not distinguishable` (holds 0), `not measured` (a method of the pair "
            "has no run on a shared backbone in that regime), `no interval` (a run kept no per-image records).",
            "- Collapsed: seeds whose `metrics.json` names a collapse (`not recorded`: the runs predate the record). "
            "A verdict beside a collapsed seed is about a failed training, not the method.",
            "", "## Regimes", "",
            "| regime | run folder | complete runs | datasets (`cub` board) | threshold policy | run commits | left out |",
            "|---|---|---|---|---|---|---|"]
    for r in regimes:
        datasets = ", ".join(r.boards) or f"none (other protocols: {', '.join(r.other_protocols) or '-'})"
        text.append(f"| {r.name} | `{r.runs_dir}` | {r.n_runs} | {datasets} | {_policies(r)} | {_commits(r)} | "
                    f"{len(r.problems)} folder(s) |")
    text += ["", "Threshold policy `val`: the box threshold chosen on the held-out split, never on test; "
             "`test-optimal` would be the old papers' practice and is labelled so wherever it appears.", ""]
    results, summary = {}, []
    for number, pc in enumerate(paper, 1):
        rows = [c for r in regimes for c in compare(pc, r)]
        results[pc.claim.key] = rows
        for c in rows:
            summary.append([f"{number}. {pc.claim.title}", c.label, c.regime, c.dataset, c.backbone,
                            *[c.verdicts.get(m, "-") for m, _ in MEASURES], c.collapsed])
    text += ["## Summary", "", pd.DataFrame(summary, columns=["claim", "A - B", "regime", "dataset", "backbone",
                                                             *[f"verdict: {n}" for _, n in MEASURES], "collapsed"]
                                            ).to_markdown(index=False, disable_numparse=True), ""]
    for number, pc in enumerate(paper, 1):
        diffs = pc.differences
        text += [f"## {number}. {pc.claim.title}: {pc.claim.source}", "",
                 f"Paper: {pc.a.method} {_fmt_values(pc.a.values)} vs {pc.b.method} {_fmt_values(pc.b.values)} "
                 f"(reported, {pc.a.backbone}, {pc.a.input_size} px); difference "
                 + ", ".join(f"{name} {diffs[m]:+.2f}" for m, name in MEASURES if m in diffs) + ".", ""]
        notes = _paper_notes(pc, reported)
        text += [*[f"- {n}" for n in notes], ""] if notes else []
        table = []
        for c in results[pc.claim.key]:
            row = {"regime": c.regime, "dataset": c.dataset, "backbone": c.backbone, "A - B": c.label}
            for m, name in MEASURES:
                if m not in diffs:
                    continue
                row[f"paper {name}"] = f"{diffs[m]:+.2f}"
                d = c.ours.get(m)
                row[f"ours {name} [95%]"] = "-" if d is None else _cell(*d)
                row[f"verdict {name}"] = c.verdicts.get(m, "-")
            row["seeds (A / B)"] = c.seeds
            row["collapsed"] = c.collapsed
            row["note"] = c.why or "-"
            table.append(row)
        text += [pd.DataFrame(table).to_markdown(index=False, disable_numparse=True), ""]
    text += ["## Training stability of i2c and i2c-released", "",
             "Per regime: the seeds, those whose run recorded a collapse, each seed's val Top-1 Cls after its last "
             "epoch (`epochs.jsonl`) and the test Top-1 Cls (mean ± sample std over seeds). `acol-simplified` is "
             "shown beside them as the same head without SC/GC. This is a finding to report, not a setting to tune: "
             "no setting was chosen from it.", "",
             pd.DataFrame([r for reg in regimes for r in _stability_rows(reg)]).to_markdown(
                 index=False, disable_numparse=True), ""]
    return "\n".join(text), results


def write_claims(specs: list[str], out: Path, console=None) -> Path:
    """Read every regime, write the page to ``out``; returns its path."""
    from rich.markup import escape

    from wsolbench.engine.atomic import write_text

    regimes = [read_regime(name, folder) for name, folder in parse_regimes(specs)]
    for r in regimes:
        for line in r.problems:
            if console is not None:
                console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    page, _ = claims_page(regimes, regenerate_command(specs, out))
    write_text(Path(out), page)
    return Path(out)
