"""CutMix (Yun et al., ICCV 2019): paste a box from another image of the batch, mix the labels by area; CAM at test.

In training mode with labels, with probability ``prob`` per step: lambda ~ Beta(beta, beta), a box of
side sqrt(1 - lambda) times the image's sides centred at a uniform position (clipped to the image)
is copied from a random permutation of the batch. The loss weighs the pasted image's label by the
box's area fraction after clipping, the own label by the rest. Defaults as in wsolevaluation
(beta 1.0, prob 1.0). With class-paired batches the permutation is over the whole batch, as there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import MethodOutput, register_method
from wsolbench.methods.cam import CAM, CAMConfig


@dataclass
class CutMixConfig(CAMConfig):
    beta: float = 1.0  # Beta(beta, beta) draws lambda
    prob: float = 1.0  # probability that a step is mixed

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise WsolbenchError(f"cutmix: beta must be positive, not {self.beta}")
        if not 0.0 <= self.prob <= 1.0:
            raise WsolbenchError(f"cutmix: prob must be in [0, 1], not {self.prob}")


def cut_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): sides sqrt(1 - lam) x the image's, uniform centre, clipped."""
    ratio = (1.0 - lam) ** 0.5
    ch, cw = int(height * ratio), int(width * ratio)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    return max(cy - ch // 2, 0), min(cy + ch // 2, height), max(cx - cw // 2, 0), min(cx + cw // 2, width)


def cutmix(images: torch.Tensor, labels: torch.Tensor, beta: float):
    """(mixed images, labels of the pasted images, their weight = pasted area fraction)."""
    lam = float(torch.distributions.Beta(beta, beta).sample())
    order = torch.randperm(images.shape[0], device=images.device)
    h, w = images.shape[-2:]
    y0, y1, x0, x1 = cut_box(h, w, lam)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[order, :, y0:y1, x0:x1]
    return mixed, labels[order], (y1 - y0) * (x1 - x0) / (h * w)


@register_method("cutmix", description="CutMix: boxes pasted between images, labels mixed by area (beta 1, prob 1); CAM")
class CutMix(CAM):
    Config = CutMixConfig

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        if not (self.training and labels is not None) or float(torch.rand(())) >= self.cfg.prob:
            return super().forward(images, labels)
        mixed, pasted, weight = cutmix(images, labels, self.cfg.beta)
        out = super().forward(mixed)
        out.losses["cls"] = (1 - weight) * F.cross_entropy(out.logits, labels) + weight * F.cross_entropy(out.logits, pasted)
        return out
