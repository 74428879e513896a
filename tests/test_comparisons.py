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
    # the row's draws are the mean of its seeds' draws on the same resampled images
    per_run = S.draws([S.load_records(run_dirs[r], "cub", p, t) for r, p, t in
                       group[group.method == "cam"][["run_id", "policy", "threshold"]].itertuples(index=False)],
                      ["gt_known_loc"], b=500)["gt_known_loc"]
    assert np.allclose(table.rows[configs["cam"]]["gt_known_loc"], per_run.mean(axis=0))


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
