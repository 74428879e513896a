"""ACoL-simplified (Zhang et al., CVPR 2018, without the erasing branch): the head I2C builds on.

Registered as ``acol-simplified`` so it is not read against full ACoL's reported numbers (full
ACoL adds an adversarial erasing branch, threshold 0.7, that this head does not have); ``acol``,
the old name, is an alias that resolves to the same entry (same run ids, one leaderboard row).

Head (DESIGN.md section 4): dropout -> conv3x3(D, width) + ReLU -> dropout -> conv3x3(width,
width) + ReLU -> dropout -> conv1x1(width, C). The logits are the global average of the C class
maps and the map of class y is channel y. Dropout is element-wise, p = 0.5; ``head_width``
defaults to the paper's 1024 (tests use small widths).

Diagnostics (``out.logs``, written to steps.jsonl's ``diag`` in training): ``feat_norm``, the mean L2 norm
of the backbone's feature vectors; with ``log_grads`` (off by default: an extra backward through the head per
term) ``grad_TERM``, the L2 norm of each loss term's gradient on the feature map (docs/i2c-diagnosis.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import Method, MethodConfig, MethodOutput, register_method


@dataclass
class ACoLConfig(MethodConfig):
    head_width: int = 1024
    dropout: float = 0.5
    # diagnostics, not a method setting: each loss term's gradient norm on the feature map, per step
    log_grads: bool = field(default=False, metadata={"diagnostic": True})

    def __post_init__(self) -> None:
        if self.head_width < 1:
            raise WsolbenchError(f"head_width must be a positive integer, not {self.head_width}")
        if not 0.0 <= self.dropout < 1.0:
            raise WsolbenchError(f"dropout must be in [0, 1), not {self.dropout}")


class ACoLHead(nn.Sequential):
    """Feature map B x D x h x w -> class maps B x C x h x w (same grid)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 1024, dropout: float = 0.5):
        super().__init__(
            nn.Dropout(dropout),
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(width, num_classes, 1),
        )


@register_method(
    "acol-simplified",
    aliases=("acol",),
    description="ACoL-simplified (the I2C paper's head): three-conv class-map head, no erasing branch; not full ACoL",
)
class ACoL(Method):
    Config = ACoLConfig

    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        super().__init__(backbone, num_classes, **config)
        self.head = ACoLHead(backbone.out_channels, num_classes, self.cfg.head_width, self.cfg.dropout)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        out = self.outputs(images, labels)
        if self.training and labels is not None:
            log_diagnostics(out, self.cfg.log_grads)
        return out

    def outputs(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        """Logits, maps and (training, with labels) the loss terms; subclasses add their terms here."""
        features = self.backbone(images)
        cams = self.head(features)
        out = MethodOutput(logits=cams.mean(dim=(2, 3)), cams=cams, features=features)
        if self.training and labels is not None:
            out.losses["cls"] = F.cross_entropy(out.logits, labels)
        return out


def log_diagnostics(out: MethodOutput, grads: bool = False) -> None:
    """``feat_norm`` and, with ``grads``, ``grad_TERM`` (each term's gradient norm on the features) into out.logs."""
    features = out.features
    out.logs["feat_norm"] = features.detach().float().norm(dim=1).mean()
    if grads and features.requires_grad:
        for name, term in out.losses.items():
            if term.requires_grad:
                (g,) = torch.autograd.grad(term, features, retain_graph=True, allow_unused=True)
                out.logs[f"grad_{name}"] = g.float().norm() if g is not None else features.new_zeros(())
