"""TS-CAM, token semantic coupled attention map (Gao et al., ICCV 2021), on a vision transformer backbone.

With F the final-normed patch tokens as a D x h x w map (``TokenBackbone``), P prefix tokens, L blocks and
H heads (equations as in the paper, Sec. 3; behaviour as in github.com/vasgaowei/TS-CAM, lib/models/deit.py):

- semantic re-allocation: S = conv3x3(D -> C, padding 1)(F), the C x h x w semantic-aware maps; the logits
  are their global average y_c = 1/(hw) sum_ij S_c,ij, trained with cross-entropy (the only loss);
- semantic-agnostic attention: A_l = 1/H sum_k softmax(Q_k K_k^T / sqrt(d)), block l's attention weights
  averaged over the heads (N x N); A* = 1/L sum_l A_l[0, P:], the class token's row to the patch tokens,
  reshaped to h x w. The code sums over the blocks instead of averaging: the same map times L, which the
  protocols' min-max normalisation removes;
- coupling: M_c = A* . S_c (element-wise), the map of class c. As in the code the semantic maps are
  detached in the coupling (the maps carry no gradient); the weights come from the same forward pass as
  the logits (``TokenBackbone.forward_tokens``), only in eval mode: training needs the logits alone.

Paper settings (Sec. 4.1, as recalled; the released configs confirm lr, batch and input): DeiT-S pretrained
on ImageNet, AdamW, lr 5e-5 (CUB, batch 128) / 5e-4 (ILSVRC, batch 256), images resized to 256 and
cropped to 224; the released code trains CUB for 60 epochs (lr x0.1 at 30) and ILSVRC for 20 (at 10, 12)
with timm's AdamW weight decay 0.05 (its yaml's 5e-4 is not passed to the optimizer) and drop-path 0.1.
wsolbench trains every method with SGD (nesterov, momentum 0.9) at the run's lr and no drop-path: a
departure, the same for ``vit-cam``, its control (docs/transformers.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import Method, MethodConfig, MethodOutput, register_method

PAPER = dict(backbone="deit_small_patch16_224", optimizer="AdamW", lr={"cub": 5e-5, "ilsvrc": 5e-4},
             batch_size={"cub": 128, "ilsvrc": 256}, input_size=224, resize=256)


def require_tokens(backbone: nn.Module, method: str, class_token: str | None = None) -> None:
    """One line where ``method`` needs a vision transformer and ``backbone`` is not one; with ``class_token`` (what
    the method reads it for) also where the transformer has no class token."""
    from wsolbench.backbones.vit import is_token_backbone

    if not is_token_backbone(backbone):
        raise WsolbenchError(f"{method} needs a vision transformer backbone (its patch tokens and attention), not "
                             f"{type(backbone).__name__}: try -b deit_tiny_patch16_224 (wsolbench list backbones)")
    if class_token and not backbone.has_class_token:
        raise WsolbenchError(f"{method}: backbone {backbone.name} has no class token, {class_token}")


def semantic_agnostic_attention(attentions: list[torch.Tensor], num_prefix_tokens: int,
                                grid: tuple[int, int]) -> torch.Tensor:
    """A* (B x h x w): the class token's attention to the patch tokens, mean over heads, then over blocks."""
    a = torch.stack(attentions).mean(dim=2).mean(dim=0)  # L x B x H x N x N -> B x N x N
    return a[:, 0, num_prefix_tokens:].reshape(a.shape[0], *grid)


@dataclass
class TSCAMConfig(MethodConfig):
    """TS-CAM has no settings beyond the shared learning-rate multipliers (the head is the paper's 3x3 conv)."""


@register_method("ts-cam", description="TS-CAM: conv head on ViT patch tokens x the class token's attention (ICCV 2021)")
class TSCAM(Method):
    Config = TSCAMConfig
    needs_tokens = True

    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        super().__init__(backbone, num_classes, **config)
        require_tokens(backbone, "ts-cam", class_token="whose attention TS-CAM reads")
        self.head = nn.Conv2d(backbone.out_channels, num_classes, 3, padding=1)
        self.explain_layer = "backbone.model.norm"  # explainers: the final-normed tokens the head reads (as a map)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        if self.training:
            features, attention = self.backbone(images), None
        else:
            tokens = self.backbone.forward_tokens(images)
            features = tokens.map
            attention = semantic_agnostic_attention(tokens.attentions, self.backbone.num_prefix_tokens,
                                                    self.backbone.grid)
        semantic = self.head(features)
        logits = semantic.mean(dim=(2, 3))
        cams = semantic if attention is None else attention[:, None] * semantic.detach()
        out = MethodOutput(logits=logits, cams=cams, features=features)
        if self.training and labels is not None:
            out.losses["cls"] = F.cross_entropy(logits, labels)
        return out
