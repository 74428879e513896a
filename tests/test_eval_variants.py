"""Evaluation as the papers ran it: ten-crop classes, another run's classes, each in its own files and rows."""
import json
import shutil

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from wsolbench.backbones import build_backbone
from wsolbench.data import loading as L
from wsolbench.engine.evaluate import class_scores
from wsolbench.methods.base import build_method

MEASURES = ("top1_loc", "top5_loc", "gt_known_loc", "top1_cls", "top5_cls", "threshold", "pxap")


def test_ten_crop_scores_are_the_mean_of_ten_forward_passes_by_hand():
    torch.manual_seed(0)
    method = build_method("cam", build_backbone("test_resnet"), 6).eval()
    image = np.random.default_rng(0).integers(0, 255, (45, 61, 3), dtype=np.uint8)
    views, _ = L.test_transform(32, tencrop=True)(image)
    assert views.shape == (11, 3, 32, 32)
    assert torch.equal(views[0], L.test_transform(32)(image)[0])  # the maps' view is the one-view evaluation's
    crops = T.TenCrop(32)(Image.fromarray(L._resize(image, (37, 37))))  # 32 * 256 / 224 = 36.6 -> 37
    with torch.no_grad():
        by_hand = torch.stack([method(L.to_tensor(np.asarray(c))[None]).logits[0].softmax(0) for c in crops]).mean(0)
        scores = class_scores(method, views[None])
    torch.testing.assert_close(scores[0], by_hand, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from wsolbench.cli import main
    from wsolbench.data.synthetic import generate

    root = tmp_path_factory.mktemp("variants")
    data = generate(root / "synth", classes=6, per_class=6, test_per_class=3, size=32)
    runs = root / "runs"
    common = ["-b", "test_resnet", "-d", "synthetic", "--data-root", str(data), "--batch-size", "8",
              "--input-size", "32", "--out", str(runs), "--device", "cpu", "--no-progress"]
    for epochs in ("2", "3"):  # two classifiers of the same classes
        try:
            main(["run", "-m", "cam", "--epochs", epochs, *common])
        except SystemExit as exc:
            assert not exc.code
    a, b = sorted((runs / "synthetic").iterdir(), key=lambda p: json.loads((p / "config.json").read_text())["epochs"])
    return data, a, b


def _metrics(run_dir, name):
    return json.loads((run_dir / name).read_text())


def test_own_checkpoint_as_classifier_gives_the_runs_own_numbers(two_runs, run_cli):
    _, a, _ = two_runs
    code, out, err = run_cli("eval", a, "--device", "cpu")
    assert code == 0, out + err
    own = _metrics(a, "eval-cub.json")
    code, out, err = run_cli("eval", a, "--classifier", a / "checkpoint.pt", "--device", "cpu")
    assert code == 0, out + err
    (name,) = [p.name for p in a.glob("eval-cub-classifier-*.json")]
    mine = _metrics(a, name)
    assert {k: mine.get(k) for k in MEASURES} == {k: own.get(k) for k in MEASURES}
    assert mine["classifier"] == "cam/test_resnet" and mine["classifier_run"] == a.name
    assert (a / name.replace("eval-", "per-image-").replace(".json", ".npz")).is_file()


def test_another_classifier_changes_classes_not_maps(two_runs, run_cli):
    _, a, b = two_runs
    code, out, err = run_cli("eval", a, "--classifier", b, "--device", "cpu")
    assert code == 0, out + err
    other = _metrics(a, f"eval-cub-classifier-{b.name}.json")
    b_own = _metrics(b, "metrics.json")
    a_own = _metrics(a, "metrics.json")
    assert other["top1_cls"] == b_own["top1_cls"] and other["top5_cls"] == b_own["top5_cls"]  # b's classes
    assert other["gt_known_loc"] == a_own["gt_known_loc"] and other["threshold"] == a_own["threshold"]  # a's maps


def test_a_mismatched_classifier_is_one_line(two_runs, run_cli, tmp_path):
    from wsolbench.data.synthetic import generate

    data, a, b = two_runs
    fewer = generate(tmp_path / "synth5", classes=5, per_class=6, test_per_class=3, size=32)
    code, out, err = run_cli("run", "-m", "cam", "--epochs", "1", "-b", "test_resnet", "-d", "synthetic", "--data-root",
                             fewer, "--batch-size", "8", "--input-size", "32", "--out", tmp_path / "runs", "--device",
                             "cpu", "--no-progress")
    assert code == 0, out + err
    (small,) = (tmp_path / "runs" / "synthetic").iterdir()
    code, out, err = run_cli("eval", a, "--classifier", small, "--device", "cpu")
    assert code == 2 and "5 classes (synthetic), but the evaluated run has 6" in out + err
    assert "Traceback" not in out + err and len((out + err).strip().splitlines()) == 1

    swapped = tmp_path / "swapped"  # the same images, two class names swapped in classes.txt
    shutil.copytree(data, swapped)
    lines = (swapped / "classes.txt").read_text().splitlines()
    ids, names = zip(*(line.split(" ", 1) for line in lines))
    names = list(names)
    names[1], names[2] = names[2], names[1]
    (swapped / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in zip(ids, names)))
    moved = tmp_path / "moved"
    shutil.copytree(b, moved)
    config = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "data_root": str(swapped)}))
    code, out, err = run_cli("eval", a, "--classifier", moved, "--device", "cpu")
    assert code == 2 and "classes are in another order (class 1 is" in out + err
    code, out, err = run_cli("eval", a, "--classifier", tmp_path / "nowhere", "--device", "cpu")
    assert code == 2 and "no such run folder" in out + err


def test_ten_crop_rows_are_labelled_with_their_own_records(two_runs, run_cli):
    from wsolbench.leaderboard import collect_runs

    _, a, _ = two_runs
    code, out, err = run_cli("eval", a, "--tencrop", "--explainer", "gradcam", "--device", "cpu")
    assert code == 0, out + err
    ten = _metrics(a, "eval-cub-gradcam-tencrop.json")
    assert ten["cls_views"] == "ten-crop" and ten["variant"] == "gradcam-tencrop"
    assert (a / "per-image-cub-gradcam-tencrop.npz").is_file()
    df, _ = collect_runs(a.parent.parent)
    row = df[(df["run_id"] == a.name) & (df["protocol"] == "cub") & (df["variant"] == "gradcam-tencrop")]
    assert row["method"].tolist() == ["cam + gradcam + ten-crop"]
    own = df[(df["run_id"] == a.name) & (df["protocol"] == "cub") & (df["method"] == "cam")]
    assert len(own) == 1 and own["cls_views"].tolist() == ["one view"]
    assert row["config"].iloc[0] != own["config"].iloc[0]  # its own row: its own interval and paired differences


def test_a_class_agnostic_baseline_gets_top1_loc_from_a_classifier(two_runs, run_cli, tmp_path):
    data, a, _ = two_runs
    code, out, err = run_cli("run", "-m", "center-box", "-b", "test_resnet", "-d", "synthetic", "--data-root", data,
                             "--input-size", "32", "--out", tmp_path / "runs", "--device", "cpu", "--no-progress")
    assert code == 0, out + err
    (box,) = (tmp_path / "runs" / "synthetic").iterdir()
    assert _metrics(box, "metrics.json").get("top1_loc") is None  # no classifier of its own
    code, out, err = run_cli("eval", box, "--classifier", a, "--device", "cpu")
    assert code == 0, out + err
    with_classes = _metrics(box, f"eval-cub-classifier-{a.name}.json")
    own = _metrics(box, "metrics.json")
    assert with_classes["top1_cls"] == _metrics(a, "metrics.json")["top1_cls"]  # a's classes
    assert with_classes["gt_known_loc"] == own["gt_known_loc"] and 0 <= with_classes["top1_loc"] <= with_classes["gt_known_loc"]


def test_ten_crop_views_go_through_predict_with_channels_last():
    from wsolbench.engine.evaluate import predict

    torch.manual_seed(0)
    method = build_method("cam", build_backbone("test_resnet"), 6).eval()
    image = np.random.default_rng(1).integers(0, 255, (40, 52, 3), dtype=np.uint8)
    views = torch.stack([L.test_transform(32, tencrop=True)(image)[0]] * 2)
    batch = [(views, torch.tensor([1, 2]), torch.tensor([0, 1]))]
    plain = next(predict(method, batch, torch.device("cpu")))
    last = next(predict(method, batch, torch.device("cpu"), channels_last=True))
    for a, b in zip(plain, last):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
