"""The README's quick start is what CI runs: the test command in .ci/run is the README's, verbatim.
(The plugin example moved to docs/plugins.md; tests/test_docs.py runs it with the docs' other blocks.)"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_has_exactly_two_setup_commands():
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("wsolbench run"), commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = [l for l in (REPO / ".ci" / "run").read_text().splitlines() if l and not l.startswith("#")]
    assert _quickstart_commands()[1] in ci_lines

