"""``wsolbench run`` (one run or a grid; with no arguments, the main job) and ``wsolbench eval RUN_DIR``."""
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

# The main job: every training method and the trivial baselines, three seeds each, on the synthetic set with a
# small backbone (engine/defaults.py); the costliest cells first, so that no core idles at the end.
MAIN_JOB_METHODS = ["spg", "i2c", "i2c-bpgc", "i2c-sc", "i2c-released", "acol-simplified", "cam", "has", "adl", "cutmix",
                    "center-box", "full-image"]
MAIN_JOB_SEEDS = [0, 1, 2]


def MAIN_JOB_JOBS() -> int:  # noqa: N802 - one cell per core, each on one thread
    from wsolbench.protocols.parallel import usable_cores

    return usable_cores()


def _opt(help_text: str, *names: str):
    return typer.Option(*names, help=help_text)


@app.command("run")
def run_command(
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
    leaderboard_out: Annotated[Path, _opt("Where the main job writes its leaderboard.", "--leaderboard-out")] = Path("leaderboards"),
    explainers: Annotated[Optional[list[str]], _opt("Also score each run's classifier through this post-hoc explainer "
                                                    "(repeatable; a grid axis), e.g. gradcampp.", "--explainer")] = None,
    explainer_layer: Annotated[Optional[str], _opt("Explainer target layer (default: the backbone's last stage).",
                                                   "--explainer-layer")] = None,
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
                                        "(default: the main job one per core, else 1).", "--jobs", "-j")] = None,
):
    """Train and evaluate method x backbone x dataset x seed; complete runs are skipped."""
    from wsolbench.cli.run_launch import execute
    from wsolbench.cli.run_plan import plan_configs
    from wsolbench.cli.score import check_options
    from wsolbench.engine.rundir import CONFIG, read_json
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.sweep import select
    from wsolbench.engine.train import Interrupted, train_and_evaluate

    check_options(score_workers, box_search, "--score-workers")
    if jobs is not None and jobs < 1:
        raise WsolbenchError(f"--jobs {jobs}: must be at least 1")
    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 speaks and writes
    console = Console(quiet=not is_main)
    main_job = not (method or backbone or dataset)
    try:
        if resume is not None:
            cfg = RunConfig.from_dict(read_json(resume / CONFIG))
            train_and_evaluate(cfg, resume=resume, console=console, show_progress=not no_progress)
            print_metrics(console, resume)
            return
        given = dict(data_root=str(data_root) if data_root else None, epochs=epochs, batch_size=batch_size, lr=lr,
                     protocol=protocol, threshold_policy=policy, input_size=input_size, pretrained=pretrained,
                     output_stride=output_stride, box_search=box_search, score_workers=score_workers)
        fixed = dict(out=str(out), device=device, amp=amp, channels_last=channels_last, num_workers=workers,
                     skip_bad=skip_bad)
        configs, grid, sweep_info = plan_configs(
            method or (MAIN_JOB_METHODS if main_job else None), backbone, dataset, seeds or (MAIN_JOB_SEEDS if main_job else None),
            given, fixed, settings, data_options, sweep_budget, sweep_seed)
        results = execute(configs, console, launcher=launcher, max_parallel=max_parallel, slurm=slurm,
                          cluster_config=cluster_config, jobs=jobs, default_jobs=MAIN_JOB_JOBS() if main_job else 1,
                          show_progress=not no_progress)
        if len(grid) > 1 and is_main:
            _print_selection(console, select(configs, out, sweep_info), out)
        if explainers:
            from wsolbench.engine.reeval import explain_runs

            explain_runs([r.run_dir for r in results if r.status != "failed" and r.cfg.method not in ("center-box", "full-image")],
                         explainers, explainer_layer, console, device=device)
    except Interrupted as exc:
        console.print(f"[yellow]{escape(str(exc))}[/]")
        raise typer.Exit(130)
    _print_summary(console, results)
    if main_job and is_main:
        _write_boards(out, leaderboard_out, console)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _write_boards(out: Path, leaderboard_out: Path, console) -> None:
    """The main job's end: the markdown leaderboards (printed) and the HTML pages beside them."""
    from wsolbench.leaderboard import write_leaderboards
    from wsolbench.report import write_reports

    paths = write_leaderboards(out, leaderboard_out, console=console)
    for p in paths:
        if p.suffix == ".md":  # as written: markdown tables must not be re-wrapped to the terminal width
            console.print(p.read_text(), soft_wrap=True, markup=False, highlight=False)
    write_reports(out, leaderboard_out, console=console, warn=False)


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
