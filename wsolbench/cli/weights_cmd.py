"""``wsolbench weights NAME OUT.pth``: write packaged ImageNet weights as a timm-named file for ``--pretrained``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from wsolbench.cli import app


@app.command("weights")
def weights_command(
    name: Annotated[str, typer.Argument(help="Packaged weights: efficientnet-lite0.")],
    out: Annotated[Path, typer.Argument(help="State dict to write (.pth), for --pretrained.")],
    source: Annotated[Optional[Path], typer.Option("--source", help="Convert this file instead of the package's.")] = None,
):
    """Convert packaged ImageNet weights (no download) to timm's key names; use the file with --pretrained."""
    from wsolbench.backbones.imagenet import PACKAGED, convert

    state = convert(name, out, source)
    timm_name = PACKAGED[name].timm_name
    Console().print(f"wrote {out}: {len(state)} tensors renamed to timm's {timm_name}, every shape checked; "
                    f"use it as -b {timm_name} --pretrained {out}", highlight=False, soft_wrap=True)
