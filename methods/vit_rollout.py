"""vit-rollout: a vision transformer's own classifier, the class token, with attention rollout as its map.

The plain ViT / DeiT classifier: the final-normed class token through a linear head (timm's
``global_pool='token'``). It has no class map of its own; its map is the attention rollout of the same
forward pass (Abnar & Zuidema, ACL 2020; ``wsolbench/attention_rollout.py``), the class token's row over the
patch tokens, the same for every class. This is the row for a pretrained transformer classifier as it is
(``--pretrained FILE --epochs 0`` keeps the checkpoint's head, ``wsolbench/zeroshot.py``) and, trained, the
class-token counterpart of ``vit-cam``. Post-hoc explainers read ``explain_layer``, the last block's first
norm: its patch tokens reach the class token through the last attention, where the final tokens do not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.methods.base import Method, MethodConfig, MethodOutput, register_method
from wsolbench.methods.ts_cam import require_tokens


@dataclass
class ViTRolloutConfig(MethodConfig):
    """No settings beyond the shared learning-rate multipliers (rollout: mean over heads, nothing discarded)."""


@register_method("vit-rollout", description="ViT class-token classifier; maps: attention rollout (class-agnostic)")
class ViTRollout(Method):
    Config = ViTRolloutConfig
    needs_tokens = True

    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        super().__init__(backbone, num_classes, **config)
        require_tokens(backbone, "vit-rollout", class_token="to classify from")
        self.classifier = nn.Linear(backbone.out_channels, num_classes)
        self.explain_layer = f"backbone.model.blocks.{len(backbone.model.blocks) - 1}.norm1"

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        from wsolbench.attention_rollout import rollout_map
        from wsolbench.backbones.vit import tokens_to_map

        backbone, cams = self.backbone, None
        if self.training:  # timm's fused attention: the weights are not needed
            tokens = backbone.tokens(images)
            cls, features = tokens[:, 0], tokens_to_map(tokens, backbone.num_prefix_tokens, backbone.grid)
        else:
            tokens = backbone.forward_tokens(images)
            cls, features = tokens.cls, tokens.map
            cams = rollout_map(tokens.attentions, backbone.num_prefix_tokens, backbone.grid)[:, None]
        out = MethodOutput(logits=self.classifier(cls), cams=cams, features=features)
        if self.training and labels is not None:
            out.losses["cls"] = F.cross_entropy(out.logits, labels)
        return out

    def maps(self, out: MethodOutput, classes: torch.Tensor) -> torch.Tensor:
        return out.cams.expand(-1, classes.shape[1], -1, -1)
