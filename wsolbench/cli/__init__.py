"""The ``wsolbench`` command line. Each command lives in its own module and plugs into ``app``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from wsolbench import __version__

app = typer.Typer(
    name="wsolbench",
    help="Benchmark harness for weakly supervised object localization (WSOL).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# An option that score, eval and run share
BoxSearchOption = Annotated[Optional[str], typer.Option(
    "--box-search", help="fast | reference: how the protocol finds boxes (same numbers; reference: one OpenCV "
                         "contour search per threshold).")]

def _version(value: bool):
    if value:
        typer.echo(f"wsolbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    plugin: Annotated[Optional[list[Path]], typer.Option(
        "--plugin", help="Python file registering methods, datasets, backbones or protocols (repeatable; "
                         "also accepted after the command).")] = None,
):
    # The one place --plugin is declared and loaded: main() moves a --plugin given after the command here.
    from wsolbench.plugins import load_plugins

    load_plugins(plugin or ())


def _user_errors() -> tuple[type[BaseException], ...]:
    from wsolbench.errors import WsolbenchError
    from wsolbench.plugins import PluginError
    from wsolbench.registry import RegistryError

    return (WsolbenchError, PluginError, RegistryError)


VARIADIC_OPTIONS = ("--seeds",)  # options taking several values after one flag: --seeds 0 1 2


def expand_variadic(argv: list[str]) -> list[str]:
    """``--seeds 0 1 2`` -> ``--seeds 0 --seeds 1 --seeds 2`` (click options take one value per flag)."""
    out, i = [], 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] in VARIADIC_OPTIONS:
            j = i + 1
            while j < len(argv) and not argv[j].startswith("-"):
                if j > i + 1:
                    out.append(argv[i])
                out.append(argv[j])
                j += 1
            i = j
            continue
        i += 1
    return out


def hoist_plugins(argv: list[str]) -> list[str]:
    """``run -m x --plugin p.py`` -> ``--plugin p.py run -m x``: the root command loads every plugin."""
    plugins, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] == "--plugin" and i + 1 < len(argv):
            plugins += argv[i:i + 2]
            i += 2
            continue
        if argv[i].startswith("--plugin="):
            plugins.append(argv[i])
        else:
            rest.append(argv[i])
        i += 1
    return plugins + rest


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: user errors print one line on stderr and exit 2."""
    from wsolbench.cli import commands  # noqa: F401 - registers the commands on app

    argv = hoist_plugins(expand_variadic(list(sys.argv[1:] if argv is None else argv)))
    try:
        app(args=argv, standalone_mode=True)
    except _user_errors() as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
