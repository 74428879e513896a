"""The README's quick start is what CI runs: the test command in .ci/run is the README's, verbatim."""
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


def test_readme_plugin_example_runs(tmp_path, run_cli):
    """The plugin how-to's example is real code: load it with --plugin and train it for a step."""
    text = (REPO / "README.md").read_text()
    section = text.split("A minimal method plugin:", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    plugin = tmp_path / "my_method.py"
    plugin.write_text(code)
    from wsolbench.data.synthetic import generate

    data = generate(tmp_path / "synth", classes=4, per_class=4, test_per_class=2, size=32)
    code_, out, err = run_cli("run", "-m", "my-method", "-b", "test_resnet", "-d", "synthetic", "--data-root", data,
                              "--epochs", "1", "--batch-size", "4", "--input-size", "32", "--set", "temperature=2",
                              "--out", tmp_path / "runs", "--no-progress", "--plugin", plugin)
    assert code_ == 0, out + err
    (metrics,) = (tmp_path / "runs").rglob("metrics.json")
    assert '"temperature": 2.0' in (metrics.parent / "config.json").read_text()
