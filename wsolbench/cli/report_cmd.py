"""``wsolbench report``: one self-contained HTML page per leaderboard, regenerated from run folders alone."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from wsolbench.cli import app


@app.command("report")
def report_command(
    runs: Annotated[Path, typer.Option("--runs", help="Folder of run folders.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="Board name in the file names: DATASET-NAME-PROTOCOL.* "
                                                "(boards of other run folders beside the main job's).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where the HTML pages go (beside the markdown).")] = Path("leaderboards"),
    images: Annotated[int, typer.Option("--images", help="Overlays per row: this many best and as many worst "
                                        "test images (0: no overlays, no model loaded).")] = 3,
    pool: Annotated[int, typer.Option("--pool", help="Test images drawn (seeded) to pick the best and worst from.")] = 24,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N (for the overlays' maps).")] = "cpu",
):
    """DATASET-PROTOCOL.html per leaderboard: the sortable table with every row's commit and settings, overlays
    of map, predicted box and ground truth on the same test images for every row, threshold curves, loss terms."""
    from wsolbench.errors import WsolbenchError
    from wsolbench.report import write_reports

    if not runs.is_dir():
        raise WsolbenchError(f"{runs}: no such folder of runs")
    if images < 0 or pool < 1:
        raise WsolbenchError(f"--images {images} / --pool {pool}: need --images >= 0 and --pool >= 1")
    console = Console()
    pages = write_reports(runs, out, console=console, name=name, pictures=images > 0, device=device, pool=pool,
                          n_best=images, n_worst=images)
    if not pages:
        console.print(f"no complete run under {runs}: no page written", highlight=False)
