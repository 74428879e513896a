"""``wsolbench show RUN_DIR`` and ``wsolbench compare RUN_A RUN_B``: pictures of finished runs."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wsolbench.cli import app

SplitOption = Annotated[str, typer.Option("--split", help="Split to draw: test, val or train.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the image choice.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")]


@app.command("show")
def show_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished run folder.")],
    split: SplitOption = "test",
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 16,
    out: Annotated[Optional[Path], typer.Option("--out", help="Grid PNG (default RUN_DIR/show-SPLIT.png); "
                                                "the curves and losses go beside it as NAME-curves.png, NAME-losses.png.")] = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
):
    """A grid of images with the true class's map, ground truth (green) and predicted box (red), the
    localization accuracy against threshold (val and test) with the run's chosen threshold marked, and the
    training loss terms (CE, SC, GC, ...) against the step from steps.jsonl."""
    from wsolbench import finished_run as F
    from wsolbench import pictures as P

    F.check_split(split)  # bad options and a missing or unfinished run fail before the model is built
    P.pick_images(1, n, seed)
    F.read_finished_run(run_dir)
    run = F.load_run(run_dir, device=device, log=typer.echo)
    indices = P.pick_images(len(run.samples(split)), n, seed)
    tiles = F.make_tiles(run, split, indices)
    grid_path = out or run_dir / f"show-{split}.png"
    curves_path = grid_path.with_name(f"{grid_path.stem}-curves.png") if out else run_dir / "curves.png"
    losses_path = grid_path.with_name(f"{grid_path.stem}-losses.png") if out else run_dir / "losses.png"
    P.save_png(P.grid_figure(run, split, tiles), grid_path)
    P.save_png(P.curves_figure(run.metrics, run.label, str(run_dir / "metrics.json")), curves_path)
    typer.echo(f"wrote {grid_path} ({len(tiles)} {split} images, threshold {run.threshold:g})")
    typer.echo(f"wrote {curves_path}")
    steps_path = run_dir / "steps.jsonl"
    if steps_path.is_file():  # the trivial baselines do not train: no steps, no loss picture
        P.save_png(P.losses_figure(P.read_steps(steps_path), run.label), losses_path)
        typer.echo(f"wrote {losses_path}")


@app.command("compare")
def compare_command(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="First finished run folder.")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="Second finished run folder (same dataset).")],
    split: SplitOption = "test",
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 8,
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG to write (default: compare-RUN_A-vs-RUN_B-SPLIT.png "
                                                "beside the first run folder).")] = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
):
    """The same images side by side: each run's map and predicted box, with the shared ground truth."""
    from wsolbench import finished_run as F
    from wsolbench import pictures as P
    from wsolbench.errors import WsolbenchError

    F.check_split(split)
    P.pick_images(1, n, seed)
    configs = [F.read_finished_run(d)[0] for d in (run_a, run_b)]
    datasets = [(c.get("dataset"), str(Path(c["data_root"]).resolve()) if c.get("data_root") else None) for c in configs]
    if datasets[0] != datasets[1]:
        raise WsolbenchError(f"{run_a} is on dataset {_where(datasets[0])} but {run_b} on {_where(datasets[1])}: "
                             f"compare needs two runs on the same dataset")
    runs = (F.load_run(run_a, device=device, log=typer.echo), F.load_run(run_b, device=device, log=typer.echo))
    ids = [[s.image_id for s in r.samples(split)] for r in runs]
    if ids[0] != ids[1]:  # e.g. one run skipped bad samples
        raise WsolbenchError(f"{run_a} and {run_b}: the {split} splits hold different images")
    indices = P.pick_images(len(ids[0]), n, seed)
    tiles = (F.make_tiles(runs[0], split, indices), F.make_tiles(runs[1], split, indices))
    path = out or run_a.parent / f"compare-{run_a.name}-vs-{run_b.name}-{split}.png"
    P.save_png(P.compare_figure(runs, split, tiles), path)
    typer.echo(f"wrote {path} ({len(indices)} {split} images)")


def _where(dataset: tuple) -> str:
    name, root = dataset
    return f"{name} ({root})" if root else str(name)
