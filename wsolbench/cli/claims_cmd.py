"""``wsolbench claims``: the I2C paper's comparative claims, checked against the measured boards of each regime."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wsolbench.cli import app


@app.command("claims")
def claims_command(
    runs: Annotated[Optional[list[str]], typer.Option(
        "--runs", metavar="[NAME=]DIR", help="A regime: a folder of run folders, named NAME (default: DIR as "
                                             "written). Repeatable: each regime gets its own rows.")] = None,
    out: Annotated[Path, typer.Option("--out", help="The markdown page to write.")] = Path("leaderboards/claims.md"),
):
    """Each comparative claim of the I2C paper (I2C over ACoL, SC over plain, SC+GC over SC, momentum over
    back-propagated centres): the paper's reported difference, ours on the same test images with its 95% paired
    interval from each regime's `cub` board, and a verdict (agrees / contradicts / not distinguishable / not
    measured); with the collapsed seeds and whether i2c and i2c-released trained stably."""
    from rich.console import Console

    from wsolbench.paper_claims import write_claims

    console = Console()
    path = write_claims(list(runs or ["runs"]), out, console=console)
    console.print(f"wrote {path}", highlight=False)
