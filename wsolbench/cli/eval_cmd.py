"""``wsolbench eval RUN_DIR``: re-evaluate a trained run, under another protocol or through an explainer."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from wsolbench.cli import BoxSearchOption, app


def _opt(help_text: str, *names: str):
    return typer.Option(*names, help=help_text)


def print_metrics(console, run_dir: Path, name: str = "metrics.json") -> None:
    from rich.table import Table

    from wsolbench.engine.rundir import read_json

    metrics = read_json(run_dir / name)
    table = Table(title=f"{run_dir} ({metrics.get('protocol')}, threshold {metrics.get('threshold')} by {metrics.get('policy')})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("top1_loc", "top5_loc", "gt_known_loc", "maxboxacc", "maxboxacc_v2", "pxap", "top1_cls", "top5_cls"):
        if metrics.get(key) is not None:
            table.add_row(key, f"{metrics[key]:.2f}")
    console.print(table)


@app.command("eval")
def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by wsolbench run.")],
    protocol: Annotated[Optional[str], _opt("Protocol (default: the run's).", "--protocol")] = None,
    policy: Annotated[Optional[str], _opt("Threshold policy (default: the run's).", "--policy")] = None,
    save_maps: Annotated[bool, _opt("Also write maps-val.npz / maps-test.npz in the score format.", "--save-maps")] = False,
    device: Annotated[str, _opt("auto | cpu | cuda.", "--device")] = "auto",
    explainer: Annotated[Optional[str], _opt("Score the run's classifier through this post-hoc explainer "
                                             "(gradcam, gradcampp, scorecam, ...): eval-PROTOCOL-EXPLAINER.json.", "--explainer")] = None,
    box_search: BoxSearchOption = None,
    score_workers: Annotated[Optional[int], _opt("Processes scoring the boxes (default: the usable cores).", "--workers")] = None,
    explainer_layer: Annotated[Optional[str], _opt("Explainer target layer, a module name of the method "
                                                   "(default: backbone).", "--explainer-layer")] = None,
    tencrop: Annotated[bool, _opt("Classes from ten crops (softmax averaged), maps from the full view.", "--tencrop")] = False,
    classifier: Annotated[Optional[Path], _opt("Classes (Top-k Cls and Loc) from this run folder or run checkpoint; "
                                               "maps from RUN_DIR. Same classes in the same order.", "--classifier")] = None,
):
    """Re-evaluate a trained run: under another protocol, through an explainer, with ten-crop classes or another
    run's classes; writes eval-PROTOCOL[-VARIANT].json and its per-image records."""
    from wsolbench.engine.reeval import reevaluate

    console = Console()
    from wsolbench.cli.score import check_options

    check_options(score_workers, box_search)
    name = reevaluate(run_dir, protocol=protocol, policy=policy, save_maps=save_maps, device=device,
                      explainer=explainer, explainer_layer=explainer_layer, box_search=box_search,
                      score_workers=score_workers, tencrop=tencrop, classifier=classifier)
    print_metrics(console, run_dir, name)
