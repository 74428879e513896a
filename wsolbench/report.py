"""HTML reports from run folders: one self-contained page per leaderboard (dataset x protocol).

    write_reports("runs", "leaderboards")   # leaderboards/synthetic-cub.html, synthetic-wsoleval.html, ...

Each page holds the leaderboard (``leaderboard.summary_table``: the same rows as the markdown, sortable in the
browser, with every row's commit and settings), then per row (method x backbone x config, its lowest seed):
overlays of the map, predicted box and ground truth on the SAME test images for every row (the images all
rows localize best and worst, by mean IoU over the rows), GT-known Loc against the threshold with the chosen
threshold marked, and the training loss terms from steps.jsonl. Above them, a forest plot per measure (GT-known Loc,
and Top-1 Cls where reported): every row's mean and 95% interval, each seed's value beside it (a collapsed run as a
red x), and the list of collapsed runs. Figures are matplotlib PNGs inlined as base64
(``data:`` URIs), CSS and the sorting script are inline: the page needs no network and no other file.
"""
from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wsolbench import finished_run as F
from wsolbench import pictures as P
from wsolbench.engine import rundir as R
from wsolbench.engine.atomic import write_text
from wsolbench.errors import WsolbenchError
from wsolbench.leaderboard import (MEASURES, _label, _reported_rows, board_stem, collapsed_runs, collect_leaderboard_runs,
                                   is_collapsed, leaderboard_table, reported_table)

REPORT_DPI = 72  # figures are shown scaled to the page; 72 dpi keeps a page of ~10 rows near 1 MB
SETTING_SKIP = ("run_id", "out", "num_workers", "seed", "device", "data_root", "tensorboard")  # not settings of the row
FOREST_MEASURES = ("gt_known_loc", "top1_cls")  # the forest plots, each where some run reports it


@dataclass
class RowPictures:
    """What the page shows for one leaderboard row (its representative run)."""

    label: str
    run_dir: Path
    overlays: str | None = None  # data: URI
    overlay_images: list[str] = field(default_factory=list)  # "best: ID" / "worst: ID", in the overlays' order
    curves: str | None = None
    losses: str | None = None
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, relative href) to pictures in the run folder
    notes: list[str] = field(default_factory=list)  # why a picture is missing


def _data_uri(fig) -> str:
    return "data:image/png;base64," + base64.b64encode(P.png_bytes(fig, REPORT_DPI)).decode("ascii")


def _metrics_for(run_dir: Path, protocol: str) -> dict:
    """The run's metrics under ``protocol``: metrics.json, or eval-PROTOCOL.json for an extra protocol."""
    primary = R.read_json(run_dir / R.METRICS)
    return primary if primary.get("protocol") == protocol else R.read_json(run_dir / f"eval-{protocol}.json")


def _settings(run_dir: Path) -> dict:
    config = R.read_json(run_dir / R.CONFIG)
    return {k: v for k, v in sorted(config.items()) if k not in SETTING_SKIP and v not in (None, [], {})}


class _Maps:
    """Raw maps of the chosen test images per run, computed once and shared by every protocol's page."""

    def __init__(self, device: str, pool: int, seed: int):
        self.device, self.pool, self.seed = device, pool, seed
        self._runs: dict[Path, object] = {}

    def get(self, run_dir: Path):
        if run_dir not in self._runs:
            try:
                run = F.load_run(run_dir, device=self.device)
                indices = P.pick_images(len(run.samples("test")), self.pool, self.seed)
                self._runs[run_dir] = (run, indices, F.run_maps(run, "test", indices))
            except WsolbenchError as exc:
                self._runs[run_dir] = exc
        return self._runs[run_dir]


def _protocol(run, name: str):
    if run.protocol.name == name:
        return run.protocol
    from wsolbench.registry import PROTOCOLS

    return PROTOCOLS.build(name)


def _strip_figure(n: int):
    """A row of ``n`` tiles with fixed margins: constrained layout costs more than the drawing here."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = n * P.TILE_INCHES[0], P.TILE_INCHES[1] + 0.3
    fig = Figure(figsize=(width, height), dpi=P.DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.85 / height, wspace=0.06)
    return fig


def _overlays(rows: list[RowPictures], thresholds: list[float], protocol: str, maps: _Maps, n_best: int,
              n_worst: int) -> None:
    """Fill each row's overlay grid: the same images for every row, those with the best and worst mean IoU."""
    loaded, per_row = [], []
    for row, threshold in zip(rows, thresholds):
        got = maps.get(row.run_dir)
        if isinstance(got, WsolbenchError):
            row.notes.append(f"no overlays: {got}")
            continue
        run, indices, raw = got
        proto = _protocol(run, protocol)
        samples = run.samples("test")
        tiles = {i: P.make_tile(proto, samples[i], *raw[i], threshold) for i in indices}
        loaded.append((row, run, threshold))
        per_row.append(tiles)
    if not per_row:
        return
    common = sorted(set.intersection(*(set(t) for t in per_row)))  # rows on one dataset share their draw
    if not common:
        return
    mean_iou = np.array([np.mean([t[i].iou for t in per_row]) for i in common])
    order = [common[k] for k in np.argsort(-mean_iou, kind="stable")]
    best = order[:n_best]
    worst = [i for i in order[::-1][:n_worst] if i not in best][::-1]
    chosen = [("best", i) for i in best] + [("worst", i) for i in worst]
    for (row, run, threshold), tiles in zip(loaded, per_row):
        fig = _strip_figure(len(chosen))
        axes = fig.subplots(1, len(chosen), squeeze=False)[0]
        for ax, (kind, i) in zip(axes, chosen):
            P.draw_tile(ax, tiles[i], run.class_names)
            ax.set_title(f"{kind}: " + ax.get_title(), fontsize=7, color=ax.title.get_color())
        fig.suptitle(f"{row.label}: map of the true class; green ground truth, red predicted box "
                     f"(threshold {threshold:g})", fontsize=8)
        row.overlays = _data_uri(fig)
        row.overlay_images = [f"{kind}: {tiles[i].image_id}" for kind, i in chosen]


def _losses(run_dir: Path, label: str) -> tuple[str | None, str | None]:
    """(loss figure as a data: URI, or None and why); the same for every protocol's page."""
    steps = run_dir / R.STEPS
    if not steps.is_file():
        return None, "no loss curves: not trained (no steps.jsonl)"
    try:
        records = P.read_steps(steps)
        return _data_uri(P.losses_figure(records, label, smooth=max(1, len(records) // 60))), None
    except WsolbenchError as exc:
        return None, f"no loss curves: {exc}"


def _row_pictures(run_dir: Path, label: str, protocol: str, out_dir: Path, losses_cache: dict) -> RowPictures:
    row = RowPictures(label, run_dir)
    try:
        row.curves = _data_uri(P.curves_figure(_metrics_for(run_dir, protocol), label, str(run_dir)))
    except WsolbenchError as exc:
        row.notes.append(f"no threshold curves: {exc}")
    if run_dir not in losses_cache:
        losses_cache[run_dir] = _losses(run_dir, label)
    row.losses, note = losses_cache[run_dir]
    if note:
        row.notes.append(note)
    for name in ("show-test.png", "curves.png", "losses.png"):  # written by `wsolbench show`
        if (run_dir / name).is_file():
            row.links.append((name, _relative(run_dir / name, out_dir)))
    if (run_dir / "tensorboard").is_dir():  # event files of `wsolbench run --tensorboard`
        row.links.append((f"tensorboard/ (tensorboard --logdir {run_dir})", _relative(run_dir / "tensorboard", out_dir)))
    return row


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _forests(group: pd.DataFrame, spans, title: str) -> list[tuple[str, str]]:
    """(measure name, data: URI) of each forest plot: one line per leaderboard row, in the table's order."""
    names, labels, out = dict(MEASURES), _label(group), []
    for measure in FOREST_MEASURES:
        if measure not in group or group[measure].isna().all():
            continue
        rows = []
        for (_, _, config), members in group.groupby(["method", "backbone", "config"], sort=True):
            values = members[measure].astype(float)
            seeds = [(int(r.seed), float(v), is_collapsed(getattr(r, "collapse", ""))) for r, v in zip(members.itertuples(), values)]
            rows.append(P.ForestRow(labels[config], float(values.mean()), spans.span(config, measure), sorted(seeds)))
        fig = P.forest_figure(rows, names[measure], f"{title}: {names[measure]}, mean and 95% interval per row; "
                                                    "dots: the seeds")
        out.append((names[measure], _data_uri(fig)))
    return out


def _render(**context) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("wsolbench", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


def _table(df: pd.DataFrame) -> dict:
    return {"columns": list(df.columns), "rows": [[("-" if pd.isna(v) else str(v)) for v in r] for r in df.itertuples(index=False)]}


def write_reports(runs_dir: Path, out_dir: Path, console=None, *, pictures: bool = True, device: str = "cpu",
                  pool: int = 24, n_best: int = 3, n_worst: int = 3, seed: int = 0, warn: bool = True,
                  name: str | None = None) -> list[Path]:
    """Write ``out_dir/DATASET-PROTOCOL.html`` (``DATASET-NAME-PROTOCOL.html`` with a board name) for every
    leaderboard of ``runs_dir``; returns the pages.

    ``pool`` test images are drawn (seeded) per dataset; the ``n_best`` and ``n_worst`` of them by mean IoU over
    the rows are drawn for every row. ``pictures=False`` leaves out the overlays (no model is loaded).
    ``warn=False``: the run folders left out are not printed again (the markdown's pass printed them).
    """
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    df, problems, run_dirs = collect_leaderboard_runs(runs_dir)
    for line in problems:
        if console is not None and warn:
            console.print(f"[yellow]warning:[/] {line}", highlight=False)
    where = run_dirs
    maps, losses_cache = _Maps(device, pool, seed), {}
    paper = reported_table()
    written = []
    for (dataset, protocol), group in df.groupby(["dataset", "protocol"], sort=True):
        t0 = time.perf_counter()
        group, spans, _, table = leaderboard_table(group, run_dirs)  # the markdown's cells: value [95% interval]
        rows, thresholds, settings = [], [], []
        for (_, _, config), members in group.groupby(["method", "backbone", "config"], sort=True):
            first = members.sort_values("seed", kind="stable").iloc[0]  # the row's pictures: its lowest seed
            run_dir = where[first["run_id"]]
            label = f"{first['method']} / {first['backbone']} / seed {first['seed']}"
            rows.append(_row_pictures(run_dir, label, protocol, out_dir, losses_cache))
            thresholds.append(float(first["threshold"]) if pd.notna(first["threshold"]) else float("nan"))
            settings.append(json.dumps(_settings(run_dir), indent=1, default=str))
        if pictures:
            _overlays(rows, thresholds, protocol, maps, n_best, n_worst)
        reported = _reported_rows(paper, dataset)
        page = _render(dataset=dataset, protocol=protocol, table=_table(table), settings=settings,
                       reported=_table(reported) if not reported.empty else None, rows=rows,
                       forests=_forests(group, spans, f"{dataset} / {protocol}"), collapsed=collapsed_runs(group),
                       policies=sorted(set(group["policy"].dropna().astype(str))),
                       regenerate=f"wsolbench report --runs {runs_dir} --out {out_dir}" + (f" --name {name}" if name else ""),
                       problems=problems, markdown=f"{board_stem(dataset, protocol, name)}.md")
        path = out_dir / f"{board_stem(dataset, protocol, name)}.html"
        write_text(path, page)
        written.append(path)
        if console is not None:
            console.print(f"wrote {path} ({len(rows)} rows, {time.perf_counter() - t0:.1f} s)", highlight=False)
    return written

