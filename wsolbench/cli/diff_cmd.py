"""``wsolbench diff RUN_A RUN_B``: the paired difference of two runs on the same test images, with its interval."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from wsolbench.cli import app


def _reported(run_dir: Path, protocol: str | None) -> dict:
    """The run's metrics under ``protocol`` (default: the run's own): metrics.json or eval-PROTOCOL.json."""
    from wsolbench.engine import rundir as R
    from wsolbench.errors import WsolbenchError

    primary = R.read_json(run_dir / R.METRICS) if (run_dir / R.METRICS).is_file() else None
    if primary is None:
        raise WsolbenchError(f"{run_dir}: no {R.METRICS} (not a finished run folder)")
    if protocol is None or primary.get("protocol") == protocol:
        return primary
    extra = run_dir / f"eval-{protocol}.json"
    if not extra.is_file():
        raise WsolbenchError(f"{run_dir}: not scored under protocol '{protocol}' (no {extra.name}; "
                             f"`wsolbench eval {run_dir} --protocol {protocol}` scores it)")
    return json.loads(extra.read_text())


@app.command("diff")
def diff_command(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="A finished run folder.")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="Another, scored on the same test images.")],
    protocol: Annotated[Optional[str], typer.Option("--protocol", help="Protocol (default: RUN_A's own).")] = None,
    metric: Annotated[str, typer.Option("--metric", help="gt_known_loc, top1_loc, top5_loc, maxboxacc, "
                                        "maxboxacc_v2, top1_cls, top5_cls or pxap (where masks exist).")] = "gt_known_loc",
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the resampled image indices.")] = 0,
):
    """A - B on the same resampled test images (paired bootstrap, 95% percentile interval), each run's number
    recomputed from its per-image records exactly as reported (its own threshold policy)."""
    from rich.console import Console
    from rich.table import Table

    from wsolbench import stats as S
    from wsolbench.errors import WsolbenchError

    if metric not in S.MEASURES:
        raise WsolbenchError(f"--metric '{metric}': unknown (one of: {', '.join(S.MEASURES)})")
    if resamples < 100:
        raise WsolbenchError(f"--resamples {resamples}: use at least 100 for a 95% interval")
    runs = []
    for run_dir in (run_a, run_b):
        if not run_dir.is_dir():
            raise WsolbenchError(f"{run_dir}: no such run folder")
        reported = _reported(run_dir, protocol)
        protocol = reported["protocol"]  # B under A's protocol
        rec = S.load_records(run_dir, reported["protocol"], reported["policy"], reported.get("threshold"))
        if metric not in reported or not rec.has(metric):
            raise WsolbenchError(f"{run_dir}: reports no '{metric}' under protocol '{reported['protocol']}'")
        if abs(S.full_sample(rec, metric) - reported[metric]) > 1e-6:
            raise WsolbenchError(f"{rec.source}: does not reproduce the run's reported {metric} "
                                 f"({S.full_sample(rec, metric):.4f} vs {reported[metric]:.4f}); re-run `wsolbench eval`")
        runs.append((run_dir, reported, rec))
    (dir_a, rep_a, rec_a), (dir_b, rep_b, rec_b) = runs
    d = S.draws([rec_a, rec_b], [metric], resamples, seed)[metric]  # the same resampled images for both
    low, high = S.interval(d[0] - d[1])
    diff = rep_a[metric] - rep_b[metric]
    table = Table(title=f"{metric} under {protocol}: paired bootstrap over {rec_a.n} test images "
                        f"({resamples} resamples, seed {seed})")
    for column in ("", "run", "policy", "value", "95% interval"):
        table.add_column(column)
    for name, run_dir, rep, draws in (("A", dir_a, rep_a, d[0]), ("B", dir_b, rep_b, d[1])):
        run_low, run_high = S.interval(draws)
        table.add_row(name, str(run_dir), str(rep.get("policy")), f"{rep[metric]:.2f}", f"[{run_low:.2f}, {run_high:.2f}]")
    verdict = "not distinguishable (holds 0)" if low <= 0 <= high else "significant at 95%"
    table.add_row("A - B", verdict, "paired", f"{diff:+.2f}", f"[{low:+.2f}, {high:+.2f}]")
    Console().print(table)
