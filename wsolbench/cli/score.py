"""``wsolbench score MAPS.npz --protocol NAME``: score maps that any tool produced."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from wsolbench.cli import app

METRIC_NAMES = {
    "top1_cls": "Top-1 Cls", "top5_cls": "Top-5 Cls", "top1_loc": "Top-1 Loc", "top5_loc": "Top-5 Loc",
    "gt_known_loc": "GT-known Loc", "maxboxacc": "MaxBoxAcc", "maxboxacc_v2": "MaxBoxAccV2", "pxap": "PxAP",
}


@app.command("score")
def score(
    maps_file: Annotated[Path, typer.Argument(metavar="MAPS.npz", help="maps, image_sizes, boxes [, masks, labels, top5, top5_maps]")],
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="wsoleval, cub, ilsvrc, or a plugin's")] = "wsoleval",
    val: Annotated[Optional[Path], typer.Option("--val", help="held-out maps (.npz) to choose the threshold on")] = None,
    policy: Annotated[Optional[str], typer.Option(help="val | test-optimal | fixed:T (default: val with --val, else test-optimal)")] = None,
    interval: Annotated[Optional[float], typer.Option(help="threshold step (wsoleval: 0.001, cub/ilsvrc: 0.01)")] = None,
    multi_contour: Annotated[Optional[bool], typer.Option("--multi-contour/--largest", help="box rule: all regions or the largest")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the numbers as JSON")] = False,
):
    """Score localization maps from any tool under a protocol; prints a table (or JSON with --json)."""
    from wsolbench.protocols.maps_file import accumulate, load_maps_file
    from wsolbench.registry import PROTOCOLS

    kwargs = {}
    if interval is not None:
        kwargs["interval"] = interval
    if multi_contour is not None:
        kwargs["multi_contour"] = multi_contour
    proto = PROTOCOLS.build(protocol, **kwargs)
    test_acc = accumulate(proto, load_maps_file(maps_file))
    val_acc = accumulate(proto, load_maps_file(val)) if val is not None else None
    metrics = proto.summarize(test_acc, val_acc, policy or ("val" if val is not None else "test-optimal"))
    metrics["maps_file"] = str(maps_file)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    table = Table(title=f"{maps_file.name}: protocol {metrics['protocol']}, {metrics['box_rule']} boxes")
    table.add_column("metric")
    table.add_column("%", justify="right")
    for key, label in METRIC_NAMES.items():
        if key in metrics:
            table.add_row(label, f"{metrics[key]:.2f}")
    console = Console()
    console.print(table)
    console.print(
        f"threshold {metrics['threshold']:g} ({metrics['policy']}), {metrics['n_images']} images, "
        f"interval {metrics['config']['interval']:g}",
        highlight=False,
    )
