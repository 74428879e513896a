"""--tensorboard: a real tiny run's event files, read back with TensorBoard's own reader, hold exactly what
steps.jsonl and epochs.jsonl hold; the flag changes neither the run id nor the numbers and, off, imports
nothing; a resumed run shows every step once; a missing package is one line before training."""
import json
import sys

import numpy as np
import pytest

from test_engine import HEAD, _numbers, read_jsonl, synth, tiny  # noqa: F401 - synth is a fixture
from wsolbench.engine import rundir as R
from wsolbench.engine.train import train_and_evaluate
from wsolbench.errors import WsolbenchError

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator as EA  # noqa: E402

SETTINGS = {**HEAD, "loss_start_epoch": 0}  # i2c: the cls, sc and gc terms from the first step


def read_board(run_dir):
    acc = EA.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={EA.SCALARS: 0, EA.IMAGES: 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(value):
    return float(np.float32(value))


def assert_board_matches_logs(run_dir):
    """Every tag at exactly the steps (epochs) the JSON logs have, with their values to float32 precision."""
    acc = read_board(run_dir)
    tags = set(acc.Tags()["scalars"])
    steps = read_jsonl(run_dir / R.STEPS)
    terms = [k for k in steps[0] if k not in ("epoch", "step", "global_step", "lr", "images_per_s", "diag")]
    assert {"loss", "cls", "sc", "gc"} <= set(terms)
    for term in terms:
        assert scalars(acc, f"loss/{term}") == [(r["global_step"], f32(r[term])) for r in steps], term
    config = json.loads((run_dir / R.CONFIG).read_text())
    assert config["lr_groups"]
    for group in config["lr_groups"]:  # the schedule scales every group's base rate alike
        got = scalars(acc, f"lr/{group['name']}")
        assert [s for s, _ in got] == [r["global_step"] for r in steps]
        assert [v for _, v in got] == pytest.approx([group["lr"] * r["lr"] / config["lr"] for r in steps], rel=1e-6)
    epochs = read_jsonl(run_dir / R.EPOCHS)
    numbers = [k for k, v in epochs[0]["val"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert {"top1_cls", "gt_known_loc", "threshold"} <= set(numbers)
    for key in numbers:  # at the epoch number, counted from 1
        assert scalars(acc, f"val/{key}") == [(r["epoch"] + 1, f32(r["val"][key])) for r in epochs], key
    assert scalars(acc, "train/top1_cls") == [(r["epoch"] + 1, f32(r["train_top1_cls"])) for r in epochs]
    assert {t for t in tags if t.split("/")[0] not in ("loss", "lr", "val", "train")} == set()
    images = acc.Images("images/val")
    assert [e.step for e in images] == [r["epoch"] + 1 for r in epochs]
    assert all(e.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and e.width > e.height > 0 for e in images)


def test_event_files_hold_the_logs_and_change_nothing(synth, tmp_path, monkeypatch):
    on = tiny(synth, tmp_path / "on", "i2c", epochs=2, method_settings=dict(SETTINGS), tensorboard=True)
    run_dir = train_and_evaluate(on, show_progress=False)
    assert_board_matches_logs(run_dir)

    # off: nothing of TensorBoard is imported (an import would fail here), no folder, the same run and numbers
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "wsolbench.engine.tensorboard", None)
    off = tiny(synth, tmp_path / "off", "i2c", epochs=2, method_settings=dict(SETTINGS))
    assert not off.tensorboard and off.run_id() == on.run_id()
    plain = train_and_evaluate(off, show_progress=False)
    assert plain.name == run_dir.name and not (plain / "tensorboard").exists()
    assert read_jsonl(plain / R.STEPS) != [] and _numbers(plain) == _numbers(run_dir)
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("images_per_s", "seconds")} for r in rows]  # noqa: E731
    assert drop(read_jsonl(plain / R.STEPS)) == drop(read_jsonl(run_dir / R.STEPS))
    assert drop(read_jsonl(plain / R.EPOCHS)) == drop(read_jsonl(run_dir / R.EPOCHS))

    # the report links the folder (and leaves it out where there is none)
    from wsolbench.report import _row_pictures

    links = dict(_row_pictures(run_dir, "i2c", "cub", tmp_path, {}).links)
    assert links == {f"tensorboard/ (tensorboard --logdir {run_dir})": "on/synthetic/" + run_dir.name + "/tensorboard"}
    assert _row_pictures(plain, "i2c", "cub", tmp_path, {}).links == []


class _Killed(Exception):
    """A hard stop: no checkpoint at the current step, the last one is the end of epoch 1."""


def test_resumed_run_shows_every_step_once(synth, tmp_path, monkeypatch):
    from wsolbench.data import loading

    calls = {"n": 0}
    original = loading.ImageDataset.__getitem__

    def killing(self, i):
        if self.transform.__class__.__name__ == "TrainTransform":
            calls["n"] += 1
            if calls["n"] == 5 * 8 + 1:  # loading the 6th batch: steps 4 and 5 are logged after the checkpoint
                raise _Killed
        return original(self, i)

    monkeypatch.setattr(loading.ImageDataset, "__getitem__", killing)
    cfg = tiny(synth, tmp_path, "i2c", epochs=2, method_settings=dict(SETTINGS), tensorboard=True)
    with pytest.raises(_Killed):
        train_and_evaluate(cfg, show_progress=False)
    run_dir = tmp_path / "synthetic" / cfg.run_id()
    assert [e.step for e in read_board(run_dir).Scalars("loss/cls")] == [1, 2, 3, 4, 5]
    monkeypatch.setattr(loading.ImageDataset, "__getitem__", original)

    resumed = train_and_evaluate(cfg, resume=run_dir, show_progress=False)
    assert len(list((resumed / "tensorboard").iterdir())) == 2  # one event file per process, the same folder
    assert [r["global_step"] for r in read_jsonl(resumed / R.STEPS)] == list(range(1, 7))
    assert_board_matches_logs(resumed)  # steps 4 and 5 once, from the resumed process


def test_missing_package_is_one_line_before_training(synth, tmp_path, monkeypatch):
    from wsolbench.engine.tensorboard import MISSING

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if `tensorboard` were not installed
    cfg = tiny(synth, tmp_path, "cam", epochs=1, tensorboard=True)
    with pytest.raises(WsolbenchError) as info:
        train_and_evaluate(cfg, show_progress=False)
    assert str(info.value) == MISSING == ("--tensorboard needs the tensorboard package: "
                                          "pip install 'wsolbench[tensorboard]'")
    run_dir = tmp_path / "synthetic" / cfg.run_id()
    assert not (run_dir / R.STEPS).exists() and not (run_dir / R.METRICS).exists()  # no step was trained
