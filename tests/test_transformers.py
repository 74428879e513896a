"""Vision transformer backbones, attention rollout, TS-CAM and vit-cam, on tiny random-init timm ViTs."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import timm
import torch
from timm.models import generate_default_cfgs, register_model
from timm.models.vision_transformer import _cfg, _create_vision_transformer

from wsolbench.attention_rollout import attention_rollout, rollout_map
from wsolbench.backbones import build_backbone, is_token_backbone, is_transformer_name
from wsolbench.backbones.vit import TokenBackbone, _attention, tokens_to_map
from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import build_method
from wsolbench.registry import METHODS, list_methods

# a tiny ViT whose head is the mean of the patch tokens + linear (no class token): the zero-shot CAM case
default_cfgs = generate_default_cfgs({"test_vit_gap_wsolbench": _cfg()})


@register_model
def test_vit_gap_wsolbench(pretrained=False, **kwargs):
    args = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, class_token=False,
                global_pool="avg", fc_norm=False)
    return _create_vision_transformer("test_vit_gap_wsolbench", pretrained=pretrained, **dict(args, **kwargs))


test_vit_gap_wsolbench.__test__ = False  # a model, not a test


def images(n=2, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def one_line(excinfo, *parts):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("name, prefix", [("test_vit", 1), ("deit_tiny_distilled_patch16_224", 2)])
def test_map_is_the_patch_tokens_in_raster_order(name, prefix):
    torch.manual_seed(0)
    backbone = build_backbone(name, input_size=48).eval()  # a 3 x 3 grid
    assert is_token_backbone(backbone) and is_transformer_name(name)
    assert (backbone.num_prefix_tokens, backbone.grid, backbone.reduction) == (prefix, (3, 3), 16)
    x = images(size=48)
    with torch.no_grad():
        tokens = backbone.model.forward_features(backbone.model_input(x))  # B x (prefix + 9) x D, final-normed
        fmap = backbone(x)
    assert fmap.shape == (2, backbone.out_channels, 3, 3)
    for i in range(3):
        for j in range(3):
            assert torch.equal(fmap[:, :, i, j], tokens[:, prefix + 3 * i + j])
    grid = torch.arange(2 * 7 * 5, dtype=torch.float32).view(2, 7, 5)  # 1 prefix + a 2 x 3 grid, D = 5
    assert torch.equal(tokens_to_map(grid, 1, (2, 3))[1, :, 1, 2], grid[1, 1 + 3 + 2])


def test_attention_weights_reproduce_every_block_and_leave_nothing_behind():
    torch.manual_seed(0)
    backbone = build_backbone("test_vit", input_size=32).eval()
    model, x = backbone.model, images()
    with torch.no_grad():
        t = backbone.forward_tokens(x)
        assert torch.allclose(t.map, backbone(x), atol=1e-5)  # the same forward as timm's fused attention
        assert torch.allclose(t.cls, model.forward_features(backbone.model_input(x))[:, 0], atol=1e-5)
        h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(backbone.model_input(x)))))
        for block, weights in zip(model.blocks, t.attentions):  # block by block: explicit weights = fused output
            attn, record = block.attn, []
            inputs = block.norm1(h)
            assert torch.allclose(_attention(attn, inputs, record=record), attn(inputs), atol=1e-5)
            assert torch.allclose(record[0], weights, atol=1e-6)
            assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
            h = block(h)
    assert len(t.attentions) == len(model.blocks) and t.attentions[0].shape == (2, model.blocks[0].attn.num_heads, 5, 5)
    assert all("forward" not in vars(b.attn) for b in model.blocks)  # the explicit path is gone again


def test_attention_rollout_is_the_product_over_blocks():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", depth=2, img_size=32, num_classes=0)
    backbone = TokenBackbone(model, "test_vit").eval()
    with torch.no_grad():
        a1, a2 = backbone.forward_tokens(images()).attentions
    eye = torch.eye(5)
    r1 = (a1.mean(1) + eye) / (a1.mean(1) + eye).sum(-1, keepdim=True)
    r2 = (a2.mean(1) + eye) / (a2.mean(1) + eye).sum(-1, keepdim=True)
    assert torch.allclose(attention_rollout([a1, a2]), r2 @ r1, atol=1e-6)
    assert torch.allclose(rollout_map([a1, a2], 1, (2, 2)), (r2 @ r1)[:, 0, 1:].reshape(2, 2, 2), atol=1e-6)
    kept = attention_rollout([a1, a2], discard_ratio=0.5, head_fusion="max")
    assert kept.shape == (2, 5, 5) and torch.allclose(kept.sum(-1), torch.ones(()), atol=1e-5)
    with pytest.raises(WsolbenchError, match="head_fusion"):
        attention_rollout([a1], head_fusion="median")


def test_ts_cam_map_is_the_class_token_attention_times_the_semantic_map():
    torch.manual_seed(0)
    method = build_method("ts-cam", build_backbone("test_vit", input_size=48), 4).eval()
    x = images(size=48, seed=3)
    with torch.no_grad():
        out = method(x)
        t = method.backbone.forward_tokens(x)
        semantic = method.head(t.map)  # S: B x C x 3 x 3
        blocks = [a.mean(dim=1) for a in t.attentions]  # each block's weights averaged over the heads
        agnostic = sum(a[:, 0, 1:] for a in blocks) / len(blocks)  # class token to the 9 patches, mean over blocks
        expected = agnostic.reshape(2, 1, 3, 3) * semantic
    assert torch.allclose(out.logits, semantic.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(out.cams, expected, atol=1e-6)
    classes = torch.tensor([[2, 0], [1, 3]])
    assert torch.allclose(method.maps(out, classes)[1, 0], expected[1, 1], atol=1e-6)

    method.train()  # training: the cross-entropy of the semantic maps' average, no attention computed
    out = method(x, torch.tensor([0, 1]))
    assert set(out.losses) == {"cls"}
    out.losses["cls"].backward()
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list_methods())
def test_every_method_on_a_transformer_works_or_refuses_in_one_line(name):
    torch.manual_seed(0)
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).obj.Config)}
    settings = {"head_width": 8} if "head_width" in fields else {}
    backbone = build_backbone("test_vit", input_size=32)
    if name in ("adl", "spg"):  # ADL's layers go between CNN stages, SPG's B1 branch reads one as a map
        with pytest.raises(WsolbenchError) as excinfo:
            build_method(name, backbone, 4, **settings)
        one_line(excinfo, name, "test_vit", "vision transformer")
        return
    method = build_method(name, backbone, 4, **settings)
    method.set_epoch(10)
    x, labels = images(4), torch.tensor([0, 0, 1, 1])
    if method.needs_backbone:
        method.train()
        out = method(x, labels)
        sum(out.losses.values()).backward()
        assert out.features.shape == (4, 64, 2, 2)
    with torch.no_grad():
        out = method.eval()(x)
    assert torch.isfinite(method.maps(out, labels[:, None])).all()


@pytest.mark.parametrize("name", ["ts-cam", "vit-cam"])
def test_transformer_methods_refuse_a_cnn(name):
    with pytest.raises(WsolbenchError) as excinfo:
        build_method(name, build_backbone("test_resnet"), 4)
    one_line(excinfo, name, "vision transformer", "TimmLastStage")


def test_backbone_errors_are_one_line():
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("test_vit", output_stride=8)
    one_line(excinfo, "test_vit", "output_stride=8", "patch size (16)")
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("deit_tiny_patch16_224", input_size=56)
    one_line(excinfo, "deit_tiny_patch16_224", "input size 56", "patch size 16", "48 or 64")
    with pytest.raises(WsolbenchError) as excinfo:
        build_backbone("vit_small_patch16_18x2_224", input_size=32)  # parallel blocks: no single attention
    one_line(excinfo, "vit_small_patch16_18x2_224", "no usable token layout")
    assert not is_transformer_name("resnet50") and not is_transformer_name("swin_tiny_patch4_window7_224")


def test_local_file_loads_with_position_embeddings_resampled(tmp_path, monkeypatch):
    from timm.layers import resample_abs_pos_embed

    for route in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file"):
        monkeypatch.setattr(f"timm.models._builder.{route}", lambda *a, **k: pytest.fail("tried to download"))
    torch.manual_seed(0)
    saved = {k: v + 0.5 for k, v in timm.create_model("test_vit").state_dict().items()}  # 160 px: a 10 x 10 grid
    path = tmp_path / "test_vit.pth"
    torch.save(saved, path)
    backbone = build_backbone("test_vit", pretrained=path, input_size=48)
    loaded = backbone.model.state_dict()
    assert loaded["pos_embed"].shape == (1, 1 + 9, 64)
    assert torch.allclose(loaded["pos_embed"], resample_abs_pos_embed(saved["pos_embed"], (3, 3), num_prefix_tokens=1))
    for key, tensor in loaded.items():
        if key != "pos_embed":
            assert torch.equal(tensor, saved[key]), key
    assert "head.weight" not in loaded  # the backbone has no head


def _zero_shot(name, tmp_path, method="cam", **kw):
    from wsolbench.zeroshot import build_pretrained_classifier

    torch.manual_seed(0)
    path = tmp_path / f"{name}.pth"
    torch.save(timm.create_model(name, num_classes=4, **kw).state_dict(), path)
    cfg = SimpleNamespace(backbone=name, pretrained=str(path), dataset="synthetic", method=method, output_stride=None)
    return build_pretrained_classifier(METHODS.get(method), cfg, 4, {}, input_size=32), path


def test_zero_shot_transformer_head_on_the_mean_of_patch_tokens_is_cam(tmp_path):
    method, path = _zero_shot("test_vit_gap_wsolbench", tmp_path)
    saved = torch.load(path)
    assert torch.equal(method.classifier.weight, saved["head.weight"])
    full = timm.create_model("test_vit_gap_wsolbench", num_classes=4)
    full.load_state_dict(saved)
    with torch.no_grad():
        out = method.eval()(images())
        # the checkpoint's own classifier, fed the normalisation its config names (0.5 / 0.5 here)
        assert torch.allclose(out.logits, full.eval()(method.backbone.model_input(images())), atol=1e-5)
        assert torch.allclose(out.cams.mean(dim=(2, 3)) + method.classifier.bias, out.logits, atol=1e-5)


def test_zero_shot_class_token_head_is_refused(tmp_path):
    with pytest.raises(WsolbenchError) as excinfo:
        _zero_shot("test_vit", tmp_path)
    one_line(excinfo, "test_vit", "class token", "-m vit-rollout")


def test_zero_shot_class_token_head_is_vit_rollouts_classifier(tmp_path):
    """The checkpoint's own class-token head classifies; the maps are the rollout of the same forward pass."""
    from wsolbench.attention_rollout import rollout_map

    method, path = _zero_shot("test_vit", tmp_path, method="vit-rollout")
    full = timm.create_model("test_vit", num_classes=4)
    full.load_state_dict(torch.load(path))
    with torch.no_grad():
        out = method.eval()(images())
        torch.testing.assert_close(out.logits, full.eval()(method.backbone.model_input(images())), rtol=1e-4, atol=1e-5)
        maps = method.maps(out, torch.tensor([[0, 3], [1, 2]]))
        expected = rollout_map(method.backbone.forward_tokens(images()).attentions, 1, (2, 2))
    assert maps.shape == (2, 2, 2, 2) and torch.allclose(maps[:, 1], expected)
    with pytest.raises(WsolbenchError) as excinfo:  # a head on the mean of the patches is vit-cam's, not this
        _zero_shot("test_vit_gap_wsolbench", tmp_path, method="vit-rollout")
    one_line(excinfo, "vit-rollout")


def test_run_trains_both_methods_scores_every_protocol_and_lands_on_the_board(tmp_path, run_cli):
    from wsolbench.data.synthetic import generate

    data = generate(tmp_path / "synth", classes=4, per_class=6, test_per_class=2, size=32)
    code, out, err = run_cli("run", "-m", "ts-cam", "-m", "vit-cam", "-b", "test_vit", "-d", "synthetic", "--data-root",
                             data, "--epochs", "1", "--batch-size", "8", "--input-size", "32", "--out", tmp_path / "runs",
                             "--device", "cpu", "--no-progress", "--leaderboard-out", tmp_path / "boards")
    assert code == 0, out + err
    runs = sorted((tmp_path / "runs" / "synthetic").iterdir())
    assert [r.name.split("__")[0] for r in runs] == ["ts-cam", "vit-cam"]
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["output_stride"] is None  # the dataset's CNN stride does not apply to a transformer
    assert (runs[0] / "eval-wsoleval.json").exists()
    code, out, err = run_cli("eval", runs[0], "--protocol", "ilsvrc", "--device", "cpu")
    assert code == 0, out + err
    assert "gt_known_loc" in json.loads((runs[0] / "eval-ilsvrc.json").read_text())
    own = json.loads((runs[0] / "metrics.json").read_text())
    for explainer in ("gradcam", "rollout"):  # post-hoc maps on the transformer run; its own classes
        code, out, err = run_cli("eval", runs[0], "--explainer", explainer, "--device", "cpu")
        assert code == 0, out + err
        explained = json.loads((runs[0] / f"eval-cub-{explainer}.json").read_text())
        assert explained["explainer"] == explainer and explained["top1_cls"] == pytest.approx(own["top1_cls"])
        assert 0 <= explained["gt_known_loc"] <= 100
    for board in ("synthetic-cub.md", "synthetic-wsoleval.md"):
        text = (tmp_path / "boards" / board).read_text()
        assert "| ts-cam " in text and "| vit-cam " in text

    code, out, _ = run_cli("list", "backbones", "deit_t*")
    assert code == 0 and "deit_tiny_patch16_224" in out and "vision transformer" in out
    code, out, _ = run_cli("list", "methods")
    assert "ts-cam" in out and "vit-cam" in out


def test_zero_shot_class_token_checkpoint_runs_and_is_explained(tmp_path, run_cli):
    """--epochs 0 on a class-token checkpoint: its own head, rollout maps, then Grad-CAM at the last block."""
    from wsolbench.data.synthetic import generate

    data = generate(tmp_path / "synth", classes=4, per_class=4, test_per_class=2, size=32)
    torch.manual_seed(0)
    torch.save(timm.create_model("test_vit", num_classes=4).state_dict(), tmp_path / "vit.pth")
    code, out, err = run_cli("run", "-m", "vit-rollout", "-b", "test_vit", "--pretrained", tmp_path / "vit.pth",
                             "--epochs", "0", "-d", "synthetic", "--data-root", data, "--input-size", "32", "--out",
                             tmp_path / "runs", "--device", "cpu", "--no-progress")
    assert code == 0, out + err
    (run_dir,) = (tmp_path / "runs" / "synthetic").iterdir()
    code, out, err = run_cli("eval", run_dir, "--explainer", "gradcam", "--device", "cpu")
    assert code == 0, out + err
    explained = json.loads((run_dir / "eval-cub-gradcam.json").read_text())
    assert explained["explainer_layer"] == f"backbone.model.blocks.{len(timm.create_model('test_vit').blocks) - 1}.norm1"
    assert explained["top1_cls"] == json.loads((run_dir / "metrics.json").read_text())["top1_cls"]

