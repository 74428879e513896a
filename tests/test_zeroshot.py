"""Zero-shot WSOL: a pretrained 1000-class checkpoint scored with its own head on a val-only ILSVRC folder."""
import json
import random

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from wsolbench.engine import rundir as R

WNIDS = [f"n{10000000 + 7919 * i:08d}" for i in range(1000)]  # sorted: the index order of ImageNet-1k heads
ARCH = "test_efficientnet"  # a tiny timm CNN with a pool + linear head


def _write_solution(root, names, wnids):
    rows = ["ImageId,PredictionString"] + [f"{n},{w} 4 5 40 30" for n, w in zip(names, wnids)]
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def zero_shot_folder(tmp_path_factory):
    """val/*.JPEG + LOC_val_solution.csv + LOC_synset_mapping.txt (its lines shuffled: the reader must sort).
    Each image's class is the model's own top-1 through the pipeline's eval transform, so the checkpoint's
    head scores 100% Top-1 Cls exactly when the reader's class index is the head's sorted-WNID index."""
    from wsolbench.data.loading import ImageDataset, test_transform
    from wsolbench.registry import DATASETS

    root = tmp_path_factory.mktemp("ilsvrc_val")
    (root / "val").mkdir()
    torch.manual_seed(0)
    model = timm.create_model(ARCH, num_classes=1000).eval()
    weights = root / "w.pth"
    torch.save(model.state_dict(), weights)
    lines = [f"{w} class {i}" for i, w in enumerate(WNIDS)]
    random.Random(0).shuffle(lines)
    (root / "LOC_synset_mapping.txt").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    names = [f"ILSVRC2012_val_{i + 1:08d}" for i in range(6)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (48, 56, 3), dtype=np.uint8)).save(root / "val" / f"{name}.JPEG", format="PNG")
    _write_solution(root, names, [WNIDS[0]] * len(names))  # placeholder classes, to read the images back
    samples = DATASETS.build("ilsvrc", root=root).samples("test")
    images = torch.stack([ImageDataset(samples, test_transform(64))[i][0] for i in range(len(samples))])
    with torch.no_grad():
        top1 = model(images).argmax(1).tolist()
    assert len(set(top1)) > 1  # the check below could not tell a constant shift otherwise
    _write_solution(root, [s.image_id for s in samples], [WNIDS[c] for c in top1])
    return root, weights, model, top1


def test_zero_shot_scores_the_checkpoint_head_without_training(zero_shot_folder, tmp_path, run_cli):
    root, weights, model, top1 = zero_shot_folder
    from wsolbench.registry import DATASETS

    reader = DATASETS.build("ilsvrc", root=root)
    assert reader.num_classes == 1000 and reader.wnids == WNIDS  # sorted, whatever the file's order
    assert [s.label for s in reader.samples("test")] == top1 and not reader.samples("train")

    code, out, err = run_cli("run", "-m", "cam", "-b", ARCH, "--pretrained", weights, "--epochs", "0", "-d", "ilsvrc",
                             "--data-root", root, "--input-size", "64", "--policy", "test-optimal", "--out", tmp_path,
                             "--device", "cpu", "--no-progress")
    assert code == 0, out + err
    (run_dir,) = (tmp_path / "ilsvrc").iterdir()
    assert not (run_dir / R.STEPS).exists() or not (run_dir / R.STEPS).read_text().strip()  # no training step
    metrics = json.loads((run_dir / R.METRICS).read_text())
    assert metrics["top1_cls"] == 100.0
    ckpt = torch.load(run_dir / R.CHECKPOINT, weights_only=True)["model"]
    assert torch.equal(ckpt["classifier.weight"], model.classifier.weight)  # the checkpoint's own head

    # the same run through an explainer: the head is the same, so Top-1 Cls is too
    code, out, err = run_cli("eval", run_dir, "--explainer", "gradcam", "--device", "cpu")
    assert code == 0, out + err
    explained = json.loads((run_dir / "eval-ilsvrc-gradcam.json").read_text())
    assert explained["top1_cls"] == 100.0 and explained["explainer"] == "gradcam"


def test_zero_shot_class_count_mismatch_is_one_line(zero_shot_folder, tmp_path, run_cli):
    root, weights, _, _ = zero_shot_folder
    small = tmp_path / "ten"
    (small / "val").mkdir(parents=True)
    (small / "LOC_synset_mapping.txt").write_text("".join(f"{w} c\n" for w in WNIDS[:10]))
    for p in (root / "val").iterdir():
        (small / "val" / p.name).write_bytes(p.read_bytes())
    _write_solution(small, [p.stem for p in sorted((small / "val").iterdir())], [WNIDS[1]] * 6)
    code, out, err = run_cli("run", "-m", "cam", "-b", ARCH, "--pretrained", weights, "--epochs", "0", "-d", "ilsvrc",
                             "--data-root", small, "--input-size", "64", "--policy", "test-optimal",
                             "--out", tmp_path / "runs", "--device", "cpu", "--no-progress")
    assert code != 0
    assert "has 1000 classes but dataset ilsvrc has 10" in out + err


def test_zero_shot_refuses_a_method_without_the_checkpoint_head(zero_shot_folder, tmp_path, run_cli):
    root, weights, _, _ = zero_shot_folder
    code, out, err = run_cli("run", "-m", "acol", "-b", ARCH, "--pretrained", weights, "--epochs", "0", "-d", "ilsvrc",
                             "--data-root", root, "--input-size", "64", "--policy", "test-optimal",
                             "--out", tmp_path, "--device", "cpu", "--no-progress", "--set", "head_width=8")
    assert code != 0 and "only CAM-family methods" in out + err


def test_zero_shot_needs_a_pooling_linear_head(zero_shot_folder, tmp_path, run_cli):
    root, _, _, _ = zero_shot_folder
    weights = tmp_path / "mnv3.pth"
    torch.save(timm.create_model("mobilenetv3_small_050").state_dict(), weights)  # pool -> conv_head -> classifier
    code, out, err = run_cli("run", "-m", "cam", "-b", "mobilenetv3_small_050", "--pretrained", weights, "--epochs", "0",
                             "-d", "ilsvrc", "--data-root", root, "--input-size", "64", "--policy", "test-optimal",
                             "--out", tmp_path / "runs", "--device", "cpu", "--no-progress")
    assert code != 0 and "head is not global average pooling + linear" in out + err
