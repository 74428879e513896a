"""Post-hoc explainers on any run's classifier: the Grad-CAM family of the ``grad-cam`` package.

``Explained(method, "gradcampp")`` wraps a trained method for evaluation: its logits are the
method's own, its map of class c is the package's map for the target ``ClassifierOutputTarget(c)``
at the target layer (default: the backbone, i.e. its last feature stage; ``layer`` names any module
of the method, e.g. ``backbone.features.layer3``). Maps are the package's output as it is: ReLU'd,
min-max scaled per image and resized to the network input. Explainers that need many forward
passes (Score-CAM, Ablation-CAM) run them in batches of ``batch_size``.

The explainers that read only the target layer's activations and gradients (``BATCHED``: Grad-CAM, Grad-CAM++,
XGrad-CAM, LayerCAM, HiRes-CAM, ...) run one forward pass per batch, whose graph starts at the target layer
(the layer's output is cut loose as a leaf, every parameter is frozen), and one backward pass through the
part after the layer per rank of the (image, class) pairs the evaluation asks for (true class + top 5: at
most 6); the package's own code turns those activations and gradients into maps. The package's way, a
forward and a backward through the whole network per pair, gives the same maps at several times the cost
and keeps every layer's activations for the backward (benchmarks/bench_eval_scale.py).

On a vision transformer (``backbones/vit.py``) a target layer that hands out tokens (B x N x D, e.g.
``backbone.model.blocks.11.norm1``) is read through the package's reshape transform: the prefix tokens dropped,
the patch tokens as a D x h x w map. ``rollout`` is attention rollout (``wsolbench/attention_rollout.py``):
no gradient, no layer, one class-agnostic map per image.

    wsolbench eval RUN --explainer gradcampp            # writes RUN/eval-PROTOCOL-gradcampp.json
    wsolbench run -m cam --explainer gradcam --explainer scorecam ...   # explainers as a grid axis
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torch import nn

from wsolbench.errors import WsolbenchError

# name -> class name in pytorch_grad_cam (imported on use: the package pulls in OpenCV)
EXPLAINERS = {
    "gradcam": "GradCAM", "gradcampp": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "layercam": "LayerCAM",
    "eigencam": "EigenCAM", "eigengradcam": "EigenGradCAM", "hirescam": "HiResCAM", "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM", "fullgrad": "FullGrad", "gradcamelementwise": "GradCAMElementWise",
}
OWN_EXPLAINERS = ("rollout",)  # wsolbench's own, not the package's
DEFAULT_LAYER = "backbone"  # a method may name another as ``explain_layer`` (a head that does not read the map)
# explainers whose map is a function of the target layer's activations and gradients only
BATCHED = {"gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "gradcamelementwise", "eigencam", "eigengradcam"}


def explainer_class(name: str):
    """The package's class of ``name`` (None for wsolbench's own); one line for an unknown name."""
    if name in OWN_EXPLAINERS:
        return None
    if name not in EXPLAINERS:
        raise WsolbenchError(f"--explainer {name}: unknown explainer (known: {', '.join([*EXPLAINERS, *OWN_EXPLAINERS])})")
    try:
        import pytorch_grad_cam
    except ImportError:
        raise WsolbenchError("--explainer needs the grad-cam package: pip install 'wsolbench[explain]'") from None
    return getattr(pytorch_grad_cam, EXPLAINERS[name])


def make_explainer(method: nn.Module, name: str, layer: str | None = None) -> nn.Module:
    """The method wrapped so that its maps come from explainer ``name`` (evaluation only)."""
    return Rollout(method, layer) if name == "rollout" else Explained(method, name, layer)


def _token_reshape(method: nn.Module):
    """The reshape transform of a transformer backbone's token layers (None for a CNN): B x N x D -> B x D x h x w,
    maps (4-d) as they are."""
    from wsolbench.backbones.vit import is_token_backbone, tokens_to_map

    backbone = getattr(method, "backbone", None)
    if backbone is None or not is_token_backbone(backbone):
        return None
    prefix, grid = backbone.num_prefix_tokens, backbone.grid
    # a copy, not a view: the package detaches what it holds in place when it lets go of it
    return lambda t: tokens_to_map(t, prefix, grid).contiguous() if t.ndim == 3 else t


class _Logits(nn.Module):
    """The method as the package wants it: images -> logits."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, images):
        return self.method(images).logits


class Explained(nn.Module):
    """A trained method whose maps come from an explainer (evaluation only)."""

    def __init__(self, method: nn.Module, explainer: str, layer: str | None = None, batch_size: int = 64,
                 batched: bool | None = None):
        super().__init__()
        self.cam_class = explainer_class(explainer)
        if not getattr(method, "needs_backbone", True):
            raise WsolbenchError(f"--explainer {explainer}: {type(method).__name__} has no classifier to explain")
        modules = dict(method.named_modules())
        self.layer_name = layer or getattr(method, "explain_layer", None) or DEFAULT_LAYER
        if self.layer_name not in modules or self.layer_name == "":
            examples = ", ".join(n for n in list(modules)[1:] if n.count(".") <= 2)[:300]
            raise WsolbenchError(f"--explainer-layer {self.layer_name}: no such module in the method (e.g. {examples})")
        self.method, self.explainer, self.batch_size = method, explainer, batch_size
        self.layer = modules[self.layer_name]
        # batched=False forces the package's one-call-per-rank way (the reference the tests compare with)
        self.batched = explainer in BATCHED if batched is None else batched and explainer in BATCHED
        if explainer == "fullgrad":
            self.layer_name = "(every bias: FullGrad ignores the layer)"
        self.model = _Logits(method)
        self.reshape = _token_reshape(method)

    @property
    def wrapped(self) -> nn.Module:
        """The trained method itself (its logits, without the explainer's work)."""
        return self.method

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        if not self.batched:
            out = self.method(images)
            out.images, out.cache = images, {}  # maps() explains these images; (image, class) -> map
            return out
        captured = []

        def cut(module, inputs, output):  # the graph starts at the layer's output: only the part after it is kept
            if captured:
                raise WsolbenchError(f"--explainer-layer {self.layer_name}: runs more than once per forward pass")
            captured.append(output.detach().requires_grad_(True))
            return captured[0]

        frozen = [p for p in self.method.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        handle = self.layer.register_forward_hook(cut)
        try:
            with torch.enable_grad():
                out = self.method(images)
        finally:
            handle.remove()
            for p in frozen:
                p.requires_grad_(True)
        if not captured or not isinstance(captured[0], torch.Tensor):
            raise WsolbenchError(f"--explainer-layer {self.layer_name}: not run by the forward pass, or not a tensor")
        out.images, out.cache, out.layer_output = images, {}, captured[0]
        return out

    def _package_cam(self):
        kwargs = {} if self.reshape is None else {"reshape_transform": self.reshape}
        with contextlib.redirect_stdout(io.StringIO()):  # FullGrad prints that it ignores the layer, every time
            return self.cam_class(model=self.model, target_layers=[self.layer], **kwargs)

    def explain(self, images: torch.Tensor, classes) -> np.ndarray:
        """The package's maps (n x H x W) of ``classes[i]`` for ``images[i]``: its forward and backward passes."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cam = self._package_cam()
        cam.batch_size = self.batch_size  # Score-CAM, Ablation-CAM: forward passes per batch
        try:
            with torch.enable_grad():
                return cam(input_tensor=images, targets=[ClassifierOutputTarget(int(c)) for c in classes])
        finally:
            cam.activations_and_grads.release()

    def explain_batched(self, out, rows: list[int], classes: list[int]) -> np.ndarray:
        """The same maps from the forward pass already run: the gradients of the logits of ``classes`` at the
        layer's output (one backward pass through the layers after it), turned into maps by the package's code."""
        leaf = out.layer_output
        grads = None
        if self.explainer != "eigencam":  # the one map of activations alone
            picked = torch.zeros_like(out.logits)
            picked[rows, classes] = 1.0
            with torch.enable_grad():
                (grads,) = torch.autograd.grad(out.logits, leaf, grad_outputs=picked, retain_graph=True, allow_unused=True)
            if grads is None:
                raise WsolbenchError(f"--explainer-layer {self.layer_name}: the logits do not depend on it")
            grads = grads[rows].detach().float().cpu()
        acts = leaf[rows].detach().float().cpu()
        if self.reshape is not None:  # a token layer, as the package's hooks would pass it on
            acts, grads = self.reshape(acts), grads if grads is None else self.reshape(grads)
        cam = self._package_cam()
        cam.activations_and_grads.release()  # no hooks: the package's code only turns arrays into maps
        cam.activations_and_grads.activations = [acts]
        cam.activations_and_grads.gradients = [] if grads is None else [grads]
        return cam.aggregate_multi_layers(cam.compute_cam_per_layer(out.images[rows], None, False))

    def maps(self, out, classes: torch.Tensor) -> torch.Tensor:
        """B x k x H x W maps; an (image, class) pair asked again (true class among the top 5) is not recomputed."""
        pairs = [(i, int(c)) for i, row in enumerate(classes.tolist()) for c in row]
        todo = sorted({p for p in pairs if p not in out.cache})
        # one explainer call per rank of the pair within its image, so each call sees each image once
        seen: dict[int, int] = {}
        rounds: list[list] = []
        for i, c in todo:
            r = seen.get(i, 0)
            seen[i] = r + 1
            rounds.extend([] for _ in range(r + 1 - len(rounds)))
            rounds[r].append((i, c))
        for batch in rounds:
            rows, cls = [i for i, _ in batch], [c for _, c in batch]
            maps = self.explain_batched(out, rows, cls) if self.batched else self.explain(out.images[rows], cls)
            out.cache.update({p: torch.from_numpy(np.asarray(m, dtype=np.float32)) for p, m in zip(batch, maps)})
        b, k = classes.shape
        return torch.stack([out.cache[p] for p in pairs]).reshape(b, k, *out.cache[pairs[0]].shape)


class Rollout(nn.Module):
    """A trained transformer method whose maps are its attention rollout: the class token's row over the patch
    tokens, the same map for every class, from the attention of the method's own forward pass."""

    def __init__(self, method: nn.Module, layer: str | None = None):
        super().__init__()
        from wsolbench.backbones.vit import is_token_backbone

        backbone = getattr(method, "backbone", None)
        if backbone is None or not is_token_backbone(backbone):
            raise WsolbenchError(f"--explainer rollout reads a vision transformer's attention; {type(method).__name__}'s "
                                 f"backbone ({type(backbone).__name__}) has none")
        if layer:
            raise WsolbenchError("--explainer rollout reads every block's attention; --explainer-layer does not apply")
        self.method, self.explainer, self.layer_name = method, "rollout", "(every block's attention)"

    @property
    def wrapped(self) -> nn.Module:
        return self.method

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        from wsolbench.attention_rollout import rollout_map

        backbone, seen = self.method.backbone, []
        tokens_of = backbone.forward_tokens

        def recorded(x):  # the method's own pass through the backbone, with its attention kept
            seen.append(tokens_of(x))
            return seen[-1]

        backbone.forward_tokens, backbone.forward = recorded, lambda x: recorded(x).map
        try:
            out = self.method(images)
        finally:
            del backbone.forward_tokens, backbone.forward
        if len(seen) != 1:
            raise WsolbenchError(f"--explainer rollout: {type(self.method).__name__} ran its backbone {len(seen)} times")
        out.rollout = rollout_map(seen[0].attentions, backbone.num_prefix_tokens, backbone.grid).float()
        return out

    def maps(self, out, classes: torch.Tensor) -> torch.Tensor:
        return out.rollout[:, None].expand(-1, classes.shape[1], -1, -1)

