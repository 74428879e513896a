"""Grid files (`wsolbench run --config FILE.toml`) and exact re-runs (`--config RUN_DIR/config.json`):
the file and the equivalent command line give the same runs; the command line wins; every bad file is one
line and exit 2; a re-run on this machine reproduces the run's metrics exactly."""
import json
from pathlib import Path

import pytest

from wsolbench.engine import rundir as R


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


def grid_toml(synth, out, extra="") -> str:
    return f'''
methods = ["cam", "acol"]
backbones = ["test_resnet"]
datasets = ["synthetic"]
data_root = "{synth}"
seeds = [0]
epochs = 1
batch_size = 8
lr = 0.01
input_size = 32
output_stride = 8
out = "{out}"
no_progress = true
{extra}
[settings]
head_width = 16
'''


def cli_args(synth, out):
    return ["run", "-m", "cam", "-m", "acol", "-b", "test_resnet", "-d", "synthetic", "--data-root", synth,
            "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--input-size", "32",
            "--output-stride", "8", "--set", "head_width=16", "--out", out, "--no-progress"]


def configs(runs: Path) -> dict:
    """run folder -> config.json without where it was written from."""
    out = {}
    for path in sorted(runs.glob("*/*/config.json")):
        data = json.loads(path.read_text())
        out[path.parent.name] = {k: v for k, v in data.items() if k not in ("out", "grid_file")}
    return out


def test_grid_file_equals_the_command_line_and_the_command_line_wins(synth, tmp_path, run_cli):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_toml(synth, tmp_path / "from-file"))
    code, out, err = run_cli("run", "--config", grid)
    assert code == 0, out + err
    code, out, err = run_cli(*cli_args(synth, tmp_path / "from-cli"))
    assert code == 0, out + err
    from_file, from_cli = configs(tmp_path / "from-file"), configs(tmp_path / "from-cli")
    assert len(from_file) == 2 and from_file == from_cli  # the same run ids, the same configs
    recorded = json.loads(next((tmp_path / "from-file").glob("*/cam__*/config.json")).read_text())
    assert recorded["grid_file"] == str(grid)

    code, out, err = run_cli("run", "--config", grid, "--epochs", "2", "--set", "head_width=8", "-m", "acol",
                             "--out", tmp_path / "override")
    assert code == 0, out + err
    (config,) = configs(tmp_path / "override").values()
    assert (config["method"], config["epochs"], config["method_settings"]["head_width"]) == ("acol-simplified", 2, 8)


@pytest.mark.parametrize("text, words", [
    ("epoch = 3", "unknown key 'epoch'"),
    ("method = ['cam']", "unknown key 'method'; did you mean 'methods'?"),
    ("epochs = 'ten'", "key 'epochs' must be a whole number, got 'ten'"),
    ("lr = true", "key 'lr' must be a number, got True"),
    ("seeds = 1", "key 'seeds' must be a list (seeds = [...]) of values each a whole number, got 1"),
    ("amp = 1", "key 'amp' must be true or false, got 1"),
    ("epochs = 1\nepochs = 2", "not a valid TOML file (Cannot overwrite a value"),
    ("settings = 3", "'settings' must be a table"),
    ("[settings]\ndelta = {a = 1}", "[settings] delta: a value or a list of values, not a table"),
    ("epochs = ", "not a valid TOML file"),
])
def test_every_bad_grid_file_is_one_line_naming_file_and_key(tmp_path, run_cli, text, words):
    grid = tmp_path / "bad.toml"
    grid.write_text(text + "\n")
    code, out, err = run_cli("run", "--config", grid)
    message = (out + err).strip()
    assert code == 2 and words in message and str(grid) in message, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message


def test_missing_grid_file_names_the_shipped_ones(tmp_path, run_cli):
    code, out, err = run_cli("run", "--config", tmp_path / "nope.toml")
    assert code == 2 and "no such file (shipped grid files: main-job, pretrained, transformers)" in out + err


def test_shipped_grid_files_are_valid_and_the_main_job_is_every_training_method():
    from wsolbench.cli import grid_file as G
    from wsolbench.cli.run import run_command
    from wsolbench.plugins import load_builtin
    from wsolbench.registry import METHODS

    load_builtin()
    kinds = G.option_kinds(run_command)
    main = G.read(G.resolve("main-job"), kinds)
    trained = {m for m in METHODS.names() if METHODS.get(m).obj.needs_backbone
               and not METHODS.get(m).obj.needs_tokens}  # the main job's backbone is a CNN; ViT methods: their own board
    assert set(main["method"]) == trained | {"center-box", "full-image"} and main["seeds"] == [0, 1, 2]
    assert main["jobs"] == 0 and main["leaderboard_out"] == Path("leaderboards")
    pretrained = G.read(G.resolve("pretrained"), kinds)
    assert pretrained["board_name"] == "pretrained" and pretrained["pretrained"] == "lite0.pth"
    vit = G.read(G.resolve("transformers"), kinds)  # every transformer method, on a transformer
    assert set(vit["method"]) == {m for m in METHODS.names() if METHODS.get(m).obj.needs_tokens} | {"center-box", "full-image"}
    assert vit["board_name"] == "transformers" and vit["backbone"] == ["deit_tiny_patch16_224"]


def test_rerun_from_config_json_reproduces_the_metrics_exactly(synth, tmp_path, run_cli):
    code, out, err = run_cli(*cli_args(synth, tmp_path / "runs"))
    assert code == 0, out + err
    original = next((tmp_path / "runs").glob("*/cam__*"))
    code, out, err = run_cli("run", "--config", original / R.CONFIG, "--out", tmp_path / "again")
    assert code == 0, out + err
    again = tmp_path / "again" / "synthetic" / original.name  # the same run id, another folder
    metrics = lambda d: {k: v for k, v in json.loads((d / R.METRICS).read_text()).items() if k != "commit"}  # noqa: E731
    assert metrics(again) == metrics(original) and "wsolbench diff" in out

    code, out, err = run_cli("run", "--config", original / R.CONFIG, "--epochs", "3")
    assert code == 2 and "--epochs would change it" in out + err
    code, out, err = run_cli("run", "--config", original / R.CONFIG, "--out", tmp_path / "runs")
    assert code == 2 and "that is the run's own folder" in out + err


def test_tensorboard_key_writes_event_files_in_each_run(synth, tmp_path, run_cli):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_toml(synth, tmp_path / "runs", extra="tensorboard = true"))
    code, out, err = run_cli("run", "--config", grid, "-m", "acol")  # the file's [settings] fit acol
    assert code == 0, out + err
    (run_dir,) = (tmp_path / "runs" / "synthetic").iterdir()
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())
