"""vit-cam: CAM on a vision transformer's patch tokens, the control row of TS-CAM.

The patch tokens after the final norm, reshaped to D x h x w (``TokenBackbone``), go through global
average pooling and a linear classifier; the map of class c is the classifier's weights of c applied at
every patch (CAM, methods/cam.py). The class token is not read. This is the "CAM on DeiT" baseline TS-CAM
is compared with: the same backbone and training, the GAP + linear head in place of TS-CAM's conv head and
attention coupling. ``cam`` on a transformer backbone computes the same; this name refuses a CNN, so the
control row is always a transformer.
"""
from __future__ import annotations

from torch import nn

from wsolbench.methods.base import register_method
from wsolbench.methods.cam import CAM
from wsolbench.methods.ts_cam import require_tokens


@register_method("vit-cam", description="CAM (GAP + linear) on ViT patch tokens: TS-CAM's control")
class ViTCAM(CAM):
    needs_tokens = True
    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        require_tokens(backbone, "vit-cam")
        super().__init__(backbone, num_classes, **config)
