"""The field's baselines: each method's defining behaviour, and each one end to end on the synthetic set."""
import json

import pytest
import torch

from wsolbench.backbones import build_backbone
from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import build_method

BASELINES = ("has", "adl", "cutmix", "spg")


def _method(name, **settings):
    torch.manual_seed(0)
    return build_method(name, build_backbone("test_resnet"), 4, **settings)


def test_has_hides_whole_grid_cells_at_the_rate_in_training_never_at_eval():
    from wsolbench.methods.has import hide_cells

    torch.manual_seed(0)
    images = torch.randn(400, 3, 24, 24) + 5  # no pixel is 0 before hiding
    hidden, keep = hide_cells(images, grid=3, drop_rate=0.5)
    assert keep.shape == (400, 3, 3)
    cells = hidden.reshape(400, 3, 3, 8, 3, 8)  # 24 px = 3 cells of 8
    for i in range(3):
        for j in range(3):
            block = cells[:, :, i, :, j, :]
            zero = (block == 0).flatten(1).all(1)
            untouched = (block == images.reshape(400, 3, 3, 8, 3, 8)[:, :, i, :, j, :]).flatten(1).all(1)
            assert torch.equal(zero, keep[:, i, j] == 0) and torch.equal(untouched, keep[:, i, j] == 1)
    assert 0.45 < 1 - keep.mean().item() < 0.55  # 3600 cells at drop_rate 0.5

    method = _method("has", grid=4, drop_rate=1.0)  # every cell hidden: the image the network sees is all zeros
    seen = []
    method.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    x, y = torch.randn(2, 3, 32, 32) + 5, torch.tensor([0, 1])
    method.train()
    method(x, y)
    assert torch.count_nonzero(seen[-1]) == 0
    method.eval()
    method(x, y)
    assert torch.equal(seen[-1], x)  # never at eval
    with pytest.raises(WsolbenchError, match="grid"):
        _method("has", grid=0)


def test_adl_chooses_the_drop_mask_at_the_configured_rate_and_is_identity_at_eval():
    from wsolbench.methods.adl import adl

    torch.manual_seed(0)
    x = torch.rand(2, 4, 5, 5)
    x[:, :, 2, 2] = 10.0  # the attention peak
    drops = [adl(x, drop_rate=0.75, gamma=0.9)[1] for _ in range(2000)]
    assert 0.72 < sum(drops) / len(drops) < 0.78
    out, dropped = adl(x, drop_rate=1.0, gamma=0.9)
    attention = x.mean(1, keepdim=True)
    assert dropped and torch.equal(out, x * (attention < 0.9 * attention.amax((2, 3), keepdim=True)))
    assert torch.count_nonzero(out[:, :, 2, 2]) == 0  # the most attended position is dropped
    out, dropped = adl(x, drop_rate=0.0, gamma=0.9)
    assert not dropped and torch.allclose(out, x * torch.sigmoid(attention))

    method = _method("adl")
    assert method.position_names == ["features.layer3.0", "features.layer4.0"]  # timm ResNet defaults
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    method.train()
    method(images, labels)
    assert len(method.branches) == 2  # one draw per position and step
    method.eval()
    plain = build_method("cam", method.backbone, 4)
    plain.classifier.load_state_dict(method.classifier.state_dict())
    plain.eval()
    assert torch.equal(method(images).cams, plain.forward(images).cams) and method.branches == []
    with pytest.raises(WsolbenchError, match="positions nope"):
        _method("adl", positions="nope")


def test_cutmix_label_weight_is_the_pasted_area_fraction():
    from wsolbench.methods.cutmix import cutmix

    torch.manual_seed(0)
    for _ in range(20):
        images = torch.arange(4.0)[:, None, None, None].expand(4, 3, 20, 30).clone()  # image i is all i
        labels = torch.tensor([0, 1, 2, 3])
        mixed, pasted, weight = cutmix(images, labels, beta=1.0)
        for i in range(4):
            from_other = (mixed[i, 0] == pasted[i].float()).float().mean().item()
            if pasted[i] != i:
                assert weight == pytest.approx(from_other)  # label weight = fraction of pixels pasted
        assert 0 <= weight <= 1
    method = _method("cutmix")
    method.train()
    out = method(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert out.losses["cls"].requires_grad


def test_spg_targets_follow_their_thresholds():
    from wsolbench.methods.spg import MIN_FG_PIXELS, target

    att = torch.linspace(0, 1, 100).reshape(1, 1, 10, 10)
    t = target(att, high=0.7, low=0.01)
    assert torch.equal(t == 1, att > 0.7) and torch.equal(t == 0, att < 0.01)
    assert torch.equal(t == -1, (att >= 0.01) & (att <= 0.7))
    assert (att > 0.7).sum() >= MIN_FG_PIXELS
    small = torch.zeros(1, 1, 10, 10)
    small[0, 0, 0, :5] = torch.tensor([0.2, 0.3, 0.4, 0.5, 0.6])  # nothing above 0.7: 0.7 x max (0.42) instead
    t = target(small, high=0.7, low=0.05)
    assert torch.equal(t == 1, small > 0.42) and torch.equal(t == 0, small < 0.05)

    method = _method("spg", head_width=8, branch_width=8)
    method.train()
    out = method(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert set(out.losses) == {"cls", "b2", "b1", "c"} and all(torch.isfinite(v) for v in out.losses.values())


def test_baselines_listed_with_their_settings(run_cli):
    code, out, err = run_cli("list", "methods")
    assert code == 0
    for name, setting in (("has", "grid=4"), ("adl", "drop_rate=0.75"), ("cutmix", "beta=1.0"), ("spg", "b2_high=0.7")):
        assert name in out and setting in out, (name, out)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_runs_end_to_end_with_a_set_setting(name, tmp_path, run_cli):
    from wsolbench.data.synthetic import generate

    data = generate(tmp_path / "synth", classes=4, per_class=6, test_per_class=2, size=32)
    setting = {"has": "grid=2", "adl": "gamma=0.8", "cutmix": "prob=0.5", "spg": "b1_high=0.6"}[name]
    extra = ["--set", "head_width=8", "--set", "branch_width=8"] if name == "spg" else []
    code, out, err = run_cli("run", "-m", name, "-b", "test_resnet", "-d", "synthetic", "--data-root", data,
                             "--epochs", "1", "--batch-size", "8", "--input-size", "32", "--out", tmp_path / "runs",
                             "--set", setting, *extra, "--device", "cpu", "--no-progress")
    assert code == 0, out + err
    (run_dir,) = (tmp_path / "runs" / "synthetic").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    key, value = setting.split("=")
    assert str(config["method_config"][key]) == value
    assert json.loads((run_dir / "metrics.json").read_text())["gt_known_loc"] >= 0
