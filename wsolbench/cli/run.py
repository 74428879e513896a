"""``wsolbench run`` (one run or a grid; with no arguments, the main job) and ``wsolbench eval RUN_DIR``."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from wsolbench.cli import BoxSearchOption, app

# The main job: every seed method and the trivial baselines, a small backbone, the synthetic set.
MAIN_JOB_METHODS = ["center-box", "full-image", "cam", "acol-simplified", "i2c-sc", "i2c", "i2c-bpgc"]


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
    lr: Annotated[Optional[float], _opt("Base learning rate (head x10, biases x2 on top).", "--lr")] = None,
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
):
    """Train and evaluate method x backbone x dataset x seed; complete runs are skipped."""
    from wsolbench.engine.defaults import run_defaults
    from wsolbench.engine.grid import expand, run_grid
    from wsolbench.engine.runconfig import RunConfig, parse_settings, parse_sweep
    from wsolbench.engine.sweep import check_sweep, select, sweep_settings
    from wsolbench.engine.rundir import CONFIG, read_json
    from wsolbench.engine.train import Interrupted, train_and_evaluate

    from wsolbench.cli.score import check_options

    check_options(score_workers, box_search, "--score-workers")
    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 speaks and writes
    console = Console(quiet=not is_main)
    try:
        if resume is not None:
            cfg = RunConfig.from_dict(read_json(resume / CONFIG))
            train_and_evaluate(cfg, resume=resume, console=console, show_progress=not no_progress)
            _print_metrics(console, resume)
            return
        main_job = not (method or backbone or dataset)
        method = canonical_methods(method)  # an alias (acol) names the same run as its entry (acol-simplified)
        given = dict(data_root=str(data_root) if data_root else None, epochs=epochs, batch_size=batch_size, lr=lr,
                     protocol=protocol, threshold_policy=policy, input_size=input_size, pretrained=pretrained,
                     output_stride=output_stride, box_search=box_search, score_workers=score_workers)
        configs = []
        sweep = parse_sweep(settings)  # key -> values; one value each: no sweep
        grid, sweep_info = sweep_settings(sweep, sweep_budget, sweep_seed)
        for name in dataset or [RunConfig.dataset]:
            # per dataset: its defaults, then the options given; its method settings apply where a
            # method has them, --set wins over them
            defaults = run_defaults(name)
            dataset_settings = defaults.pop("method_settings", {})
            check_sweep(sweep, method or (MAIN_JOB_METHODS if main_job else [RunConfig.method]), dataset_settings)
            for user_settings in grid:
                method_settings = {**dataset_settings, **user_settings}
                base = RunConfig(dataset=name, out=str(out), device=device, amp=amp, channels_last=channels_last,
                                 num_workers=workers, skip_bad=skip_bad, **defaults, method_settings=method_settings,
                                 dataset_options=parse_settings(data_options))
                base = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
                configs += expand(base, method or (MAIN_JOB_METHODS if main_job else None), backbone, [name], seeds,
                                  default_settings=set(method_settings) - set(user_settings))
        from wsolbench.backbones.families import apply_family_regime  # --pretrained: the family's input size, stride

        configs = [apply_family_regime(c, {k for k, v in given.items() if v is not None}) for c in configs]
        configs = list({c.run_id(): c for c in configs}.values())  # a method without the swept key: once
        if launcher is not None or slurm is not None or cluster_config is not None or max_parallel is not None:
            from wsolbench.engine.launch import launch_grid, parse_slurm
            from wsolbench.plugins import loaded_files

            results = launch_grid(configs, launcher or "", console, max_parallel=max_parallel,
                                  slurm=parse_slurm(slurm, cluster_config), plugins=loaded_files())
        else:
            results = run_grid(configs, console, show_progress=not no_progress)
        if len(grid) > 1 and is_main:
            _print_selection(console, select(configs, out, sweep_info), out)
        if explainers:
            from wsolbench.explain import explain_runs

            explain_runs([r.run_dir for r in results if r.status != "failed" and r.cfg.method not in ("center-box", "full-image")],
                         explainers, explainer_layer, console, device=device)
    except Interrupted as exc:
        console.print(f"[yellow]{escape(str(exc))}[/]")
        raise typer.Exit(130)
    _print_summary(console, results)
    if main_job and is_main:
        from wsolbench.leaderboard import write_leaderboards

        paths = write_leaderboards(out, leaderboard_out, console=console)
        for p in paths:
            if p.suffix == ".md":  # as written: markdown tables must not be re-wrapped to the terminal width
                console.print(p.read_text(), soft_wrap=True, markup=False, highlight=False)
        from wsolbench.report import write_reports  # the HTML pages beside the markdown

        write_reports(out, leaderboard_out, console=console, warn=False)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def canonical_methods(names: Optional[list[str]]) -> Optional[list[str]]:
    """Aliases resolved, duplicates dropped (``-m acol -m acol-simplified`` is one method)."""
    from wsolbench.registry import METHODS

    return list(dict.fromkeys(METHODS.canonical(n) for n in names)) if names else names


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


def _print_metrics(console, run_dir: Path, name: str = "metrics.json") -> None:
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
):
    """Re-evaluate a trained run (optionally under another protocol or through an explainer); writes eval-PROTOCOL[-EXPLAINER].json."""
    from wsolbench.engine.reeval import reevaluate

    console = Console()
    from wsolbench.cli.score import check_options

    check_options(score_workers, box_search)
    name = reevaluate(run_dir, protocol=protocol, policy=policy, save_maps=save_maps, device=device,
                      explainer=explainer, explainer_layer=explainer_layer, box_search=box_search,
                      score_workers=score_workers)
    _print_metrics(console, run_dir, name)
