"""Post-hoc explainers: wsolbench's maps are the grad-cam package's own; bad names are one line; a grid axis."""
import json

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAMPlusPlus, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from wsolbench.backbones import build_backbone
from wsolbench.errors import WsolbenchError
from wsolbench.explain import EXPLAINERS, Explained
from wsolbench.methods.base import build_method


class Logits(torch.nn.Module):
    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, x):
        return self.method(x).logits


@pytest.mark.parametrize("name, cls", [("gradcampp", GradCAMPlusPlus), ("scorecam", ScoreCAM)])
def test_map_equals_the_package_output_on_a_fixed_input(name, cls):
    torch.manual_seed(0)
    method = build_method("cam", build_backbone("test_resnet"), 5).eval()
    images = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([[1, 4], [0, 0], [3, 2]])
    explained = Explained(method, name, batch_size=7)
    with torch.no_grad():  # as the evaluation loop calls it
        out = explained(images)
    maps = explained.maps(out, classes)
    assert maps.shape == (3, 2, 32, 32)
    assert torch.equal(out.logits, method(images).logits)  # the classifier is the run's own
    for k in range(2):
        expected = cls(model=Logits(method), target_layers=[method.backbone])(
            input_tensor=images, targets=[ClassifierOutputTarget(int(c)) for c in classes[:, k]])
        np.testing.assert_allclose(maps[:, k].numpy(), expected, rtol=1e-5, atol=1e-6)
    layer3 = Explained(method, "gradcampp", layer="backbone.features.layer3")
    with torch.no_grad():
        out = layer3(images)
    assert not torch.equal(layer3.maps(out, classes[:, :1]), maps[:, :1])  # another layer, another map


def test_unknown_explainer_and_missing_layer_are_one_line():
    method = build_method("cam", build_backbone("test_resnet"), 5)
    with pytest.raises(WsolbenchError, match="unknown explainer") as err:
        Explained(method, "gradcam++")
    assert "\n" not in str(err.value) and "gradcampp" in str(err.value)
    with pytest.raises(WsolbenchError, match="--explainer-layer backbone.nope: no such module") as err:
        Explained(method, "gradcam", layer="backbone.nope")
    assert "\n" not in str(err.value)


def test_explainer_is_a_grid_axis_with_labelled_leaderboard_rows(tmp_path, run_cli):
    from wsolbench.data.synthetic import generate
    from wsolbench.leaderboard import collect_runs

    data = generate(tmp_path / "synth", classes=4, per_class=6, test_per_class=2, size=32)
    common = ["-b", "test_resnet", "-d", "synthetic", "--data-root", data, "--epochs", "1", "--batch-size", "8",
              "--input-size", "32", "--out", tmp_path / "runs", "--device", "cpu", "--no-progress"]
    code, out, err = run_cli("run", "-m", "cam", "-m", "has", *common, "--explainer", "gradcam", "--explainer", "eigencam",
                             "--tencrop")
    assert code == 0, out + err
    df, problems = collect_runs(tmp_path / "runs")
    assert not problems
    maps = {f"{m}{e}" for m in ("cam", "has") for e in ("", " + gradcam", " + eigencam")}
    assert set(df[df["protocol"] == "cub"]["method"]) == maps | {f"{m} + ten-crop" for m in maps}
    run_dir = next((tmp_path / "runs" / "synthetic").glob("cam__*"))
    metrics = json.loads((run_dir / "eval-cub-gradcam.json").read_text())
    assert metrics["explainer"] == "gradcam" and metrics["explainer_layer"] == "backbone"
    assert metrics["top1_cls"] == json.loads((run_dir / "metrics.json").read_text())["top1_cls"]

    code, out, err = run_cli("eval", run_dir, "--explainer", "nope", "--device", "cpu")
    assert code == 2 and "unknown explainer" in out + err and "Traceback" not in out + err
    code, out, err = run_cli("eval", run_dir, "--explainer", "gradcam", "--explainer-layer", "head.x", "--device", "cpu")
    assert code == 2 and "no such module" in out + err


def test_every_listed_explainer_exists_in_the_package():
    import pytorch_grad_cam

    assert all(hasattr(pytorch_grad_cam, cls) for cls in EXPLAINERS.values())


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "eigencam"])
@pytest.mark.parametrize("method_name, layer", [("cam", None), ("acol", None), ("cam", "backbone.features.layer3")])
def test_batched_maps_equal_the_package_one_pair_at_a_time(name, method_name, layer):
    """One forward pass and a backward per rank through the layers after the target give the package's maps."""
    torch.manual_seed(0)
    method = build_method(method_name, build_backbone("test_resnet"), 5).eval()
    images = torch.randn(4, 3, 32, 32)
    classes = torch.tensor([[1, 4, 0], [0, 0, 2], [3, 2, 3], [4, 1, 2]])  # repeats: a pair is computed once
    fast = Explained(method, name, layer=layer)
    assert fast.batched
    with torch.no_grad():  # as the evaluation loop calls it
        out = fast(images)
    maps = fast.maps(out, classes)
    assert torch.equal(out.logits, method(images).logits)
    assert all(p.requires_grad for p in method.parameters())  # frozen for the pass only
    reference = Explained(method, name, layer=layer, batched=False)
    for i in range(len(images)):  # the package, one (image, class) pair per call
        for k in range(classes.shape[1]):
            with torch.no_grad():
                one = reference(images[i:i + 1])
            expected = reference.maps(one, classes[i:i + 1, k:k + 1])[0, 0]
            np.testing.assert_allclose(maps[i, k].numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_token_layers_are_read_through_the_reshape_transform():
    """A transformer's token layer: the batched maps equal the package's with its reshape transform."""
    torch.manual_seed(0)
    method = build_method("vit-cam", build_backbone("deit_tiny_patch16_224", input_size=32), 5).eval()
    images = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([[1, 2], [0, 0], [3, 4]])
    for layer in ("backbone.model.blocks.1.norm1", "backbone.model.norm"):
        fast, slow = Explained(method, "gradcam", layer=layer), Explained(method, "gradcam", layer=layer, batched=False)
        with torch.no_grad():
            a, b = fast.maps(fast(images), classes), slow.maps(slow(images), classes)
        assert a.shape == (3, 2, 32, 32) and a.std() > 0.1
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the final norm's patch tokens are the backbone's map: the same explanation
        default = Explained(method, "gradcam")
        torch.testing.assert_close(default.maps(default(images), classes), a)


def test_rollout_explains_with_the_methods_own_attention():
    from wsolbench.attention_rollout import rollout_map
    from wsolbench.explain import make_explainer

    torch.manual_seed(0)
    method = build_method("vit-cam", build_backbone("deit_tiny_patch16_224", input_size=32), 5).eval()
    images = torch.randn(2, 3, 32, 32)
    rollout = make_explainer(method, "rollout")
    with torch.no_grad():
        out = rollout(images)
        maps = rollout.maps(out, torch.tensor([[0, 3], [4, 1]]))
        expected = rollout_map(method.backbone.forward_tokens(images).attentions, 1, (2, 2))
        torch.testing.assert_close(out.logits, method(images).logits)  # explicit attention: equal to float error
    assert maps.shape == (2, 2, 2, 2) and torch.equal(maps[:, 0], maps[:, 1])  # one map whatever the class
    torch.testing.assert_close(maps[:, 0], expected)
    assert "forward_tokens" not in vars(method.backbone) and "forward" not in vars(method.backbone)  # put back
    with pytest.raises(WsolbenchError, match="reads a vision transformer's attention") as err:
        make_explainer(build_method("cam", build_backbone("test_resnet"), 5), "rollout")
    assert "\n" not in str(err.value)
    with pytest.raises(WsolbenchError, match="--explainer-layer does not apply"):
        make_explainer(method, "rollout", "backbone.model.norm")
