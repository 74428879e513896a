"""The method plugins end to end on a tiny conv backbone: shapes, gradients, the GC bank, switches."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import build_method
from wsolbench.registry import METHODS, list_methods

NUM_CLASSES = 4
LABELS = torch.tensor([0, 0, 1, 1, 2])  # class 2 appears once, class 3 not at all


class TinyBackbone(nn.Module):
    """16 x 16 images -> 6 x 4 x 4 feature map."""

    out_channels = 6
    reduction = 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, self.out_channels, 3, stride=4, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def build(name, **overrides):
    backbone = TinyBackbone() if METHODS.get(name).obj.needs_backbone else None
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).obj.Config)}
    if "head_width" in fields:
        overrides.setdefault("head_width", 8)
    if "b1_layer" in fields:  # SPG's B1 branch: the tiny backbone's one layer
        overrides.setdefault("b1_layer", "conv")
    if "positions" in fields:  # ADL after the tiny backbone's one layer
        overrides.setdefault("positions", "conv")
    return build_method(name, backbone, NUM_CLASSES, **overrides)


def images(seed, n=5):
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", [n for n in list_methods() if not METHODS.get(n).obj.needs_tokens])  # ViT-only: test_transformers.py
def test_every_method_forward_maps_and_gradients(name):
    torch.manual_seed(0)
    method = build(name)
    method.set_epoch(5)  # past every loss_start_epoch
    x = images(1)
    top = torch.tensor([[3, 1], [0, 2], [1, 0], [2, 3], [0, 1]])
    if not method.needs_backbone:
        assert list(method.parameters()) == [] and method.param_groups(0.1, 0.0) == []
        out = method.eval()(x)
        assert out.logits is None
        assert method.maps(out, top).shape == (5, 2, 28, 28)
        return
    method.train()
    out = method(x, LABELS)
    assert out.logits.shape == (5, NUM_CLASSES) and out.features.shape == (5, 6, 4, 4)
    assert "cls" in out.losses
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.losses.values())
    sum(out.losses.values()).backward()
    for pname, p in method.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    method.eval()
    with torch.no_grad():
        out = method(x)
    assert out.losses == {}
    maps = method.maps(out, top)
    assert maps.shape == (5, 2, 4, 4)
    assert torch.equal(maps[0, 0], out.cams[0, 3]) and torch.equal(maps[3, 1], out.cams[3, 3])


def test_cam_map_is_the_classifier_applied_at_every_position():
    method = build("cam").eval()
    out = method(images(2))
    w, b = method.classifier.weight, method.classifier.bias
    expected = torch.einsum("cd,bdhw->bchw", w, out.features)
    assert torch.allclose(out.cams, expected, atol=1e-6)
    assert torch.allclose(out.cams.mean((2, 3)) + b, out.logits, atol=1e-6)


def test_acol_logits_are_the_average_of_the_class_maps():
    method = build("acol").eval()
    out = method(images(3))
    assert out.cams.shape == (5, NUM_CLASSES, 4, 4)
    assert torch.allclose(out.cams.mean((2, 3)), out.logits)


def reference_seed_vectors(out, labels, k, delta):
    """Independently: the first k above-delta positions (cycled when fewer) of each true-class map."""
    vectors = []
    for b, y in enumerate(labels.tolist()):
        m = out.cams[b, y].detach().flatten().tolist()
        lo, hi = min(m), max(m)
        above = [i for i, v in enumerate(m) if hi > lo and (v - lo) / (hi - lo) > delta]
        f = out.features[b].detach().flatten(1)
        vectors.append(torch.stack([f[:, above[i % len(above)]] for i in range(k)]))
    return torch.stack(vectors)  # B x k x D


def class_means(vectors, labels):
    return {y: vectors[labels == y].reshape(-1, vectors.shape[-1]).mean(0) for y in labels.unique().tolist()}


def test_i2c_bank_update_and_losses_over_two_steps():
    torch.manual_seed(0)
    cfg = dict(seed_order="raster", dropout=0.0, k=2, delta=0.5, alpha=0.4, lambda1=0.5, lambda2=2.0)
    method = build("i2c", **cfg).train()
    method.set_epoch(1)
    out = method(images(4), LABELS)
    v = reference_seed_vectors(out, LABELS, 2, 0.5)
    a1 = class_means(v, LABELS)
    for y in range(NUM_CLASSES):
        expected = a1[y] if y in a1 else torch.zeros(6)
        assert torch.allclose(method.centers[y], expected, atol=1e-6)
    assert method.center_updates.tolist() == [1, 1, 1, 0]
    # SC: pairs (0, 1) and (2, 3), the lone class 2 adds none; GC: first visit, the center is the mean
    sc = ((v[0] - v[1]).pow(2).sum(-1).mean() + (v[2] - v[3]).pow(2).sum(-1).mean()) / 2
    assert out.losses["sc"].item() == pytest.approx(0.5 * sc.item(), rel=1e-5)
    assert out.losses["gc"].item() == pytest.approx(0.0, abs=1e-6)

    labels2 = torch.tensor([1, 1, 3, 3, 3])
    out = method(images(5), labels2)
    a2 = class_means(reference_seed_vectors(out, labels2, 2, 0.5), labels2)
    eta = math.exp(-0.4)
    w1 = (1 - eta) * a1[1] + eta * a2[1]
    assert torch.allclose(method.centers[1], w1, atol=1e-6)
    assert torch.allclose(method.centers[3], a2[3], atol=1e-6)  # first visit of class 3
    assert torch.allclose(method.centers[0], a1[0], atol=1e-6)  # absent: unchanged
    assert method.center_updates.tolist() == [1, 2, 1, 1]
    gc = ((a2[1] - w1).pow(2).sum() + 0.0) / 2  # class 3 sits on its new center
    assert out.losses["gc"].item() == pytest.approx(2.0 * gc.item(), rel=1e-4)


def test_released_gc_uses_the_previous_random_center_and_euclidean_distance():
    torch.manual_seed(0)
    method = build("i2c-released", dropout=0.0, k=2, delta=0.5).train()
    bank = method.centers.clone()
    assert bank.abs().sum() > 0  # randomly initialised
    out = method(images(6), LABELS)  # loss_start_epoch 0: on from the first epoch
    a = class_means(reference_seed_vectors(out, LABELS, 2, 0.5), LABELS)
    gc = sum((a[y] - bank[y]).norm() for y in a) / len(a)
    assert out.losses["gc"].item() == pytest.approx(0.001 * gc.item(), rel=1e-4)
    assert torch.allclose(method.centers[0], a[0], atol=1e-6)  # eta = 1 on the first visit


def test_released_variant_differs_only_in_the_listed_fields():
    def fields(name):
        return dataclasses.asdict(build(name).cfg)

    def diff(a, b):
        return {k for k in fields(a) if fields(a)[k] != fields(b)[k]}

    assert diff("i2c", "i2c-released") == {
        "seed_order", "distance", "lambda2", "gc_center", "bank_init", "loss_start_epoch"
    }
    assert fields("i2c-released")["alpha"] == 0.002 and fields("i2c-released")["lambda2"] == 0.001
    assert diff("i2c", "i2c-bpgc") == {"gc_update"}
    assert diff("i2c", "i2c-sc") == {"use_gc"}
    assert fields("i2c")["delta"] == 0.7 and fields("i2c")["k"] == 3 and fields("i2c")["lambda1"] == 0.008


def test_only_backprop_gc_centers_receive_gradients():
    torch.manual_seed(0)
    bp = build("i2c-bpgc").train()
    assert any(p is bp.centers for p in bp.parameters())
    bp.set_epoch(0)  # before loss_start_epoch the zero terms still reach the centers
    sum(bp(images(7), LABELS).losses.values()).backward()
    assert bp.centers.grad is not None and not bp.centers.grad.any()
    bp.zero_grad()
    bp.set_epoch(1)
    sum(bp(images(7), LABELS).losses.values()).backward()
    assert bp.centers.grad[:3].abs().sum(1).gt(0).all()  # present classes
    assert not bp.centers.grad[3].any()  # absent class
    assert bp.center_updates.tolist() == [1, 1, 1, 0]
    group = next(g for g in bp.param_groups(0.1, 5e-4) if any(p is bp.centers for p in g["params"]))
    assert group["name"] == "centers" and group["params"] == [bp.centers]
    assert group["lr"] == bp.cfg.center_lr and group["weight_decay"] == 0.0

    momentum = build("i2c").train()
    momentum.set_epoch(1)
    assert all(p is not momentum.centers for p in momentum.parameters())
    sum(momentum(images(7), LABELS).losses.values()).backward()
    assert not momentum.centers.requires_grad and momentum.centers.grad is None


def _seed_class_means(method, x, labels):
    """a^y of the batch as the method sees it now (raster seeds, no dropout: deterministic)."""
    from wsolbench.methods import i2c_losses as L

    with torch.no_grad():
        out = method(x)  # no labels: no loss, no counter update
        true_maps = out.cams[torch.arange(len(labels)), labels]
        positions, valid = L.select_seeds(true_maps, method.cfg.k, method.cfg.delta, "raster")
        sums, counts = L.class_seed_sums(L.gather_seeds(out.features, positions), labels, valid, NUM_CLASSES)
    return L.class_means(sums, counts)


def test_backprop_gc_centers_approach_the_class_means_of_the_seeds():
    """i2c-bpgc's learned centers move to a^y (not an L2 pull of the seeds toward zero)."""
    torch.manual_seed(0)
    from wsolbench.methods.base import FINE_TUNE_LR_MULTS

    method = build("i2c-bpgc", dropout=0.0, seed_order="raster", loss_start_epoch=0, **FINE_TUNE_LR_MULTS).train()
    # a small base rate: the features (so a^y) stay nearly still; the centers' rate does not follow it
    optimizer = torch.optim.SGD(method.param_groups(1e-4, 5e-4), lr=1e-4, momentum=0.9, nesterov=True)
    x = images(3)
    gaps = []
    for _ in range(30):
        means = _seed_class_means(method, x, LABELS)[:3]  # classes 0, 1, 2 are in the batch
        gaps.append(((method.centers[:3].detach() - means).norm() / means.norm()).item())
        optimizer.zero_grad()
        sum(method(x, LABELS).losses.values()).backward()
        optimizer.step()
    assert gaps[0] == pytest.approx(1.0)  # the centers start at zero
    assert gaps[-1] < 0.1, " ".join(f"{g:.3f}" for g in gaps)  # at the head's rate (x10) with weight decay: still ~0.9 after 30 steps
    assert not method.centers[3].any()  # class 3 never seen: no gradient, no decay, still zero


def test_losses_are_attached_zeros_before_the_start_epoch_and_bank_untouched():
    method = build("i2c").train()
    out = method(images(8), LABELS)
    assert set(out.losses) == {"cls", "sc", "gc"}
    assert out.losses["sc"].item() == 0.0 and out.losses["gc"].requires_grad
    assert not method.centers.any() and not method.center_updates.any()
    assert set(build("i2c-sc").train()(images(8), LABELS).losses) == {"cls", "sc"}


def test_eval_mode_leaves_the_bank_alone():
    method = build("i2c").eval()
    method.set_epoch(3)
    out = method(images(9), LABELS)
    assert out.losses == {} and not method.center_updates.any()


def test_state_dict_round_trip_keeps_bank_and_counters():
    torch.manual_seed(0)
    method = build("i2c").train()
    method.set_epoch(1)
    method(images(10), LABELS)
    method(images(11), torch.tensor([3, 3, 1, 1, 0]))
    state = method.state_dict()
    assert {"centers", "center_updates"} <= set(state)
    fresh = build("i2c")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.centers, method.centers) and fresh.centers.any()
    assert fresh.center_updates.tolist() == method.center_updates.tolist() == [2, 2, 1, 1]


def test_parameter_groups_multipliers():
    from wsolbench.methods.base import FINE_TUNE_LR_MULTS

    groups = {g["name"]: g for g in build("acol", **FINE_TUNE_LR_MULTS).param_groups(0.01, 5e-4)}
    assert {k: round(g["lr"], 6) for k, g in groups.items()} == {
        "backbone.weight": 0.01, "backbone.bias": 0.02, "head.weight": 0.1, "head.bias": 0.2
    }
    # built without the fine-tuning rule, every group trains at the base rate
    assert {round(g["lr"], 6) for g in build("acol").param_groups(0.01, 5e-4)} == {0.01}


def test_i2c_needs_class_paired_batches():
    assert build("i2c").batch_shape == "class-paired" and build("acol").batch_shape == "any"


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"seed_order": "spiral"}, "seed_order"),
        ({"delta": 1.0}, "delta"),
        ({"k": 0}, "k must"),
        ({"lamda1": 0.1}, "no setting lamda1"),
        ({"distance": "manhattan"}, "distance"),
    ],
)
def test_bad_settings_are_user_errors(overrides, words):
    with pytest.raises(WsolbenchError, match=words):
        build("i2c", **overrides)


def test_baseline_maps():
    classes = torch.zeros(2, 1, dtype=torch.long)
    full = build("full-image").maps(None, classes)
    assert full.min() == 0 and (full == 0).sum() == 2 and full[:, :, 0, 0].eq(0).all()
    centre = build("center-box").maps(None, classes)[0, 0]
    peak = (centre == centre.max()).nonzero().tolist()
    assert sorted(peak) == [[13, 13], [13, 14], [14, 13], [14, 14]]  # the four centre pixels
    assert torch.allclose(centre, centre.flip(0)) and torch.allclose(centre, centre.t())


def test_i2c_on_a_timm_backbone():
    from wsolbench.backbones import build_backbone  # an import error is a failure, not a skip

    torch.manual_seed(0)
    backbone = build_backbone("test_resnet")
    method = build_method("i2c", backbone, 3, head_width=8).train()
    method.set_epoch(1)
    x = torch.randn(4, 3, 64, 64)  # a 2 x 2 feature grid (reduction 32)
    out = method(x, torch.tensor([0, 0, 2, 2]))
    assert out.cams.shape[:2] == (4, 3) and out.cams.shape[-2:] == out.features.shape[-2:]
    sum(out.losses.values()).backward()
    assert method.center_updates.tolist() == [1, 0, 1]


def test_constant_maps_give_no_seeds_and_finite_zero_losses():
    method = build("i2c").train()
    method.set_epoch(1)
    nn.init.zeros_(method.head[-1].weight)  # every class map is its bias: constant
    out = method(images(12), LABELS)
    assert out.losses["sc"].item() == 0.0 and out.losses["gc"].item() == 0.0
    sum(out.losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in method.parameters())
    assert not method.center_updates.any() and not method.centers.any()


def test_baseline_boxes_under_the_protocol_box_rule():
    """Through the protocols' resize, normalisation and box extraction: whole image, and shrinking centred boxes."""
    import numpy as np

    from wsolbench.protocols.level_boxes import threshold_boxes
    from wsolbench.protocols.scoremaps import normalize_minmax, resize_original, to_uint8

    thresholds = np.array([0.0, 0.2, 0.5, 0.8, 0.95])
    classes = torch.zeros(1, 1, dtype=torch.long)

    def boxes(name):
        raw = build(name).maps(None, classes)[0, 0].numpy()
        levels = threshold_boxes(to_uint8(normalize_minmax(resize_original(raw, 60, 90))), thresholds, False)
        return [levels.at_threshold(j).tolist() for j in range(len(thresholds))]

    assert boxes("full-image") == [[[0, 0, 89, 59]]] * len(thresholds)
    centre = [b[0] for b in boxes("center-box")]
    widths = [x1 - x0 for x0, _, x1, _ in centre]
    assert widths == sorted(widths, reverse=True) and widths[-1] < 30 < widths[1]
    assert all(abs((x0 + x1) / 2 - 44.5) <= 1 and abs((y0 + y1) / 2 - 29.5) <= 1 for x0, y0, x1, y1 in centre)
