"""A 2 methods x 1 backbone x 1 dataset x 2 seeds grid: runs, skip on rerun, leaderboard equal to the run folders."""
import json
import shutil

import pandas as pd
import pytest

from wsolbench.cli import expand_variadic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


def grid_args(synth, runs):
    return ["run", "-m", "cam", "-m", "acol", "-b", "test_resnet", "-d", "synthetic", "--data-root", synth,
            "--seeds", "0", "1", "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--input-size", "32",
            "--output-stride", "8", "--set", "head_width=16", "--out", runs, "--no-progress"]


def seeds_cell(metrics: list[dict]) -> str:
    """The leaderboard's seeds cell of these runs' row: ``!`` after a collapsed run's seed (metrics.json
    ``collapse``), then n and how many collapsed."""
    marks = sorted((m["seed"], "!" if m.get("collapse") else "") for m in metrics)
    bad = sum(1 for _, mark in marks if mark)
    return f"{','.join(f'{s}{mark}' for s, mark in marks)} ({len(marks)}" + (f"; {bad} collapsed)" if bad else ")")


def test_variadic_seeds_expand():
    assert expand_variadic(["run", "--seeds", "0", "1", "2", "-m", "cam"]) == [
        "run", "--seeds", "0", "--seeds", "1", "--seeds", "2", "-m", "cam"]


def test_grid_skips_complete_runs_and_leaderboard_matches_run_folders(synth, tmp_path, run_cli):
    runs, boards = tmp_path / "runs", tmp_path / "boards"
    code, out, err = run_cli(*grid_args(synth, runs))
    assert code == 0, out + err
    metrics_files = sorted(runs.rglob("metrics.json"))
    assert len(metrics_files) == 4
    stamps = {p: p.stat().st_mtime_ns for p in metrics_files}
    configs = [json.loads((p.parent / "config.json").read_text()) for p in metrics_files]
    # asked as acol (the alias), run and named as acol-simplified
    assert {(c["method"], c["seed"]) for c in configs} == {("cam", 0), ("cam", 1), ("acol-simplified", 0), ("acol-simplified", 1)}
    assert all(("head_width" in c["method_settings"]) == (c["method"] == "acol-simplified") for c in configs)
    assert not list(runs.rglob("acol__*"))

    code, out, err = run_cli(*grid_args(synth, runs))  # the same grid again: nothing is redone
    assert code == 0 and out.count("complete, skipped") == 4
    canonical = [a if a != "acol" else "acol-simplified" for a in grid_args(synth, runs)]
    code, out, err = run_cli(*canonical)  # the canonical name asks for the very same runs
    assert code == 0 and out.count("complete, skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in metrics_files} == stamps

    code, out, err = run_cli("leaderboard", "--runs", runs, "--out", boards)
    assert code == 0, err
    tidy = pd.read_csv(boards / "synthetic-cub.csv")
    md = (boards / "synthetic-cub.md").read_text()
    for method in ("cam", "acol-simplified"):
        values = [json.loads(p.read_text()) for p in metrics_files if f"/{method}__" in str(p)]
        assert len(values) == 2 and len(tidy[tidy.method == method]) == 2
        for key in ("gt_known_loc", "top1_loc", "top1_cls"):
            xs = pd.Series([v[key] for v in values])
            expected = f"{xs.mean():.2f} ± {xs.std(ddof=1):.2f}"  # sample std over the two seeds
            assert expected in md, (method, key, expected)
            assert sorted(tidy[tidy.method == method][key].round(4)) == sorted(xs.round(4))
        row = next(line for line in md.splitlines() if line.startswith(f"| {method} "))
        assert seeds_cell(values) in row and values[0]["commit"] in row and "(val)" in row
        collapse = tidy[tidy.method == method].collapse.fillna("")  # the CSV: the reason, or empty
        assert sorted(collapse) == sorted(v.get("collapse") or "" for v in values)
    assert (boards / "synthetic-wsoleval.md").exists()  # the extra protocol gets its own table

    first = {p.name: p.read_bytes() for p in boards.iterdir()}
    run_cli("leaderboard", "--runs", runs, "--out", boards)
    assert {p.name: p.read_bytes() for p in boards.iterdir()} == first  # regeneration is deterministic


def test_a_run_made_under_the_old_name_acol_is_the_acol_simplified_row(synth, tmp_path):
    """Run folders written before the rename (method "acol" in config.json) join the canonical row."""
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.train import train_and_evaluate
    from wsolbench.leaderboard import collect_runs, summary_table

    base = dict(backbone="test_resnet", output_stride=8, dataset="synthetic", data_root=str(synth), epochs=1,
                batch_size=8, lr=0.01, input_size=32, out=str(tmp_path), method_settings={"head_width": 16})
    old = train_and_evaluate(RunConfig(method="acol", seed=0, **base), show_progress=False)
    new = train_and_evaluate(RunConfig(method="acol-simplified", seed=1, **base), show_progress=False)
    assert old.name.startswith("acol__") and new.name.startswith("acol-simplified__")
    tidy, problems = collect_runs(tmp_path)
    assert not problems and set(tidy.method) == {"acol-simplified"} and tidy.config.nunique() == 1
    table = summary_table(tidy)
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (old, new)]
    assert len(table) == 1 and table.iloc[0]["seeds (n)"] == seeds_cell(metrics)


def test_leaderboard_reports_and_skips_broken_run_folders(synth, tmp_path, run_cli):
    runs, boards = tmp_path / "runs", tmp_path / "boards"
    code, out, err = run_cli("run", "-m", "center-box", "-b", "test_resnet", "-d", "synthetic", "--data-root", synth,
                             "--seeds", "0", "1", "2", "--input-size", "32", "--out", runs, "--no-progress")
    assert code == 0, out + err
    folders = sorted(p.parent for p in runs.rglob("metrics.json"))
    assert len(folders) == 3
    (folders[0] / "metrics.json").write_text('{"run_id": "cut in ha')  # half-written
    (folders[1] / "metrics.json").unlink()  # unfinished
    shutil.copytree(folders[2], runs / "synthetic" / "copy-of-a-run")  # a third, readable copy

    code, out, err = run_cli("leaderboard", "--runs", runs, "--out", boards)
    assert code == 0, err
    assert "unreadable JSON" in out and str(folders[0]) in out.replace("\n", "")
    assert "no metrics.json" in out and str(folders[1]) in out.replace("\n", "")
    tidy = pd.read_csv(boards / "synthetic-cub.csv")
    assert len(tidy) == 2 and set(tidy.seed) == {2}
    assert (boards / "reported.csv").exists()


def test_reported_numbers_are_accuracies_labelled_as_reported(tmp_path):
    from wsolbench.leaderboard import reported_table

    rep = reported_table()
    row = rep[(rep.table == "table1") & (rep.method == "I2C") & (rep.backbone == "VGG16")].iloc[0]
    assert row["top1_loc"] == pytest.approx(100 - 52.59) and row["gt_known_loc"] == pytest.approx(100 - 36.10)
    # both SC+GC figures of the ablation survive, the text's one with its note
    sc_gc = rep[(rep.table == "table4") & (rep.method == "I2C-SC+GC")]
    assert sorted(sc_gc["top1_loc"].round(2)) == [round(100 - 48.45, 2), round(100 - 48.08, 2)]


def test_board_name_goes_into_the_file_names_and_is_checked():
    from wsolbench.errors import WsolbenchError
    from wsolbench.leaderboard import board_stem

    assert board_stem("synthetic", "cub") == "synthetic-cub"
    assert board_stem("synthetic", "cub", "pretrained") == "synthetic-pretrained-cub"
    with pytest.raises(WsolbenchError, match="--name '../x': letters, digits"):
        board_stem("synthetic", "cub", "../x")
