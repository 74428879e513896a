"""``wsolbench score MAPS.npz --protocol NAME``: score maps that any tool produced (docs/scoring.md).

MAPS is an ``.npz`` (``protocols/maps_file.py``) or a folder of per-image ``.npy`` maps in wsolevaluation's
layout with ``--metadata`` (``protocols/maps_folder.py``); either is streamed, and the maps are scored on
``--workers`` processes (``protocols/parallel.py``) with the same numbers for any count.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from wsolbench.cli import BoxSearchOption, app

METRIC_NAMES = {
    "top1_cls": "Top-1 Cls", "top5_cls": "Top-5 Cls", "top1_loc": "Top-1 Loc", "top5_loc": "Top-5 Loc",
    "gt_known_loc": "GT-known Loc", "maxboxacc": "MaxBoxAcc", "maxboxacc_v2": "MaxBoxAccV2", "pxap": "PxAP",
}


@app.command("score")
def score(
    maps_file: Annotated[Path, typer.Argument(metavar="MAPS", help="an .npz (maps, image_sizes, boxes [, masks, labels, top5, "
                                              "top5_maps]) or a folder of <image_id>.npy maps with --metadata")],
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="wsoleval, cub, ilsvrc, or a plugin's")] = "wsoleval",
    val: Annotated[Optional[Path], typer.Option("--val", help="held-out maps (.npz or folder) to choose the threshold on")] = None,
    metadata: Annotated[Optional[Path], typer.Option("--metadata", help="MAPS is a folder: its wsolevaluation metadata "
                                                     "split (image_ids.txt, image_sizes.txt, localization.txt)")] = None,
    val_metadata: Annotated[Optional[Path], typer.Option("--val-metadata", help="--val is a folder: its metadata split")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="where the metadata's mask paths are read (PxAP)")] = None,
    box_search: BoxSearchOption = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="scoring processes (default: the usable cores)")] = None,
    policy: Annotated[Optional[str], typer.Option(help="val | test-optimal | fixed:T (default: val with --val, else test-optimal)")] = None,
    interval: Annotated[Optional[float], typer.Option(help="threshold step (wsoleval: 0.001, cub/ilsvrc: 0.01)")] = None,
    multi_contour: Annotated[Optional[bool], typer.Option("--multi-contour/--largest", help="box rule: all regions or the largest")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the numbers as JSON")] = False,
):
    """Score localization maps from any tool under a protocol; prints a table (or JSON with --json)."""
    from wsolbench.protocols.maps_file import accumulate
    from wsolbench.protocols.maps_folder import open_maps
    from wsolbench.registry import PROTOCOLS

    kwargs = {}
    if interval is not None:
        kwargs["interval"] = interval
    if multi_contour is not None:
        kwargs["multi_contour"] = multi_contour
    if box_search is not None:
        kwargs["box_search"] = box_search
    check_options(workers, box_search)
    proto = PROTOCOLS.build(protocol, **kwargs)
    test_acc = accumulate(proto, open_maps(maps_file, metadata, data_root), workers=workers)
    val_acc = accumulate(proto, open_maps(val, val_metadata, data_root), workers=workers) if val is not None else None
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


def check_options(workers: Optional[int], box_search: Optional[str], workers_option: str = "--workers") -> None:
    """The scoring options, checked before any work (one line each)."""
    from wsolbench.errors import WsolbenchError
    from wsolbench.protocols.level_boxes import SEARCHES

    if workers is not None and workers < 1:
        raise WsolbenchError(f"{workers_option} must be at least 1, got {workers}")
    if box_search is not None and box_search not in SEARCHES:
        raise WsolbenchError(f"--box-search must be one of {', '.join(SEARCHES)}, got '{box_search}'")
