"""Intervals on real runs: the per-image files a run and `wsolbench eval` write, the leaderboard's interval cells,
CSV columns and paired lists, and `wsolbench diff` (its table, and one error line for runs on other images)."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from wsolbench import stats as S


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


@pytest.fixture(scope="module")
def runs(synth, tmp_path_factory):
    from wsolbench.cli import main

    out = tmp_path_factory.mktemp("runs")
    with pytest.raises(SystemExit) as done:
        main(["run", "-m", "cam", "-m", "acol", "-m", "center-box", "-b", "test_resnet", "-d", "synthetic",
              "--data-root", str(synth), "--seeds", "0", "--seeds", "1", "--epochs", "1", "--batch-size", "8",
              "--lr", "0.01", "--input-size", "32", "--output-stride", "8", "--set", "head_width=16",
              "--out", str(out), "--no-progress"])
    assert done.value.code == 0
    return out


def folder(runs, method, seed):
    return next(p for p in (runs / "synthetic").iterdir() if p.name.startswith(f"{method}__") and f"seed{seed}" in p.name)


def test_a_run_writes_per_image_rows_that_reproduce_its_numbers(runs):
    for method in ("cam", "center-box"):
        run = folder(runs, method, 0)
        for name in ("metrics.json", "eval-wsoleval.json"):
            reported = json.loads((run / name).read_text())
            rec = S.load_records(run, reported["protocol"], reported["policy"], reported["threshold"])
            assert rec.n == reported["n_images"] == 12
            assert rec.has("pxap") and "pxap" in reported  # the synthetic set has masks
            for m in S.MEASURES:
                if m in reported:
                    assert S.full_sample(rec, m) == pytest.approx(reported[m], abs=1e-9), (run.name, name, m)


def test_eval_writes_the_rows_of_its_protocol(runs, tmp_path, run_cli):
    run = tmp_path / "copy"
    shutil.copytree(folder(runs, "cam", 1), run)
    (run / "per-image-wsoleval.npz").unlink()
    code, out, err = run_cli("eval", run, "--protocol", "wsoleval", "--policy", "test-optimal", "--device", "cpu")
    assert code == 0, out + err
    reported = json.loads((run / "eval-wsoleval.json").read_text())
    rec = S.load_records(run, "wsoleval", "test-optimal")
    for m in ("gt_known_loc", "maxboxacc_v2", "top1_loc", "top5_loc"):
        assert S.full_sample(rec, m) == pytest.approx(reported[m], abs=1e-9), m


def test_leaderboard_cells_carry_intervals_and_old_runs_a_dash(runs, tmp_path, run_cli):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    for p in folder(copy, "center-box", 1).glob("per-image-*.npz"):  # an older run: no per-image rows
        p.unlink()
    code, out, err = run_cli("leaderboard", "--runs", copy, "--out", tmp_path / "boards")
    assert code == 0, err
    assert "synthetic / cub, GT-known Loc: significant differences:" in out  # among cam and acol
    tidy = pd.read_csv(tmp_path / "boards" / "synthetic-cub.csv")
    cam = tidy[tidy.method == "cam"]
    assert (cam.gt_known_loc_low <= cam.gt_known_loc).all() and (cam.gt_known_loc <= cam.gt_known_loc_high).all()
    assert cam.top1_cls_low.notna().all() and cam.maxboxacc_v2_low.isna().all()  # cub reports no MaxBoxAccV2
    old = tidy[(tidy.method == "center-box") & (tidy.seed == 1)]
    assert old.gt_known_loc.notna().all() and old.gt_known_loc_low.isna().all()
    md = (tmp_path / "boards" / "synthetic-cub.md").read_text()
    cam_row = next(line for line in md.splitlines() if line.startswith("| cam "))
    values = cam.gt_known_loc.astype(float)
    assert f"{values.mean():.2f} ± {values.std(ddof=1):.2f} [" in cam_row
    box_row = next(line for line in md.splitlines() if line.startswith("| center-box "))
    assert "[-]" in box_row  # one seed without rows: the row's value, no interval
    assert "vs best (GT-known Loc)" in md and "## Paired differences among trained rows: GT-known Loc" in md
    assert "acol-simplified/test_resnet - cam/test_resnet" in md or "cam/test_resnet - acol-simplified/test_resnet" in md
    assert "center-box/test_resnet -" not in md and "- center-box/test_resnet" not in md  # not trained
    wsoleval = (tmp_path / "boards" / "synthetic-wsoleval.md").read_text()
    assert "vs best (MaxBoxAccV2)" in wsoleval
    # PxAP from the masks: its cell and CSV columns carry the interval of the per-image histograms
    assert (cam.pxap_low <= cam.pxap).all() and (cam.pxap <= cam.pxap_high).all() and (cam.pxap_low < cam.pxap_high).all()
    assert old.pxap.notna().all() and old.pxap_low.isna().all()
    header = next(line for line in md.splitlines() if line.startswith("| method "))
    column = [c.strip() for c in header.split("|")].index("PxAP")
    pxaps = cam.pxap.astype(float)
    assert [c.strip() for c in cam_row.split("|")][column].startswith(f"{pxaps.mean():.2f} ± {pxaps.std(ddof=1):.2f} [")


def test_leaderboard_compares_rows_paired_against_the_best(runs, tmp_path):
    from wsolbench import intervals as I
    from wsolbench.leaderboard import collect_runs

    run_dirs = {}
    df, _ = collect_runs(runs, run_dirs)
    group = df[df.protocol == "cub"]
    group, table = I.add_intervals(group, run_dirs, ["gt_known_loc"], b=500)
    verdict = I.vs_best(group, table, "gt_known_loc")
    configs = dict(zip(group.method, group.config))
    values = group.groupby("method").gt_known_loc.mean()
    best = max(values.index, key=lambda m: (values[m], configs[m]))
    other = next(m for m in values.index if m != best)
    assert verdict[configs[best]] == "best"
    span = table.difference(configs[other], configs[best], "gt_known_loc")
    assert verdict[configs[other]] == ("tied" if span[0] <= 0 <= span[1] else "below")
    # a row's draws: its seeds' (sorted) draws on the shared image resamples, plus the seed level of 2 seeds
    def run_draws(method):
        rows = group[group.method == method].sort_values("seed")
        return S.draws([S.load_records(run_dirs[r], "cub", p, t) for r, p, t in
                        rows[["run_id", "policy", "threshold"]].itertuples(index=False)], ["gt_known_loc"], b=500)["gt_known_loc"]

    level = S.seed_level(2, 500, S.SEED_DEFAULT)
    rows = {m: table.rows[configs[m]]["gt_known_loc"] for m in ("cam", "acol-simplified")}
    for method, draws in rows.items():
        assert table.seeds[configs[method]] == 2
        assert np.array_equal(draws, S.row_values(run_draws(method), level))
    # paired: the difference's interval is that of draws(a) - draws(b) under the shared resamples and seed draws
    a, b = configs["cam"], configs["acol-simplified"]
    assert table.difference(a, b, "gt_known_loc") == S.interval(rows["cam"] - rows["acol-simplified"])
    # a one-seed row keeps the image-only interval of its run
    one = group[(group.method != "center-box") | (group.seed == 0)]
    _, single = I.add_intervals(one, run_dirs, ["gt_known_loc"], b=500)
    box = one[one.method == "center-box"].iloc[0]
    rec = S.load_records(run_dirs[box.run_id], "cub", box.policy, box.threshold)
    assert single.seeds[box.config] == 1
    assert single.span(box.config, "gt_known_loc") == S.interval(S.draws([rec], ["gt_known_loc"], b=500)["gt_known_loc"][0])
    assert np.array_equal(single.rows[a]["gt_known_loc"], rows["cam"])  # other rows' draws do not move


def _retag(src, dst, note):
    """A copy of run folder ``src`` that is another config (a setting ``note`` added) with its own run id."""
    shutil.copytree(src, dst)
    for name in ("config.json", "metrics.json", "eval-wsoleval.json"):
        data = json.loads((dst / name).read_text())
        data["run_id"] = data["run_id"] + "-copy"
        if name == "config.json":
            data["note"] = note
        (dst / name).write_text(json.dumps(data))


def test_identical_rows_differ_by_exactly_zero(runs, tmp_path):
    from wsolbench import intervals as I
    from wsolbench.leaderboard import collect_runs

    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    for seed in (0, 1):  # cam's two seeds again, as another row with the very same per-image records
        src = folder(copy, "cam", seed)
        _retag(src, src.parent / ("copy-" + src.name), "copy")
    run_dirs = {}
    df, problems = collect_runs(copy, run_dirs)
    assert not problems
    group = df[df.protocol == "cub"]
    group, table = I.add_intervals(group, run_dirs, ["gt_known_loc", "top1_cls"], b=300)
    cam = sorted(group[group.method == "cam"].config.unique())
    assert len(cam) == 2
    for m in ("gt_known_loc", "top1_cls"):
        assert np.array_equal(table.rows[cam[0]][m], table.rows[cam[1]][m])
        assert table.difference(cam[0], cam[1], m) == (0.0, 0.0)


def test_a_collapsed_run_is_marked_and_counted_in_its_row(runs, tmp_path, run_cli):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    reason = "loss not finite at epoch 1 step 2 (training stopped; weights of the last finite step)"
    for metrics in copy.rglob("metrics.json"):  # every run healthy but cam seed 1 (older runs: no key)
        data = json.loads(metrics.read_text())
        data.pop("collapse", None)
        if metrics.parent == folder(copy, "cam", 1):
            data["collapse"] = reason
        metrics.write_text(json.dumps(data))
    bad = json.loads((folder(copy, "cam", 1) / "config.json").read_text())["run_id"]
    code, out, err = run_cli("leaderboard", "--runs", copy, "--out", tmp_path / "boards")
    assert code == 0, err
    tidy = pd.read_csv(tmp_path / "boards" / "synthetic-cub.csv", keep_default_na=False)
    assert (tidy.loc[tidy.run_id == bad, "collapse"] == reason).all()
    assert (tidy.loc[tidy.run_id != bad, "collapse"] == "").all()
    md = (tmp_path / "boards" / "synthetic-cub.md").read_text()
    cam_row = next(line for line in md.splitlines() if line.startswith("| cam "))
    assert "0,1! (2; 1 collapsed)" in cam_row
    values = tidy[tidy.method == "cam"].gt_known_loc.astype(float)
    assert len(values) == 2 and f"{values.mean():.2f} ± {values.std(ddof=1):.2f} [" in cam_row  # counted, not dropped
    assert "Collapsed runs (kept in their rows):" in md and f"- cam/test_resnet seed 1, run {bad}: {reason}" in md
    assert "A one-seed row: over test images only" in md
    box_row = next(line for line in md.splitlines() if line.startswith("| center-box "))
    assert "0,1 (2)" in box_row


def test_diff_prints_the_paired_interval(runs, run_cli):
    a, b = folder(runs, "cam", 0), folder(runs, "center-box", 0)
    code, out, err = run_cli("diff", a, b, "--resamples", "500", "--seed", "3")
    assert code == 0, out + err
    ra, rb = (S.load_records(r, "cub", "val", json.loads((r / "metrics.json").read_text())["threshold"]) for r in (a, b))
    d = S.draws([ra, rb], ["gt_known_loc"], 500, 3)["gt_known_loc"]
    low, high = S.interval(d[0] - d[1])
    diff = S.full_sample(ra, "gt_known_loc") - S.full_sample(rb, "gt_known_loc")
    assert f"{diff:+.2f}" in out and f"[{low:+.2f}, {high:+.2f}]" in out
    assert ("not distinguishable" if low <= 0 <= high else "significant at 95%") in out
    code, out, err = run_cli("diff", a, b, "--protocol", "wsoleval", "--metric", "maxboxacc_v2")
    assert code == 0 and "maxboxacc_v2 under wsoleval" in out
    code, out, err = run_cli("diff", a, b, "--protocol", "wsoleval", "--metric", "pxap")  # from the masks
    assert code == 0 and "pxap under wsoleval" in out, out + err


def test_diff_of_runs_on_other_images_is_one_clear_line(runs, synth, tmp_path, run_cli):
    from wsolbench.data.synthetic import generate

    other = generate(tmp_path / "other", classes=4, per_class=8, test_per_class=2, size=32)
    code, out, err = run_cli("run", "-m", "center-box", "-b", "test_resnet", "-d", "synthetic", "--data-root", other,
                             "--input-size", "32", "--out", tmp_path / "runs", "--no-progress")
    assert code == 0, out + err
    elsewhere = next((tmp_path / "runs" / "synthetic").iterdir())
    code, out, err = run_cli("diff", folder(runs, "cam", 0), elsewhere)
    assert code == 2 and "hold different test images" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("diff", folder(runs, "cam", 0), elsewhere, "--metric", "nonsense")
    assert code == 2 and "--metric 'nonsense'" in err
    code, out, err = run_cli("diff", folder(runs, "cam", 0), folder(runs, "center-box", 0), "--metric", "top1_loc")
    assert code == 2 and "reports no 'top1_loc'" in err
