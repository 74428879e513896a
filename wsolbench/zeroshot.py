"""Pretrained classifiers as they are (zero-shot WSOL): a checkpoint's own classifier head, no training.

``wsolbench run -m cam -b NAME --pretrained W.pth --epochs 0`` builds timm's full ``NAME`` (not the
feature extractor a trained run uses), loads ``W.pth`` into it strictly, classifier included, and
hands the method the model's pre-pool feature map (``forward_features``: for EfficientNet-Lite0 the
1280-channel map after conv_head) with the checkpoint's classifier as CAM's. The head must be global
average pooling + one linear layer, so that CAM's maps and the logits agree; this is checked on a
probe image. Methods of the CAM family (cam, has, adl, cutmix: CAM at test) take it; for any other
method the error says so. The checkpoint's classes must be the dataset's, one to one: the count is
checked here, the order is the reader's (ILSVRC: sorted WNIDs, ImageNet-1k's order).

A vision transformer (``backbones/vit.py``) is built at the run's input size (timm resamples the file's
position embeddings) and takes the same rule: its head must be the mean of the patch tokens + one linear
layer (``global_pool='avg'`` without a norm after the pooling, e.g. vit_base_patch16_gap_224), so that the
head applied at each patch token is the CAM. A head that reads the class token (DeiT, most ViTs) or
normalises the pooled tokens has no such map: that is an error, and such checkpoints are scored by
attention rollout or a post-hoc explainer instead (docs/transformers.md).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wsolbench.errors import WsolbenchError


class PretrainedFeatures(nn.Module):
    """A full timm classifier cut before its pooling: images -> B x num_features x h x w."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.out_channels: int = model.num_features
        self.reduction: int = model.feature_info[-1]["reduction"] if getattr(model, "feature_info", None) else 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _classifier_key(model: nn.Module, name: str) -> str:
    classifier = model.pretrained_cfg.get("classifier")
    if not isinstance(classifier, str) or not isinstance(model.get_submodule(classifier), nn.Linear):
        raise WsolbenchError(f"--pretrained with --epochs 0: timm's {name} has no single linear classifier "
                             f"({classifier}); zero-shot CAM needs one (try --explainer on a trained run)")
    return classifier


def build_pretrained_classifier(method_entry, cfg, num_classes: int, settings: dict,
                                input_size: int | None = None) -> nn.Module:
    """The method with the checkpoint's backbone and classifier (see the module docstring)."""
    from wsolbench.backbones.timm_features import check_timm_name, create_timm_model
    from wsolbench.backbones.weights import read_state_dict
    from wsolbench.methods.cam import CAM

    from wsolbench.methods.vit_rollout import ViTRollout

    if not issubclass(method_entry.obj, (CAM, ViTRollout)):
        raise WsolbenchError(f"--pretrained with --epochs 0 scores the checkpoint's own classifier head, which "
                             f"only CAM-family methods (cam, has, adl, cutmix; a ViT: vit-cam, vit-rollout) use; "
                             f"{cfg.method} would get a random head")
    name = cfg.backbone.removeprefix("timm/")
    check_timm_name(name)
    path = Path(cfg.pretrained)
    state = read_state_dict(path)
    with torch.device("meta"):
        key = _classifier_key(create_timm_model(name), name)
    weight = state.get(f"{key}.weight")
    if weight is None:
        raise WsolbenchError(f"{path}: no {key}.weight, so no classifier head for zero-shot scoring "
                             f"(convert the file with its head: see docs/zero-shot.md)")
    if weight.shape[0] != num_classes:
        raise WsolbenchError(f"{path}: the checkpoint's head has {weight.shape[0]} classes but dataset {cfg.dataset} "
                             f"has {num_classes}; zero-shot scoring needs the same classes")
    from wsolbench.backbones.vit import routes_to_tokens

    if routes_to_tokens(name):
        return _token_classifier(method_entry, name, path, state, key, num_classes, settings, cfg, input_size)
    kwargs = {"output_stride": cfg.output_stride} if cfg.output_stride else {}
    model = create_timm_model(name, num_classes=num_classes, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WsolbenchError(f"{path}: does not fit timm's {name} ({str(exc).splitlines()[0]})") from None
    model.eval()
    features = PretrainedFeatures(model)
    with torch.no_grad():  # the head must be global average pooling + the linear layer
        probe = features(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
        head = model.get_submodule(key)
        try:
            same = torch.allclose(model.forward_head(probe), head(probe.mean(dim=(2, 3))), atol=1e-4, rtol=1e-4)
        except RuntimeError:  # e.g. a conv or MLP between the pooling and the classifier (MobileNetV3, VGG)
            same = False
        if not same:
            raise WsolbenchError(f"timm's {name}: its head is not global average pooling + linear; "
                                 "zero-shot CAM needs that (ResNets and EfficientNets have it)")
    method = method_entry.build(features, num_classes, **settings)
    method.classifier.load_state_dict(head.state_dict())
    return method


def _token_classifier(method_entry, name, path, state, key, num_classes, settings, cfg, input_size) -> nn.Module:
    """A vision transformer's checkpoint with its own head as the method's classifier (see the module docstring):
    vit-rollout takes a head on the class token, the CAM family one on the mean of the patch tokens."""
    from wsolbench.backbones.vit import build_token_backbone
    from wsolbench.methods.vit_rollout import ViTRollout

    backbone = build_token_backbone(name, path, cfg.output_stride, input_size, num_classes=num_classes).eval()
    model, head = backbone.model, backbone.model.get_submodule(key)
    on_class_token = issubclass(method_entry.obj, ViTRollout)
    pool = getattr(model, "global_pool", None)
    if on_class_token and pool != "token":
        raise WsolbenchError(f"timm's {name} classifies from its pooled patch tokens (global_pool={pool!r}), not its "
                             "class token; vit-rollout needs a class-token head (use -m vit-cam)")
    if not on_class_token and pool != "avg":
        raise WsolbenchError(f"timm's {name} classifies from its class token (global_pool={pool!r}), so "
                             "its head gives no class activation map; zero-shot CAM needs a head on the mean of the "
                             "patch tokens (score the checkpoint's class-token head with -m vit-rollout: docs/transformers.md)")
    head.load_state_dict({"weight": state[f"{key}.weight"], "bias": state[f"{key}.bias"]})  # timm drops it: C != 1000
    size = backbone.grid[0] * backbone.reduction
    with torch.no_grad():  # the head must be one linear layer on what the method feeds its classifier
        probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        fed = backbone.forward_tokens(probe).cls if on_class_token else backbone(probe).mean(dim=(2, 3))
        same = torch.allclose(model(backbone.model_input(probe)), head(fed), atol=1e-4, rtol=1e-4)
    if not same:
        raise WsolbenchError(f"timm's {name}: its head is not one linear layer on the "
                             f"{'class token' if on_class_token else 'mean of the patch tokens'} (a norm after the "
                             f"pooling, a distilled head?); {method_entry.name} needs that")
    method = method_entry.build(backbone, num_classes, **settings)
    method.classifier.load_state_dict(head.state_dict())
    model.reset_classifier(0)  # the classifier lives in the method; the backbone hands out the map only
    return method
