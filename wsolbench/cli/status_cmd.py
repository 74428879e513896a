"""``wsolbench status RUNS``: each grid cell's state (complete, running, failed with its reason, pending)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from wsolbench.cli import app

STYLES = {"complete": "green", "running": "cyan", "failed": "red", "pending": "yellow"}


def cell_states(runs: Path) -> list[dict]:
    """One dict per cell (planned by a launch, or found as a run folder): its fields, ``state`` and ``detail``."""
    from wsolbench.engine import claims as C
    from wsolbench.engine import rundir as R

    cells = {}
    folder = runs / ".grid" / "cells"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        info = C._read(path)
        if info and "run_id" in info and "dataset" in info:
            cells[f"{info['dataset']}__{info['run_id']}"] = info
    for config in sorted(runs.glob(f"*/*/{R.CONFIG}")):  # run folders of grids run before cells were planned
        try:
            info = json.loads(config.read_text())
            cells.setdefault(f"{info['dataset']}__{info['run_id']}", info)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    rows = []
    for key, info in sorted(cells.items(), key=lambda kv: (kv[1]["dataset"], kv[1].get("method", ""),
                                                           kv[1].get("backbone", ""), kv[1].get("seed", 0), kv[0])):
        run_dir = runs / info["dataset"] / info["run_id"]
        claim = C.state(runs, key)
        row = {k: info.get(k) for k in ("dataset", "method", "backbone", "seed", "run_id")}
        row["run_dir"] = str(run_dir)
        if R.is_complete(run_dir, info["run_id"]):
            row.update(state="complete", detail=str(run_dir))
        elif claim is not None and claim["live"]:
            who = ", ".join(f"{h.get('host')} pid {h.get('pid')}" for h in claim.get("holders", []))
            job = f", job {claim['job_id']}" if claim.get("job_id") else ""
            row.update(state="running", detail=f"{who}{job}" + (f" (log {claim['log']})" if claim.get("log") else ""))
        elif claim is not None and claim.get("outcome") not in (None, "done", "skipped", "superseded", "lost"):
            log = f" (log {claim['log']})" if claim.get("log") else ""
            row.update(state="failed", detail=f"{claim.get('outcome')}: {claim.get('reason') or 'no reason given'}{log}")
        elif claim is not None and not claim.get("released"):
            log = f" (log {claim['log']})" if claim.get("log") else ""
            row.update(state="failed", detail=f"job stopped: {claim['why']}{log}")
        elif (run_dir / "error.txt").exists():
            row.update(state="failed", detail=f"crashed (traceback in {run_dir / 'error.txt'})")
        else:
            resumable = (run_dir / R.CHECKPOINT).exists()
            row.update(state="pending", detail="has a checkpoint: the next launch resumes it" if resumable else "")
        rows.append(row)
    return rows


@app.command("status")
def status_command(
    runs: Annotated[Path, typer.Argument(help="The folder of run folders (--out of wsolbench run).")] = Path("runs"),
):
    """Each cell of the grids run into RUNS: complete, running (where), failed (why, log), pending."""
    from rich.table import Table

    from wsolbench.errors import WsolbenchError

    if not runs.is_dir():
        raise WsolbenchError(f"{runs}: no such folder of runs")
    rows = cell_states(runs)
    console = Console()
    table = Table(title=f"cells in {runs}")
    for col in ("dataset", "method", "backbone", "seed", "state", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = STYLES[r["state"]]
        table.add_row(str(r["dataset"]), str(r["method"]), str(r["backbone"]), str(r["seed"]),
                      f"[{style}]{r['state']}[/]", r["detail"])
    console.print(table)
    counts = {s: sum(r["state"] == s for r in rows) for s in STYLES}
    console.print(f"{len(rows)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
