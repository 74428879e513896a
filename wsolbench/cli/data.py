"""``wsolbench data ...``: dataset commands (synth, check)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from wsolbench.cli import app

data_app = typer.Typer(help="Make and check datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (must not exist, or be empty).")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    classes: Annotated[int, typer.Option(help="Number of classes (2..64).")] = 8,
    per_class: Annotated[int, typer.Option("--per-class", help="Training images per class.")] = 40,
    test_per_class: Annotated[Optional[int], typer.Option("--test-per-class", help="Test images per class [default: per-class / 2].")] = None,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels.")] = 64,
):
    """Generate the synthetic WSOL set (CUB layout plus masks) into a folder."""
    from wsolbench.data.synthetic import generate

    folder = generate(out, seed=seed, classes=classes, per_class=per_class, test_per_class=test_per_class, size=size)
    params = json.loads((folder / "synthetic.json").read_text())
    total = params["classes"] * (params["per_class"] + params["test_per_class"])
    typer.echo(f"synthetic set: {total} images of {params['classes']} classes, {params['size']} px, seed {params['seed']} "
               f"in {folder} (read it with --dataset synthetic --root {folder}, or --dataset cub)")


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_dataset(dataset: str, root: Optional[Path], metadata: Optional[Path], settings: list[str]):
    """The dataset from CLI options: ``--metadata`` goes to the option the reader names for it."""
    from wsolbench.errors import WsolbenchError
    from wsolbench.registry import DATASETS

    kwargs = {"root": root}
    if metadata is not None:
        key = {"wsoleval": "metadata", "cub": "wsoleval_metadata"}.get(dataset)
        if key is None:
            raise WsolbenchError(f"--metadata applies to the cub and wsoleval datasets, not '{dataset}'")
        kwargs[key] = metadata
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise WsolbenchError(f"--set expects KEY=VALUE, got '{item}'")
        kwargs[key.strip().replace("-", "_")] = _value(value)
    try:
        return DATASETS.get(dataset).build(**kwargs)  # not DATASETS.build: a reader option may be called name
    except TypeError as exc:  # an option the reader does not take
        raise WsolbenchError(f"dataset {dataset}: {exc}") from None


def _summary(ds) -> Table:
    table = Table(title=f"{ds.name}: {ds.num_classes} classes")
    for col in ("split", "images", "classes", "images/class min-max", "boxes/image mean", "max", "no box", "masks"):
        table.add_column(col, justify="right")
    for split in ("train", "val", "test"):
        samples = ds.samples(split)
        per_class = [sum(s.label == c for s in samples) for c in range(ds.num_classes)]
        boxes = [len(s.boxes) for s in samples]
        table.add_row(split, str(len(samples)), str(sum(n > 0 for n in per_class)),
                      f"{min(per_class, default=0)}-{max(per_class, default=0)}",
                      f"{sum(boxes) / len(boxes):.2f}" if boxes else "-", str(max(boxes, default=0)),
                      str(boxes.count(0)), str(sum(s.mask_path is not None for s in samples)))
    return table


def _per_class(ds) -> Table:
    table = Table(title="images per class")
    for col in ("class", "name", "train", "val", "test"):
        table.add_column(col)
    counts = ds.summary()
    for c, name in enumerate(ds.class_names):
        table.add_row(str(c), name, *(str(counts[s][c]) for s in ("train", "val", "test")))
    return table


@data_app.command("check")
def check(
    dataset: Annotated[str, typer.Option("--dataset", help="Registered dataset name (wsolbench list datasets).")],
    root: Annotated[Optional[Path], typer.Option("--root", help="Dataset folder (synthetic: default the cache).")] = None,
    metadata: Annotated[Optional[Path], typer.Option("--metadata", help="wsolevaluation metadata folder (wsoleval; cub val lists).")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="Other reader option KEY=VALUE (repeatable), e.g. class_order=devkit.")] = None,
    decode: Annotated[bool, typer.Option(help="Decode every image fully (finds truncated files; slower).")] = True,
):
    """Validate a dataset folder: a summary, then every problem by file and line (exit 1 if any)."""
    ds = build_dataset(dataset, root, metadata, settings or [])
    console = Console()
    console.print(_summary(ds))
    if ds.num_classes <= 30:
        console.print(_per_class(ds))
    problems = ds.check(decode=decode)
    for p in problems:
        typer.echo(str(p))
    if problems:
        typer.echo(f"{len(problems)} problem{'s' * (len(problems) != 1)} found in {ds.name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"no problems found in {ds.name}")
