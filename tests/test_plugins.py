"""The three plugin routes each register a toy method that `wsolbench list methods` then shows."""
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]

TOY = textwrap.dedent(
    '''
    """A toy method plugin used by the tests."""
    from wsolbench.methods.base import Method, register_method


    @register_method("{name}", description="toy plugin method {name}")
    class Toy(Method):
        pass
    '''
)


def _wsolbench(*args, env_extra=None, cwd=None):
    env = {**os.environ, "COLUMNS": "250", **(env_extra or {})}
    cmd = [sys.executable, "-m", "wsolbench", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_plugin_file_on_the_command_line(tmp_path):
    plugin = tmp_path / "my_method.py"
    plugin.write_text(TOY.format(name="toy-file"))
    # the option works before the command and on the command itself
    for args in (["--plugin", plugin, "list", "methods"], ["list", "methods", "toy*", "--plugin", plugin]):
        res = _wsolbench(*args, env_extra={"COLUMNS": "1000"})  # the source path on one line, however long
        assert res.returncode == 0, res.stderr
        assert "toy-file" in res.stdout and str(plugin) in res.stdout


def test_module_dropped_into_methods_folder():
    import wsolbench.methods

    folder = Path(wsolbench.methods.__file__).parent
    name = f"toy-folder-{uuid.uuid4().hex[:6]}"
    module = folder / f"zz_test_toy_{uuid.uuid4().hex[:8]}.py"
    module.write_text(TOY.format(name=name))
    try:
        res = _wsolbench("list", "methods", "toy-folder-*")
    finally:
        module.unlink()
    assert res.returncode == 0, res.stderr
    assert name in res.stdout and "builtin" in res.stdout


def test_installed_distribution_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "toy_wsol_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "toy_wsol_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-wsol-plugin\nVersion: 0.1\n"
    )
    (site / "toy_wsol_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[wsolbench.methods]\ntoy = toy_wsol_plugin\n"
    )
    (site / "toy_wsol_plugin.py").write_text(TOY.format(name="toy-entry-point"))
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    res = _wsolbench("list", "methods", env_extra=env)
    assert res.returncode == 0, res.stderr
    assert "toy-entry-point" in res.stdout and "toy-wsol-plugin:toy" in res.stdout.replace("\n", "")

    # a broken entry point: one line naming it, no traceback
    (site / "toy_wsol_plugin.py").write_text("raise ImportError('needs a missing library')\n")
    res = _wsolbench("list", "methods", env_extra=env)
    assert res.returncode == 2
    assert "entry point 'toy'" in res.stderr and "needs a missing library" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_broken_or_missing_plugin_file_is_one_clear_line(tmp_path, run_cli):
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import not_a_real_module_xyz\n")
    code, out, err = run_cli("list", "methods", "--plugin", broken)
    assert code == 2
    assert str(broken) in err.replace("\n", "") and "not_a_real_module_xyz" in err
    assert "Traceback" not in err

    code, out, err = run_cli("list", "methods", "--plugin", tmp_path / "absent.py")
    assert code == 2 and "does not exist" in err

    first, second = tmp_path / "first_plugin.py", tmp_path / "second_plugin.py"
    first.write_text(TOY.format(name="toy-dup"))
    second.write_text(TOY.format(name="toy-dup"))
    code, out, err = run_cli("list", "methods", "--plugin", first, "--plugin", second)
    assert code == 2 and "method 'toy-dup' is already registered" in err and str(first) in err.replace("\n", "")


def test_install_adds_no_top_level_methods_or_protocols_package(tmp_path):
    code = (
        "import importlib.util as u, sys;"
        "print(u.find_spec('methods'), u.find_spec('protocols'), u.find_spec('wsolbench.methods') is not None,"
        " u.find_spec('wsolbench.protocols') is not None)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.stdout.split() == ["None", "None", "True", "True"], res.stderr


def test_plugin_option_declared_once():
    """Only the root command declares --plugin; a --plugin after any command is moved to it."""
    import typer.main

    from wsolbench.cli import app, hoist_plugins
    from wsolbench.cli import commands  # noqa: F401 - registers the commands

    group = typer.main.get_command(app)

    def owners(cmd, path):
        found = [path] if any("--plugin" in p.opts for p in cmd.params) else []
        for name, sub in getattr(cmd, "commands", {}).items():
            found += owners(sub, f"{path} {name}")
        return found

    assert owners(group, "wsolbench") == ["wsolbench"]
    assert hoist_plugins(["run", "-m", "cam", "--plugin", "a.py", "--plugin=b.py"]) == \
        ["--plugin", "a.py", "--plugin=b.py", "run", "-m", "cam"]
