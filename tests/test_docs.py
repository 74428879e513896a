"""The docs are tested like the README: their code blocks run, or say why they do not, and every relative
link in README.md and docs/ resolves.

A code block (```bash, ```python, or a bare ``` block holding a `wsolbench` command) carries a marker on the
line above it:

    <!-- run -->               run as written, in order, in an empty folder per document (bash -eu, or python)
    <!-- file: NAME -->        written to NAME in that folder, for the blocks after it (a plugin file, say)
    <!-- not run: REASON -->   not run, for the reason given (needs real data, a GPU, ten minutes, ...)

An unmarked block fails the test, so nothing is skipped silently. The `wsolbench` commands of blocks that are
not run are still parsed by the real command line: the command exists and takes every option written.
"""
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*(run|file:\s*(\S+)|not run:\s*(.+?))\s*-->\s*$", re.S)
CODE_LANGS = {"bash", "sh", "shell", "console", "python"}


@dataclass
class Block:
    where: str  # path:line of the opening fence
    lang: str
    code: str
    kind: str | None  # "run", "file", "not run" or None (unmarked)
    arg: str | None  # the file name, or the reason


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARKER.search(before)
        kind = arg = None
        if mark:
            kind = "run" if mark.group(1) == "run" else ("file" if mark.group(2) else "not run")
            arg = mark.group(2) or mark.group(3)
        line = text.count("\n", 0, m.start()) + 1
        found.append(Block(f"{path.relative_to(REPO)}:{line}", m.group(1), m.group(2), kind, arg))
    return found


def needs_marker(block: Block) -> bool:
    return block.lang in CODE_LANGS or any(l.startswith("wsolbench ") for l in block.code.splitlines())


def test_every_code_block_is_marked():
    unmarked = [b.where for path in DOCS for b in blocks(path) if needs_marker(b) and b.kind is None]
    assert not unmarked, f"code blocks without a <!-- run --> / <!-- file: --> / <!-- not run: reason --> marker: {unmarked}"
    reasons = [b for path in DOCS for b in blocks(path) if b.kind == "not run"]
    assert all(len(b.arg) > 10 for b in reasons), [b.where for b in reasons if len(b.arg) <= 10]


RUNNABLE = [p for p in DOCS if any(b.kind == "run" for b in blocks(p))]


@pytest.mark.parametrize("path", RUNNABLE, ids=[str(p.relative_to(REPO)) for p in RUNNABLE])
def test_the_blocks_run_as_written(path, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "WSOLBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "COLUMNS": "200"}
    for block in blocks(path):
        if block.kind == "file":
            (tmp_path / block.arg).write_text(block.code)
        elif block.kind == "run":
            argv = [sys.executable, "-c", block.code] if block.lang == "python" else ["bash", "-euo", "pipefail", "-c", block.code]
            proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"{block.where} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _commands(code: str) -> list[list[str]]:
    """The `wsolbench ...` commands of a block, as argv lists (continuations joined, comments dropped)."""
    code = code.replace("\\\n", " ")
    commands = []
    for line in code.splitlines():
        for part in line.split(";"):
            part = part.split(" #", 1)[0].strip()
            if not part.startswith("wsolbench "):
                continue
            part = re.sub(r"\[([^\]]*)\]", r"\1", part)  # synopsis: [--seed 0] is an option written out
            argv = []
            for token in shlex.split(part)[1:]:
                # synopsis alternatives: --multi-contour|--largest are two flags; val|test-optimal one value
                argv += token.split("|") if token.startswith("--") and "|" in token else [token]
            commands.append(argv)
    return commands


def _parse(argv: list[str]) -> None:
    """Parse ``argv`` with the real command line, down to the leaf command; raises click's error if it is wrong."""
    from wsolbench.cli import app, expand_variadic
    import wsolbench.cli.commands  # noqa: F401  (registers every command)

    command = typer.main.get_command(app)
    args = expand_variadic(argv)
    ctx = command.make_context("wsolbench", args)
    while hasattr(command, "resolve_command"):  # a group (typer's own click, or click's)
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        name, command, args = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, args, parent=ctx)


def test_commands_not_run_still_parse():
    checked = 0
    for path in DOCS:
        for block in blocks(path):
            if block.kind == "not run":
                for argv in _commands(block.code):
                    try:
                        _parse(argv)
                    except Exception as exc:  # click's usage errors (typer may carry its own copy of click)
                        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
                        pytest.fail(f"{block.where}: wsolbench {shlex.join(argv)}: {message}")
                    checked += 1
    assert checked >= 20  # the README's usage, the docs' synopses and examples


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def test_every_relative_link_resolves():
    broken = []
    for path in DOCS:
        text = FENCE.sub("", path.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150
