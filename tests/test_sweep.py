"""Settings sweeps: --set lists, seeded budget draws, selection on val only, resume, leaderboard rows."""
import io
import json

import pandas as pd
import pytest

from wsolbench.engine.runconfig import RunConfig, parse_sweep
from wsolbench.engine.sweep import select, setting_at, sweep_settings


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


def sweep_args(synth, runs, *extra):
    return ["run", "-m", "acol", "-b", "test_resnet", "-d", "synthetic", "--data-root", synth, "--epochs", "1",
            "--batch-size", "8", "--lr", "0.01", "--input-size", "32", "--output-stride", "8",
            "--set", "head_width=8,16", "--out", runs, "--no-progress", *extra]


def test_set_lists_parse_to_typed_values_and_a_product():
    sweep = parse_sweep(["delta=0.6,0.7", "use_gc=true", "pair=[1,2],[3,4]", "gc_update=momentum,ema"])
    assert sweep == {"delta": [0.6, 0.7], "use_gc": [True], "pair": [[1, 2], [3, 4]], "gc_update": ["momentum", "ema"]}
    settings, info = sweep_settings(sweep)
    assert len(settings) == info["product_size"] == 8
    assert settings[0] == {"delta": 0.6, "use_gc": True, "pair": [1, 2], "gc_update": "momentum"}
    assert settings[1]["gc_update"] == "ema" and settings[-1] == setting_at(sweep, 7)
    assert len({json.dumps(s, sort_keys=True) for s in settings}) == 8


def test_budget_draw_is_seeded_reproducible_and_recorded():
    sweep = {"a": list(range(10)), "b": list(range(10)), "c": [0.1, 0.2]}
    first, info = sweep_settings(sweep, budget=7, seed=3)
    again, info2 = sweep_settings(sweep, budget=7, seed=3)
    other, _ = sweep_settings(sweep, budget=7, seed=4)
    assert first == again and info == info2 and first != other
    assert len(first) == 7 and len({json.dumps(s) for s in first}) == 7
    assert info["product_size"] == 200 and info["sweep_seed"] == 3 and len(info["indices"]) == 7
    assert first == [setting_at(sweep, i) for i in info["indices"]]
    everything, _ = sweep_settings(sweep, budget=500, seed=3)  # a budget above the product: the whole product
    assert len(everything) == 200


@pytest.mark.parametrize("args, words", [
    (["--set", "lambda1="], "no value after '='"),
    (["--set", "nosuch=1,2"], "nosuch"),
    (["--set", "head_width=8,wide"], "head_width"),
    (["--set", "use_sc=maybe"], "use_sc"),
    (["--set", "lambda1=,"], "product would be empty"),
    (["--set", "lambda1=0.1,,0.2"], "empty value"),
    (["--set", "k=1", "--set", "k=2"], "given twice"),
    (["--set", "k=1,2", "--sweep-budget", "0"], "--sweep-budget"),
])
def test_bad_set_input_is_one_line_and_exit_2(args, words, run_cli, tmp_path):
    code, out, err = run_cli("run", "-m", "i2c", "--out", tmp_path / "runs", "--no-progress", *args)
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()  # checked before anything ran


def _fake_run(tmp_path, head_width, val, test):
    """A run folder with a val figure and (poisoned) test numbers."""
    cfg = RunConfig(method="acol", backbone="test_resnet", out=str(tmp_path), method_settings={"head_width": head_width})
    run_dir = tmp_path / cfg.dataset / cfg.run_id()
    run_dir.mkdir(parents=True)
    (run_dir / "val.json").write_text(json.dumps({"metric": "gt_known_loc", "value": val, "run_id": cfg.run_id()}))
    for name in ("metrics.json", "eval-wsoleval.json"):
        (run_dir / name).write_text(json.dumps({"gt_known_loc": test, "maxboxacc_v2": test, "run_id": cfg.run_id()}))
    return cfg


def test_selection_reads_val_only_never_test_numbers(tmp_path, monkeypatch):
    # test numbers poisoned: read, they would choose head_width 8 (and a tie on val would too)
    configs = [_fake_run(tmp_path, 8, 40.0, 99.0), _fake_run(tmp_path, 16, 55.0, 1.0), _fake_run(tmp_path, 32, 50.0, 0.0)]
    opened, real_open = [], io.open

    def spy(file, *a, **k):
        if not isinstance(file, int):  # an int: the atomic writer's own temp file descriptor
            opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(io, "open", spy)
    (record,) = select(configs, tmp_path)
    monkeypatch.undo()
    assert record["selected"]["settings"] == {"head_width": 16} and record["selected"]["val_mean"] == 55.0
    assert [c["val_mean"] for c in record["candidates"]] == [40.0, 55.0, 50.0]
    assert len(opened) == 3 and all(p.endswith("/val.json") for p in opened), opened
    saved = json.loads(next((tmp_path / "synthetic" / "sweeps").glob("acol__*.json")).read_text())
    assert saved["selected"] == record["selected"] and saved["split"] == "val" and "test numbers are not read" in saved["rule"]


def test_two_value_sweep_interrupted_resumes_and_selects_one(synth, tmp_path, run_cli, monkeypatch):
    import wsolbench.engine.train as train_mod
    from wsolbench.leaderboard import write_leaderboards

    runs = tmp_path / "runs"
    real, calls = train_mod.train_and_evaluate, []

    def ctrl_c_on_second(cfg, **kw):  # the second setting is interrupted (Ctrl-C) before it finishes
        calls.append(cfg.method_settings["head_width"])
        if len(calls) == 2:
            raise train_mod.Interrupted(runs)
        return real(cfg, **kw)

    monkeypatch.setattr(train_mod, "train_and_evaluate", ctrl_c_on_second)
    code, out, err = run_cli(*sweep_args(synth, runs))
    assert code == 130 and calls == [8, 16], out + err
    (first,) = list(runs.rglob("metrics.json"))
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr(train_mod, "train_and_evaluate", real)

    code, out, err = run_cli(*sweep_args(synth, runs))
    assert code == 0, out + err
    assert out.count("complete, skipped") == 1 and first.stat().st_mtime_ns == stamp  # the finished setting kept
    metrics = sorted(runs.rglob("metrics.json"))
    assert len(metrics) == 2
    (record_path,) = list((runs / "synthetic" / "sweeps").glob("acol-simplified__test_resnet__*.json"))
    record = json.loads(record_path.read_text())
    assert record["n_candidates"] == 2 and record["swept_keys"] == ["head_width"]
    vals = {c["settings"]["head_width"]: c["val_mean"] for c in record["candidates"]}
    for m in metrics:  # the recorded figures are the runs' own val.json
        val = json.loads((m.parent / "val.json").read_text())
        hw = json.loads((m.parent / "config.json").read_text())["method_settings"]["head_width"]
        assert vals[hw] == val["value"] and val["metric"] == "gt_known_loc" and val["n_val_images"] == 4 * round(8 / 3)  # the reader's default third held out
    best = max(vals.values())
    expected = next(hw for hw, v in vals.items() if v == best)  # the first on a tie
    assert record["selected"]["settings"] == {"head_width": expected} and "selected by val" in out

    write_leaderboards(runs, tmp_path / "boards")
    tidy = pd.read_csv(tmp_path / "boards" / "synthetic-cub.csv")
    assert len(tidy) == 1 and tidy.run_id[0] in record["selected"]["run_ids"]
    md = (tmp_path / "boards" / "synthetic-cub.md").read_text()
    assert f"head_width={expected}; selected by val GT-known {best:.1f} from 2" in md
