"""`wsolbench claims`: the I2C paper's comparative claims against measured boards.

One real run (a tiny CAM on the synthetic set) is the template; the regimes' run folders are copies of it under
other method names and seeds, with their per-image hits set so that the outcome is known (i2c clearly above
acol-simplified, clearly below, or identical), and metrics.json recomputed from those rows as a run writes it.
"""
import csv
import json
import shutil
from importlib import resources

import numpy as np
import pytest

from wsolbench import stats as S
from test_comparisons import synth  # noqa: F401  (the module's synthetic set fixture)

N_TEST = 12  # the synthetic set's test images (4 classes x 3)


@pytest.fixture(scope="module")
def template(synth, tmp_path_factory):  # noqa: F811
    from wsolbench.cli import main

    out = tmp_path_factory.mktemp("template")
    with pytest.raises(SystemExit) as done:
        main(["run", "-m", "cam", "-b", "test_resnet", "-d", "synthetic", "--data-root", str(synth), "--seeds", "0",
              "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--input-size", "32", "--output-stride", "8",
              "--out", str(out), "--no-progress"])
    assert done.value.code == 0
    return next((out / "synthetic").iterdir())


def make_run(template, runs, method, seed, hits, backbone="test_resnet", collapse=None, val_top1_cls=60.0):
    """A run folder of ``method`` whose test image i is localized (and classified) iff ``hits[i]``."""
    run_id = f"{method}__{backbone}__seed{seed}__claims"
    run = runs / "synthetic" / run_id
    shutil.copytree(template, run, ignore=shutil.ignore_patterns("checkpoint.pt", "*wsoleval*"))
    config = json.loads((run / "config.json").read_text())
    config.update(method=method, seed=seed, run_id=run_id, backbone=backbone)
    (run / "config.json").write_text(json.dumps(config))
    hits = np.asarray(hits, bool)
    with np.load(run / "per-image-cub.npz") as z:
        arrays = dict(z)
    t = len(arrays["thresholds"])
    rows = np.repeat(hits[:, None, None], t, axis=2)  # the same outcome at every threshold
    arrays["test_hits"] = np.packbits(rows, axis=-1)
    arrays["test_top5_hits"] = np.packbits(rows[:, 0], axis=-1)
    arrays["test_flags"] = np.stack([np.ones_like(hits), hits, hits])
    np.savez_compressed(run / "per-image-cub.npz", **arrays)
    metrics = json.loads((run / "metrics.json").read_text())
    rec = S.load_records(run, "cub", metrics["policy"], metrics.get("threshold"))
    for m in ("gt_known_loc", "top1_loc", "top5_loc", "top1_cls", "top5_cls"):
        metrics[m] = S.full_sample(rec, m)
    metrics.update(run_id=run_id, method=method, seed=seed, backbone=backbone, collapse=collapse)
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "val": {"top1_cls": val_top1_cls}}) + "\n")
    return run


def hits_of(k):
    return np.arange(N_TEST) < k


@pytest.fixture(scope="module")
def regimes(template, tmp_path_factory):
    root = tmp_path_factory.mktemp("regimes")
    plan = {"better": (11, 1), "worse": (1, 11), "tied": (6, 6)}  # i2c's and acol-simplified's hits
    for name, (k_i2c, k_acol) in plan.items():
        for seed in (0, 1):
            collapse = "val Top-1 Cls 25.0% ends near chance (25.0%)" if name == "worse" and seed == 1 else None
            make_run(template, root / name, "i2c", seed, hits_of(k_i2c), collapse=collapse)
            make_run(template, root / name, "acol-simplified", seed, hits_of(k_acol))
    # a second backbone in one regime: compared within it, listed as its own row
    for seed in (0, 1):
        make_run(template, root / "better", "i2c", seed, hits_of(5), backbone="other_net")
        make_run(template, root / "better", "acol-simplified", seed, hits_of(5), backbone="other_net")
    make_run(template, root / "better", "i2c-sc", 0, hits_of(3))  # SC alone: against acol-simplified only
    return root


def _results(regimes):
    from wsolbench.paper_claims import claims_page, read_regime

    read = [read_regime(name, regimes / name) for name in ("better", "worse", "tied")]
    page, results = claims_page(read, "wsolbench claims ...")
    return page, results


def test_verdicts_follow_the_paired_interval(regimes):
    page, results = _results(regimes)
    rows = {(c.regime, c.backbone, c.a): c for c in results["i2c-over-acol"]}
    better = rows[("better", "test_resnet", "i2c")]
    assert better.verdicts == {"gt_known_loc": "agrees", "top1_loc": "agrees"}
    assert better.ours["gt_known_loc"][0] == pytest.approx(100 * 10 / N_TEST)
    assert better.seeds == "2 / 2" and better.collapsed == "none"
    assert rows[("worse", "test_resnet", "i2c")].verdicts == {"gt_known_loc": "contradicts", "top1_loc": "contradicts"}
    assert rows[("tied", "test_resnet", "i2c")].verdicts == {"gt_known_loc": "not distinguishable",
                                                            "top1_loc": "not distinguishable"}
    assert rows[("better", "other_net", "i2c")].verdicts["gt_known_loc"] == "not distinguishable"  # its own backbone
    # no i2c-released run anywhere: not measured, with the reason
    released = [c for c in results["i2c-over-acol"] if c.a == "i2c-released"]
    assert len(released) == 3 and all(c.verdicts["gt_known_loc"] == "not measured" and "i2c-released" in c.why
                                      for c in released)
    assert all(set(c.verdicts.values()) == {"not measured"} for c in results["momentum-over-backprop"])
    # SC over plain: i2c-sc against acol-simplified is measured (3 - 1 hits below it in "better"); against cam not
    sc = {(c.regime, c.b): c for c in results["sc-over-plain"]}
    assert sc[("better", "cam")].verdicts["gt_known_loc"] == "not measured"
    assert sc[("better", "acol-simplified")].ours["gt_known_loc"][0] == pytest.approx(100 * (3 - 1) / N_TEST)
    assert sc[("better", "acol-simplified")].seeds == "1 / 2"
    # the collapsed seed is flagged on its claim row and in the stability table
    worse = rows[("worse", "test_resnet", "i2c")]
    assert "i2c: seed 1: val Top-1 Cls 25.0% ends near chance" in worse.collapsed
    stability = page.split("## Training stability of i2c and i2c-released", 1)[1]
    line = next(l for l in stability.splitlines() if l.startswith("| worse ") and "| i2c " in l)
    assert "| no " in line and "60.0, 60.0" in line
    assert any(l.startswith("| better ") and "| i2c-released " in l and "not measured" in l
               for l in stability.splitlines())


def _csv_error(table, method, backbone, metric):
    path = resources.files("wsolbench") / "reference" / "paper_tables.csv"
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if (r["table"], r["dataset"], r["method"], r["backbone"], r["metric"])
                == (table, "ilsvrc", method, backbone, metric) and "differs from Table 4" not in r["note"]]
    assert len(rows) == 1, rows
    return float(rows[0]["value_percent"])


def test_the_paper_differences_are_the_csv_numbers():
    from wsolbench.paper_claims import claims_page, paper_claims

    pairs = {"i2c-over-acol": ("table1", "I2C", "ACoL", "VGG16"),
             "sc-over-plain": ("table4", "I2C-SC", "CAM-plain", "InceptionV3"),
             "gc-over-sc": ("table4", "I2C-SC+GC", "I2C-SC", "InceptionV3"),
             "momentum-over-backprop": ("table4", "I2C-SC+GC", "I2C-SC+GC(backprop-updated centers)", "InceptionV3")}
    claims = {pc.claim.key: pc for pc in paper_claims()}
    assert set(claims) == set(pairs)
    page, _ = claims_page([], "wsolbench claims ...")
    for key, (table, a, b, backbone) in pairs.items():
        for measure in ("gt_known_loc", "top1_loc"):
            err_a, err_b = (_csv_error(table, m, backbone, f"{measure}_err") for m in (a, b))
            by_hand = (100 - err_a) - (100 - err_b)
            assert claims[key].differences[measure] == pytest.approx(by_hand), (key, measure)
            assert f"{by_hand:+.2f}" in page
    # Table 4's own SC+GC numbers, not the ablation text's (31.30 / 48.45), and the page says so
    assert claims["gc-over-sc"].a.values["gt_known_loc"] == pytest.approx(100 - 31.04)
    assert "ablation text" in page and "Table 1's CAM / InceptionV3 row" in page


def test_cli_writes_the_page(regimes, tmp_path, run_cli):
    out = tmp_path / "boards" / "claims.md"
    code, stdout, err = run_cli("claims", "--runs", f"fine={regimes / 'better'}", "--runs", regimes / "worse",
                                "--out", out)
    assert code == 0, stdout + err
    page = out.read_text()
    assert f"--runs fine={regimes / 'better'} --runs {regimes / 'worse'} --out {out}" in page  # how to regenerate
    assert "| fine " in page and f"| {regimes / 'worse'} " in page
    assert "agrees" in page and "contradicts" in page and "not measured" in page
    assert "`val`" in page and "`cub`" in page and "reported" in page
    first = page
    run_cli("claims", "--runs", f"fine={regimes / 'better'}", "--runs", regimes / "worse", "--out", out)
    assert out.read_text() == first  # regeneration is deterministic


def test_bad_runs_give_one_line_and_exit_2(tmp_path, run_cli):
    code, _, err = run_cli("claims", "--runs", tmp_path / "nowhere", "--out", tmp_path / "c.md")
    assert code == 2 and "no such folder of runs" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("claims", "--runs", f"x={tmp_path / 'empty'}", "--out", tmp_path / "c.md")
    assert code == 2 and "holds no complete run" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.md").exists()
