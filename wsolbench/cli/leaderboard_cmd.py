"""``wsolbench leaderboard``: regenerate the markdown leaderboards from run folders alone."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from wsolbench.cli import app


@app.command("leaderboard")
def leaderboard_command(
    runs: Annotated[Path, typer.Option("--runs", help="Folder of run folders.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="Board name in the file names: DATASET-NAME-PROTOCOL.* "
                                                "(boards of other run folders beside the main job's).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where the markdown and CSV files go.")] = Path("leaderboards"),
):
    """One markdown table per dataset x protocol, the tidy CSV beside it, the paper's numbers as reported rows."""
    from wsolbench.errors import WsolbenchError
    from wsolbench.leaderboard import write_leaderboards

    if not runs.is_dir():
        raise WsolbenchError(f"{runs}: no such folder of runs")
    console = Console()
    for path in write_leaderboards(runs, out, console=console, name=name):
        console.print(f"wrote {path}")
