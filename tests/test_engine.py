"""The training engine end to end on a tiny synthetic set: every method trains, logs, evaluates;
a run interrupted by Ctrl-C and resumed ends exactly where an uninterrupted run ends."""
import json
import math
from pathlib import Path

import pytest
import torch

from wsolbench.engine import rundir as R
from wsolbench.engine.runconfig import RunConfig
from wsolbench.engine.train import Interrupted, load_checkpoint, train_and_evaluate
from wsolbench.registry import METHODS

HEAD = {"head_width": 16}  # the ACoL head's paper width (1024) is needlessly slow for 4x4 maps


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


def tiny(synth, out, method, **kw):
    settings = HEAD if "head_width" in {f for f in METHODS.get(method).obj.Config.__dataclass_fields__} else {}
    base = dict(method=method, backbone="test_resnet", output_stride=8, dataset="synthetic", data_root=str(synth),
                epochs=1, batch_size=8, lr=0.01, input_size=32, out=str(out), method_settings=dict(settings),
                extra_protocols=["wsoleval"])
    base.update(kw)
    return RunConfig(**base)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_method_trains_logs_and_evaluates(synth, tmp_path):
    from wsolbench.plugins import load_builtin

    load_builtin()
    methods = METHODS.names()
    assert {"cam", "acol-simplified", "i2c-sc", "i2c", "i2c-bpgc", "center-box", "full-image"} <= set(methods)
    for name in [m for m in methods if not METHODS.get(m).obj.needs_tokens]:  # ViT-only: test_transformers.py
        extra = {"loss_start_epoch": 0} if name.startswith("i2c") else {}
        cfg = tiny(synth, tmp_path, name)
        cfg.method_settings.update(extra)
        run_dir = train_and_evaluate(cfg, show_progress=False)
        files = {p.name for p in run_dir.iterdir()}
        assert {R.CONFIG, R.ENV, R.CHECKPOINT, R.METRICS, R.TIMES, "eval-wsoleval.json"} <= files, (name, files)
        metrics = json.loads((run_dir / R.METRICS).read_text())
        assert metrics["run_id"] == cfg.run_id() and metrics["policy"] == "val" and metrics["protocol"] == "cub"
        assert 0 <= metrics["gt_known_loc"] <= 100 and 0 <= metrics["threshold"] < 1
        wsoleval = json.loads((run_dir / "eval-wsoleval.json").read_text())
        assert 0 <= wsoleval["maxboxacc_v2"] <= 100 and 0 <= wsoleval["pxap"] <= 100
        if METHODS.get(name).obj.needs_backbone:
            steps = read_jsonl(run_dir / R.STEPS)
            # 4 classes x 8 images, a third (3 a class) held out for val -> 20 train images, batch 8
            assert len(steps) == (_paired_batches(synth, 8) if METHODS.get(name).obj.batch_shape == "class-paired" else 2)
            expected_terms = {"cls", "sc", "gc"} if name in ("i2c", "i2c-bpgc", "i2c-released") else None
            for record in steps:
                terms = {k for k in record if k not in ("epoch", "step", "global_step", "lr", "loss", "images_per_s", "diag")}
                assert "cls" in terms and all(math.isfinite(record[k]) for k in terms | {"loss"})
                assert record["loss"] == pytest.approx(sum(record[k] for k in terms), rel=1e-5)
                if expected_terms:
                    assert terms == expected_terms
            if name in ("i2c", "i2c-bpgc"):
                assert any(r["sc"] > 0 for r in steps) and any(r["gc"] > 0 for r in steps[1:])
            assert 0 <= metrics["top1_cls"] <= 100 and 0 <= metrics["top1_loc"] <= metrics["gt_known_loc"] + 1e-9
            assert len(read_jsonl(run_dir / R.EPOCHS)) == 1
        else:
            assert "top1_cls" not in metrics or metrics["top1_cls"] is None


def _paired_batches(synth, batch_size, images_per_class=2):
    """Batches an epoch of the class-paired sampler over the synthetic train split (it keeps every class's pairs)."""
    from wsolbench.data.sampler import ClassPairedBatchSampler
    from wsolbench.data.validate import ensure_valid
    from wsolbench.registry import DATASETS

    train = ensure_valid(DATASETS.build("synthetic", root=Path(synth)), ("train",))["train"]
    return len(ClassPairedBatchSampler([s.label for s in train], batch_size // images_per_class, images_per_class))


def _numbers(run_dir):
    metrics = json.loads((run_dir / R.METRICS).read_text())
    return {k: v for k, v in metrics.items() if k not in ("commit",)}


def test_resume_after_ctrl_c_equals_uninterrupted_run(synth, tmp_path, monkeypatch):
    settings = {**HEAD, "loss_start_epoch": 0}
    straight = train_and_evaluate(tiny(synth, tmp_path / "a", "i2c", epochs=2, method_settings=settings),
                                  show_progress=False)

    # Ctrl-C while the 5th training batch is being loaded (epoch 2, after one step of it)
    from wsolbench.data import loading

    calls = {"n": 0}
    original = loading.ImageDataset.__getitem__

    def interrupting(self, i):
        if self.transform.__class__.__name__ == "TrainTransform":
            calls["n"] += 1
            if calls["n"] == 4 * 8 + 1:
                raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(loading.ImageDataset, "__getitem__", interrupting)
    cfg = tiny(synth, tmp_path / "b", "i2c", epochs=2, method_settings=settings)
    with pytest.raises(Interrupted) as info:
        train_and_evaluate(cfg, show_progress=False)
    run_dir = info.value.run_dir
    assert not (run_dir / R.METRICS).exists()
    ckpt = load_checkpoint(run_dir / R.CHECKPOINT)
    assert (ckpt["epoch"], ckpt["batches_done"], ckpt["global_step"]) == (1, 1, 4)
    monkeypatch.setattr(loading.ImageDataset, "__getitem__", original)

    resumed = train_and_evaluate(cfg, resume=run_dir, show_progress=False)
    assert _numbers(resumed) == _numbers(straight)
    a, b = load_checkpoint(straight / R.CHECKPOINT)["model"], load_checkpoint(resumed / R.CHECKPOINT)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["global_step"] for r in read_jsonl(resumed / R.STEPS)] == list(range(1, 7))
    losses = lambda d: [r["loss"] for r in read_jsonl(d / R.STEPS)]  # noqa: E731
    assert losses(resumed) == losses(straight)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the test's own hand-made pickle
def test_checkpoint_is_data_not_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(pickle.dumps({"model": Evil()}))
    from wsolbench.errors import WsolbenchError

    with pytest.raises(WsolbenchError, match="not a loadable checkpoint"):
        load_checkpoint(bad)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from wsolbench.engine.atomic import atomic_write, write_json

    target = tmp_path / "metrics.json"
    write_json(target, {"ok": 1})

    def explode(f):
        f.write('{"half": ')
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_eval_save_maps_rescore_without_the_model_gives_the_same_numbers(synth, tmp_path, run_cli):
    run_dir = train_and_evaluate(tiny(synth, tmp_path, "acol"), show_progress=False)
    code, out, err = run_cli("eval", run_dir, "--save-maps")
    assert code == 0, out + err
    again = json.loads((run_dir / "eval-cub.json").read_text())
    first = json.loads((run_dir / R.METRICS).read_text())
    for key in ("top1_loc", "top5_loc", "gt_known_loc", "top1_cls", "threshold"):
        assert again[key] == first[key], key  # re-evaluating the checkpoint reproduces the run's numbers

    # the saved maps, scored by `wsolbench score` under the same protocol and policy, without the model
    code, out, err = run_cli("score", run_dir / "maps-test.npz", "--val", run_dir / "maps-val.npz",
                             "--protocol", "cub", "--policy", "val", "--json")
    assert code == 0, out + err
    scored = json.loads(out)
    for key in ("top1_loc", "top5_loc", "gt_known_loc", "top1_cls", "threshold"):
        assert scored[key] == pytest.approx(first[key]), key
    # and under another protocol, from the same files
    code, out, err = run_cli("score", run_dir / "maps-test.npz", "--val", run_dir / "maps-val.npz",
                             "--protocol", "wsoleval", "--json")
    wsoleval = json.loads((run_dir / "eval-wsoleval.json").read_text())
    assert code == 0 and json.loads(out)["maxboxacc_v2"] == pytest.approx(wsoleval["maxboxacc_v2"])


def test_cli_resume_continues_the_run_in_its_folder(synth, tmp_path, run_cli):
    """`wsolbench run --resume RUN_DIR` rebuilds the run from config.json alone and finishes it."""
    cfg = tiny(synth, tmp_path, "cam", epochs=2, input_size=None, protocol=None)  # resolved from the dataset
    run_dir = train_and_evaluate(cfg, show_progress=False)
    complete = _numbers(run_dir)
    (run_dir / R.METRICS).unlink()  # as if it had been stopped before its final evaluation
    code, out, err = run_cli("run", "--resume", run_dir, "--no-progress")
    assert code == 0, out + err
    assert _numbers(run_dir) == complete


def test_run_on_bad_data_stops_before_training_or_skips_when_asked(synth, tmp_path, run_cli):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth, data)
    first_train = next(line.split()[1] for line in (data / "images.txt").read_text().splitlines())
    (data / "images" / first_train).write_bytes(b"\xff\xd8\xff not a jpeg")
    args = ["run", "-m", "cam", "-b", "test_resnet", "-d", "synthetic", "--data-root", data, "--epochs", "1",
            "--batch-size", "8", "--input-size", "32", "--out", tmp_path / "runs", "--no-progress"]
    code, out, err = run_cli(*args)
    assert code == 1 and "Traceback" not in out + err
    assert first_train in out.replace("\n", "") and "failed" in out
    assert not list((tmp_path / "runs").rglob("steps.jsonl"))  # no training step ran

    code, out, err = run_cli(*args, "--skip-bad")
    assert code == 0, out + err
    assert "skipped 1 bad samples" in out.replace("\n", " ")
    (metrics,) = (tmp_path / "runs").rglob("metrics.json")
    assert json.loads(metrics.read_text())["skipped_bad_samples"] == 1


def test_run_on_wsolevaluation_metadata_with_data_options(tmp_path, run_cli):
    """Reader options reach the dataset from the command line (--data-option), and a wrong one is one line."""
    from test_data_wsoleval import write_wsoleval

    write_wsoleval(tmp_path / "images", tmp_path / "metadata", name="CUB")
    args = ["run", "-m", "cam", "-b", "test_resnet", "-d", "wsoleval", "--data-root", tmp_path / "images",
            "--data-option", f"metadata={tmp_path / 'metadata'}", "--data-option", "name=CUB", "--epochs", "1",
            "--batch-size", "2", "--input-size", "32", "--no-progress"]
    code, out, err = run_cli(*args, "--out", tmp_path / "runs")
    assert code == 0, out + err
    (metrics,) = (tmp_path / "runs").rglob("metrics.json")
    result = json.loads(metrics.read_text())
    assert result["protocol"] == "wsoleval" and result["n_test"] == 2 and result["n_val"] == 1

    code, out, err = run_cli(*args, "--data-option", "colour=blue", "--out", tmp_path / "runs2")
    assert code == 1 and "colour" in out and "Traceback" not in out + err


def test_lr_rule_base_rate_from_random_init_head_x10_when_fine_tuning(synth, tmp_path):
    """The papers' x10 head / x2 bias rule applies to --pretrained runs only; --set overrides; config.json says."""
    import timm

    def rates(cfg):
        run_dir = train_and_evaluate(cfg, show_progress=False)
        config = json.loads((run_dir / R.CONFIG).read_text())
        return {g["name"]: round(g["lr"], 6) for g in config["lr_groups"]}, config["method_config"]

    scratch, method_config = rates(tiny(synth, tmp_path / "a", "acol-simplified"))
    assert scratch == {"backbone.weight": 0.01, "backbone.bias": 0.01, "head.weight": 0.01, "head.bias": 0.01}
    assert method_config["head_lr_mult"] == 1.0
    weights = tmp_path / "test_resnet.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), weights)
    fine, method_config = rates(tiny(synth, tmp_path / "b", "acol-simplified", pretrained=str(weights)))
    assert fine == {"backbone.weight": 0.01, "backbone.bias": 0.02, "head.weight": 0.1, "head.bias": 0.2}
    assert (method_config["head_lr_mult"], method_config["bias_lr_mult"]) == (10.0, 2.0)
    cfg = tiny(synth, tmp_path / "c", "acol-simplified", pretrained=str(weights))
    cfg.method_settings["head_lr_mult"] = 3
    assert rates(cfg)[0]["head.weight"] == 0.03  # --set wins over the rule


def test_collapse_is_flagged_kept_and_evaluated_not_raised(synth, tmp_path):
    """A run whose loss turns non-finite stops there, is evaluated as it stands and says so in metrics.json;
    a run that learns is not flagged."""
    from wsolbench.data.synthetic import generate

    collapsed = train_and_evaluate(tiny(synth, tmp_path / "a", "cam", lr=1e30), show_progress=False)
    metrics = json.loads((collapsed / R.METRICS).read_text())
    assert metrics["collapse"].startswith("loss not finite at epoch 1 step ")
    assert math.isfinite(metrics["gt_known_loc"]) and (collapsed / R.CHECKPOINT).exists()
    assert json.loads((collapsed / "eval-wsoleval.json").read_text())["collapse"] == metrics["collapse"]
    easy = generate(tmp_path / "easy", classes=4, per_class=24, test_per_class=2, size=32)
    healthy = train_and_evaluate(tiny(easy, tmp_path / "b", "cam", lr=0.1, epochs=3), show_progress=False)
    val = [json.loads(line)["val"]["top1_cls"] for line in (healthy / R.EPOCHS).read_text().splitlines()]
    assert val[-1] >= 50 and json.loads((healthy / R.METRICS).read_text())["collapse"] is None


def test_near_chance_is_below_twice_chance_and_a_fall_is_below_half_the_best():
    from wsolbench.engine.collapse import fell, near_chance

    assert near_chance(24.9, 8) == "val Top-1 Cls 24.9% ends near chance (12.5%)"
    assert near_chance(25.0, 8) is None and near_chance(None, 8) is None
    assert fell([40.0, 96.0, 94.0, 35.9]) == "val Top-1 Cls fell from 96.0% (epoch 2) to 35.9% (epoch 4)"
    assert fell([40.0, 96.0, 94.0, 48.0]) is None and fell([10.0]) is None and fell([]) is None


def test_a_fall_is_read_from_the_epochs_of_any_run(tmp_path):
    """The leaderboard applies the fall rule to runs whose metrics.json predates it (or says healthy)."""
    from wsolbench.engine.collapse import run_collapse

    (tmp_path / R.EPOCHS).write_text("".join(json.dumps({"epoch": i, "val": {"top1_cls": v}}) + "\n"
                                             for i, v in enumerate([50.0, 95.0, 33.6])))
    assert run_collapse(tmp_path, None) == "val Top-1 Cls fell from 95.0% (epoch 2) to 33.6% (epoch 3)"
    assert run_collapse(tmp_path, "loss not finite at epoch 1 step 2") == "loss not finite at epoch 1 step 2"
    assert run_collapse(tmp_path / "none", None) is None
