"""``wsolbench run``: one run or a grid; with no arguments, the main job. What it trains is planned in
``run_plan.py``, where the cells run is chosen in ``run_launch.py``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from wsolbench.cli import BoxSearchOption, app
from wsolbench.cli.eval_cmd import print_metrics
from wsolbench.errors import WsolbenchError

MAIN_JOB = "main-job"  # the shipped grid file `wsolbench run` runs when no grid is given (configs/main-job.toml)


def _opt(help_text: str, *names: str):
    return typer.Option(*names, help=help_text)


@app.command("run")
def run_command(
    ctx: typer.Context,
    config: Annotated[Optional[str], _opt("A grid file (TOML; a shipped one by name: main-job, pretrained) whose keys are "
                                          "these options, or a run's config.json to train that run again. "
                                          "Options given here win over the file.", "--config")] = None,
    method: Annotated[Optional[list[str]], _opt("Method (repeatable). Default: the main job's methods.", "--method", "-m")] = None,
    backbone: Annotated[Optional[list[str]], _opt("Backbone (repeatable): a paper backbone or any timm CNN.", "--backbone", "-b")] = None,
    dataset: Annotated[Optional[list[str]], _opt("Dataset (repeatable). Default: synthetic.", "--dataset", "-d")] = None,
    seeds: Annotated[Optional[list[int]], _opt("Seeds: --seeds 0 1 2 (or --seed N).", "--seeds", "--seed")] = None,
    data_root: Annotated[Optional[Path], _opt("Dataset folder (synthetic: generated there if empty).", "--data-root")] = None,
    data_options: Annotated[Optional[list[str]], _opt("Dataset reader option key=value (repeatable), e.g. "
                                                      "--data-option metadata=~/wsolevaluation/metadata.", "--data-option")] = None,
    epochs: Annotated[Optional[int], _opt("Training epochs.", "--epochs")] = None,
    batch_size: Annotated[Optional[int], _opt("Images per step over all processes.", "--batch-size")] = None,
    lr: Annotated[Optional[float], _opt("Base learning rate (with --pretrained: head x10, biases x2 on top; from random init every parameter at it).", "--lr")] = None,
    settings: Annotated[Optional[list[str]], _opt("Method setting key=value (repeatable), e.g. --set delta=0.6; "
                                                  "key=v1,v2 sweeps (several keys: their product), selected on val.", "--set")] = None,
    sweep_budget: Annotated[Optional[int], _opt("Run N settings drawn (seeded) from the --set product.", "--sweep-budget")] = None,
    sweep_seed: Annotated[int, _opt("Seed of the --sweep-budget draw.", "--sweep-seed")] = 0,
    protocol: Annotated[Optional[str], _opt("Protocol (default: the dataset's).", "--protocol")] = None,
    policy: Annotated[Optional[str], _opt("Threshold policy: val | test-optimal | fixed:T.", "--policy")] = None,
    input_size: Annotated[Optional[int], _opt("Network input size (default: the dataset's).", "--input-size")] = None,
    pretrained: Annotated[Optional[str], _opt("Local backbone weights (.pth/.safetensors).", "--pretrained")] = None,
    output_stride: Annotated[Optional[int], _opt("timm backbones: output stride (e.g. 8 or 16).", "--output-stride")] = None,
    out: Annotated[Path, _opt("Folder of run folders.", "--out")] = Path("runs"),
    resume: Annotated[Optional[Path], _opt("Continue the run in this folder.", "--resume")] = None,
    device: Annotated[str, _opt("auto | cpu | cuda | cuda:N.", "--device")] = "auto",
    amp: Annotated[bool, _opt("Mixed precision (CUDA: float16, CPU: bfloat16).", "--amp")] = False,
    channels_last: Annotated[bool, _opt("channels_last memory format.", "--channels-last")] = False,
    workers: Annotated[Optional[int], _opt("Data loader worker processes (default: cores - 1 on CUDA, 0 on CPU).", "--workers")] = None,
    skip_bad: Annotated[bool, _opt("Skip bad samples (reported) instead of stopping.", "--skip-bad")] = False,
    no_progress: Annotated[bool, _opt("No progress bars.", "--no-progress")] = False,
    tensorboard: Annotated[bool, _opt("TensorBoard event files in each run folder, written live (loss terms, rates, "
                                      "val metrics, val maps): pip install 'wsolbench[tensorboard]'.", "--tensorboard")] = False,
    leaderboard_out: Annotated[Optional[Path], _opt("Write the leaderboards of --out here at the end (the main job: "
                                                    "leaderboards).", "--leaderboard-out")] = None,
    board_name: Annotated[Optional[str], _opt("With --leaderboard-out: the boards' name in their file names "
                                              "(DATASET-NAME-PROTOCOL.md).", "--board-name")] = None,
    explainers: Annotated[Optional[list[str]], _opt("Also score each run's classifier through this post-hoc explainer "
                                                    "(repeatable; a grid axis), e.g. gradcampp.", "--explainer")] = None,
    explainer_layer: Annotated[Optional[str], _opt("Explainer target layer (default: the backbone's last stage).",
                                                   "--explainer-layer")] = None,
    tencrop: Annotated[bool, _opt("Also score each run (and each explainer) with ten-crop classes, maps from the full "
                                  "view: eval-PROTOCOL[-EXPLAINER]-tencrop.json.", "--tencrop")] = False,
    launcher: Annotated[Optional[str], _opt("Run each cell as a job: local (processes here) | slurm. "
                                            "Default: one after another in this process.", "--launcher")] = None,
    max_parallel: Annotated[Optional[int], _opt("--launcher: at most this many cells at once.", "--max-parallel")] = None,
    slurm: Annotated[Optional[str], _opt("--launcher slurm resources: partition=P,gpus=N,time=HH:MM:SS,"
                                         "array-parallelism=N (also cpus, mem, account, qos, constraint).", "--slurm")] = None,
    cluster_config: Annotated[Optional[Path], _opt("TOML file whose [slurm] table gives the --slurm keys.", "--cluster-config")] = None,
    box_search: BoxSearchOption = None,
    score_workers: Annotated[Optional[int], _opt("Processes scoring the boxes (default: the usable cores; "
                                                 "--workers is the data loader's).", "--score-workers")] = None,
    jobs: Annotated[Optional[int], _opt("Cells side by side on this machine, each with cores / N threads "
                                        "(0: one per core; default 1, one after another).", "--jobs", "-j")] = None,
):
    """Train and evaluate method x backbone x dataset x seed; complete runs are skipped. With no grid, the main job."""
    from wsolbench.engine.train import Interrupted

    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 speaks and writes
    console = Console(quiet=not is_main)
    try:
        if config is not None and config.endswith(".json"):
            from wsolbench.cli.rerun import rerun

            rerun(ctx, Path(config), console)
            return
        results, opts = _run_grid(ctx, config if config or method or backbone or dataset or resume else MAIN_JOB,
                                  console, is_main)
    except Interrupted as exc:
        console.print(f"[yellow]{escape(str(exc))}[/]")
        raise typer.Exit(130)
    if results is None:  # --resume: one run, its metrics printed
        return
    _print_summary(console, results)
    if opts["leaderboard_out"] is not None and is_main:
        _write_boards(opts["out"], opts["leaderboard_out"], opts["board_name"], console)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _run_grid(ctx: typer.Context, grid_file: str | None, console, is_main: bool):
    """The grid of the command line over ``grid_file``'s keys: (a GridResult per cell, the options used)."""
    from wsolbench.cli import grid_file as G
    from wsolbench.cli.run_launch import execute
    from wsolbench.cli.run_plan import plan_configs
    from wsolbench.cli.score import check_options
    from wsolbench.engine.rundir import CONFIG, read_json
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.sweep import select
    from wsolbench.engine.train import train_and_evaluate

    path = G.resolve(grid_file) if grid_file else None
    o = G.merge(ctx, path, run_command) if path else dict(ctx.params)
    check_options(o["score_workers"], o["box_search"], "--score-workers")
    if o["jobs"] is not None and o["jobs"] < 0:
        raise WsolbenchError(f"--jobs {o['jobs']}: must be 0 (one per core) or more")
    if o["tensorboard"]:  # a missing package: one line before any cell, not one per cell
        from wsolbench.engine.tensorboard import summary_writer_class

        summary_writer_class()
    if o["board_name"] is not None and o["leaderboard_out"] is None:
        raise WsolbenchError("--board-name goes with --leaderboard-out (where the boards are written)")
    if o["resume"] is not None:
        cfg = RunConfig.from_dict(read_json(o["resume"] / CONFIG))
        train_and_evaluate(cfg, resume=o["resume"], console=console, show_progress=not o["no_progress"])
        print_metrics(console, o["resume"])
        return None, o
    given = {k: o[k] for k in ("epochs", "batch_size", "lr", "input_size", "pretrained", "output_stride", "box_search",
                               "score_workers")}
    given.update(data_root=str(o["data_root"]) if o["data_root"] else None, protocol=o["protocol"],
                 threshold_policy=o["policy"])
    fixed = dict(out=str(o["out"]), device=o["device"], amp=o["amp"], channels_last=o["channels_last"],
                 num_workers=o["workers"], skip_bad=o["skip_bad"], grid_file=grid_file, tensorboard=o["tensorboard"])
    configs, grid, sweep_info = plan_configs(o["method"], o["backbone"], o["dataset"], o["seeds"], given, fixed,
                                             o["settings"], o["data_options"], o["sweep_budget"], o["sweep_seed"])
    cluster_config = o["cluster_config"] or (o.get("slurm_file") if o["launcher"] == "slurm" else None)
    results = execute(configs, console, launcher=o["launcher"], max_parallel=o["max_parallel"], slurm=o["slurm"],
                      cluster_config=cluster_config, jobs=o["jobs"], show_progress=not o["no_progress"])
    if len(grid) > 1 and is_main:
        _print_selection(console, select(configs, o["out"], sweep_info), o["out"])
    if o["explainers"] or o["tencrop"]:
        from wsolbench.engine.reeval import extra_evaluations

        extra_evaluations([r.run_dir for r in results if r.status != "failed" and r.cfg.method not in ("center-box", "full-image")],
                          o["explainers"] or [], o["explainer_layer"], console, device=o["device"], tencrop=o["tencrop"])
    return results, o


def _write_boards(out: Path, leaderboard_out: Path, name: str | None, console) -> None:
    """The grid's end: the markdown leaderboards of ``out`` (printed) and the HTML pages beside them."""
    from wsolbench.leaderboard import write_leaderboards
    from wsolbench.report import write_reports

    paths = write_leaderboards(out, leaderboard_out, console=console, name=name)
    for p in paths:
        if p.suffix == ".md":  # as written: markdown tables must not be re-wrapped to the terminal width
            console.print(p.read_text(), soft_wrap=True, markup=False, highlight=False)
    write_reports(out, leaderboard_out, console=console, warn=False, name=name)


def _print_summary(console, results) -> None:
    from rich.table import Table

    table = Table(title="runs")
    for col in ("method", "backbone", "dataset", "seed", "status", "seconds", "folder / error"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.cfg.method, r.cfg.backbone, r.cfg.dataset, str(r.cfg.seed), r.status,
                      f"{r.seconds:.0f}" if r.seconds else "", r.error or str(r.run_dir))
    console.print(table)


def _print_selection(console, records, out: Path) -> None:
    from wsolbench.engine.sweep import selection_label

    for r in records:
        head = f"sweep {r['method']} / {r['backbone']} / {r['dataset']}"
        if r["selected"] is None:
            console.print(f"[red]{head}: no setting has a val figure, nothing selected[/]", highlight=False)
        else:
            console.print(f"{head}: {selection_label(r)} (record under {out / r['dataset'] / 'sweeps'})",
                          highlight=False, markup=False, soft_wrap=True)
