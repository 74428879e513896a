"""The method contract: what every WSOL method plugin provides.

A method owns the head it puts on a backbone, its training losses (named terms), its
localization maps, its state (buffers such as I2C's class-center bank are in the state
dict), the batch shape it needs, its parameter groups, and a typed config with defaults.

Register a method (or a variant of one: the same class with other defaults):

    @register_method("cam", description="Class activation mapping")
    class CAM(Method): ...
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from wsolbench.registry import METHODS

register_method = METHODS.register


# The papers' fine-tuning rule (a new head on a pretrained backbone): head x10, biases x2 on top of their group.
# It belongs to the run, not to the method: the engine applies it when the backbone starts from --pretrained
# weights (``lr_multipliers``); from random init every part is new and every parameter trains at the base rate.
FINE_TUNE_LR_MULTS = dict(backbone_lr_mult=1.0, head_lr_mult=10.0, bias_lr_mult=2.0)
FROM_SCRATCH_LR_MULTS = dict(backbone_lr_mult=1.0, head_lr_mult=1.0, bias_lr_mult=1.0)


def lr_multipliers(pretrained: bool) -> dict:
    """The learning-rate multipliers of a run: the fine-tuning rule with pretrained weights, else all x1."""
    return dict(FINE_TUNE_LR_MULTS if pretrained else FROM_SCRATCH_LR_MULTS)


@dataclass
class MethodConfig:
    """Hyper-parameters shared by every method; methods subclass this with their own fields.

    The multipliers default to the base rate; ``wsolbench run`` sets them by ``lr_multipliers`` unless
    ``--set`` gives them."""

    backbone_lr_mult: float = 1.0
    head_lr_mult: float = 1.0
    bias_lr_mult: float = 1.0  # multiplies the group's rate: fine-tuning, backbone biases x2, head biases x20


@dataclass
class MethodOutput:
    logits: torch.Tensor | None  # B x C class scores (None for map-free baselines)
    cams: torch.Tensor | None  # B x C x h x w class maps (None for map-free baselines)
    features: torch.Tensor | None = None  # B x D x h x w backbone feature map
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # weighted terms; the loss is their sum
    logs: dict[str, float] = field(default_factory=dict)  # diagnostics for steps.jsonl's "diag" (not in the loss)


class Method(nn.Module):
    """Base class. Subclasses set ``Config`` and ``batch_shape`` and implement ``forward``."""

    Config: ClassVar[type] = MethodConfig
    batch_shape: ClassVar[str] = "any"  # "any" or "class-paired" (N classes x M images per batch)
    needs_backbone: ClassVar[bool] = True
    needs_tokens: ClassVar[bool] = False  # True: a vision transformer backbone only (wsolbench.backbones.vit)

    def __init__(self, backbone: nn.Module | None, num_classes: int, **config):
        super().__init__()
        names = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(config) - names)
        if unknown:
            from wsolbench.errors import WsolbenchError

            raise WsolbenchError(
                f"{type(self).__name__} has no setting {', '.join(unknown)} (settings: {', '.join(sorted(names))})"
            )
        self.cfg = self.Config(**config)
        self.backbone = backbone
        self.num_classes = num_classes
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the engine before each epoch (losses may switch on from an epoch)."""
        self.epoch = epoch

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        """Logits and maps; with ``labels`` in training mode also the named loss terms."""
        raise NotImplementedError

    def maps(self, out: MethodOutput, classes: torch.Tensor) -> torch.Tensor:
        """Raw maps (B x k x h x w, not normalised) of ``classes`` (B x k class indices)."""
        index = classes[:, :, None, None].expand(-1, -1, *out.cams.shape[-2:])
        return out.cams.gather(1, index)

    def head_parameters(self):
        """(name, parameter) pairs that are not part of the backbone."""
        backbone_ids = {id(p) for p in self.backbone.parameters()} if self.backbone is not None else set()
        return [(n, p) for n, p in self.named_parameters() if id(p) not in backbone_ids]

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Backbone x backbone_lr_mult, head x head_lr_mult; biases x bias_lr_mult on top."""
        cfg = self.cfg
        groups = []
        parts = [("head", self.head_parameters(), cfg.head_lr_mult)]
        if self.backbone is not None:
            parts.insert(0, ("backbone", list(self.backbone.named_parameters()), cfg.backbone_lr_mult))
        for part, named, mult in parts:
            weights = [p for n, p in named if p.requires_grad and not n.endswith("bias")]
            biases = [p for n, p in named if p.requires_grad and n.endswith("bias")]
            if weights:
                groups.append({"name": f"{part}.weight", "params": weights, "lr": lr * mult, "weight_decay": weight_decay})
            if biases:
                groups.append(
                    {"name": f"{part}.bias", "params": biases, "lr": lr * mult * cfg.bias_lr_mult, "weight_decay": weight_decay}
                )
        return groups


def refuse_tokens(backbone: nn.Module | None, method: str, why: str) -> None:
    """One line where a CNN-only ``method`` is given a vision transformer backbone; ``why`` says what it needs."""
    from wsolbench.backbones.vit import is_token_backbone

    if backbone is not None and is_token_backbone(backbone):
        from wsolbench.errors import WsolbenchError

        raise WsolbenchError(f"{method} {why}; backbone {getattr(backbone, 'name', type(backbone).__name__)} is a "
                             "vision transformer, whose blocks carry tokens: use cam, has, cutmix, acol-simplified, "
                             "i2c, vit-cam or ts-cam with it")


def build_method(name: str, backbone: nn.Module | None, num_classes: int, **overrides) -> Method:
    """Build a registered method; ``overrides`` win over the registration's defaults."""
    return METHODS.build(name, backbone, num_classes, **overrides)
