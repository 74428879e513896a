"""CAM (Zhou et al., CVPR 2016): backbone features, global average pooling, a linear classifier.

The map of class y is the classifier's weights of y applied to the feature map at every
position (a 1x1 convolution without the bias): averaging that map over the grid gives the
class's logit less its bias, so maps and logits agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.methods.base import Method, MethodConfig, MethodOutput, register_method


@dataclass
class CAMConfig(MethodConfig):
    """CAM has no settings beyond the shared learning-rate multipliers."""


@register_method("cam", description="CAM: global average pooling and a linear classifier")
class CAM(Method):
    Config = CAMConfig

    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        super().__init__(backbone, num_classes, **config)
        self.classifier = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        features = self.backbone(images)
        logits = self.classifier(features.mean(dim=(2, 3)))
        cams = F.conv2d(features, self.classifier.weight[:, :, None, None])
        out = MethodOutput(logits=logits, cams=cams, features=features)
        if self.training and labels is not None:
            out.losses["cls"] = F.cross_entropy(logits, labels)
            out.logs["feat_norm"] = features.detach().float().norm(dim=1).mean()  # steps.jsonl diag (i2c-diagnosis)
        return out
