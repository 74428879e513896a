"""``wsolbench list methods|backbones|datasets|protocols [PATTERN]``."""
from __future__ import annotations

import dataclasses
import fnmatch
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from wsolbench.cli import app


class Kind(str, Enum):
    methods = "methods"
    backbones = "backbones"
    datasets = "datasets"
    protocols = "protocols"


def _defaults_text(entry, limit: int = 6) -> str:
    """What makes a variant (the registration's keyword arguments), else the typed config's own defaults."""
    items = dict(entry.defaults)
    config = getattr(entry.obj, "Config", None)
    notes = {}  # a default's provenance where it is not the paper's (the field's metadata "note")
    if dataclasses.is_dataclass(config):
        notes = {f.name: (f.default, f.metadata["note"]) for f in dataclasses.fields(config) if "note" in f.metadata}
    if not items and dataclasses.is_dataclass(config):
        fields = [f for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING
                  and not f.metadata.get("diagnostic")]  # e.g. log_grads: not a setting of the method
        base = {f.name for f in dataclasses.fields(config.__mro__[1])} if dataclasses.is_dataclass(config.__mro__[1]) else set()
        own = [f for f in fields if f.name not in base] or fields
        items = {f.name: f.default for f in own[:limit]}
        if len(own) > limit:
            items["..."] = f"{len(own) - limit} more"
    return ", ".join(f"(+{v})" if k == "..." else f"{k}={v}" + (f" ({notes[k][1]})" if notes.get(k, (None,))[0] == v else "")
                     for k, v in items.items())


@app.command("list")
def list_command(
    kind: Annotated[Kind, typer.Argument(help="What to list.")],
    pattern: Annotated[Optional[str], typer.Argument(help="Shell-style wildcard, e.g. 'i2c*'.")] = None,
):
    """List registered methods, backbones, datasets or protocols."""
    from wsolbench.registry import REGISTRIES

    registry = REGISTRIES[kind.value]
    table = Table(title=f"{kind.value}" + (f" matching '{pattern}'" if pattern else ""))
    for col in ("name", "description", "key defaults", "source"):
        table.add_column(col, overflow="fold")
    for entry in registry.entries(pattern):
        table.add_row(entry.name, entry.description, _defaults_text(entry), entry.source)
    aliases = {a: n for a, n in registry.aliases().items() if pattern is None or fnmatch.fnmatchcase(a, pattern)}
    for alias, name in aliases.items():  # an old name still accepted: the same entry, the same runs
        table.add_row(alias, f"alias of {name} (same entry, same runs)", "", registry.get(name).source)
    extra = []
    if kind is Kind.backbones:
        from wsolbench.backbones import list_timm_backbones
        from wsolbench.backbones.vit import list_token_backbones

        if pattern:
            # a timm name the paper registers (resnet50) stays reachable as timm/NAME
            extra = [n if n not in registry else f"timm/{n}" for n in list_timm_backbones(pattern)]
            for name in extra:
                table.add_row(name, "timm model, last feature stage", "", "timm")
            tokens = list_token_backbones(pattern)
            for name in tokens:
                table.add_row(name, "timm vision transformer, patch tokens as the map", "", "timm")
            extra += tokens
    console = Console()
    console.print(table)
    if kind is Kind.backbones and not pattern:
        console.print("Any timm CNN works too: search them with [bold]wsolbench list backbones 'PATTERN'[/].")
        console.print("Vision transformers: timm's VisionTransformer families (vit_*, deit_*, deit3_*, flexivit_*; "
                      "their distilled and register variants), patch tokens as the map (docs/transformers.md).")
    if pattern and not registry.names(pattern) and not aliases and not extra:
        console.print(f"no {kind.value} match '{pattern}'")
