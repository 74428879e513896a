"""SPG, Self-produced Guidance (Zhang et al., ECCV 2018), as in wsolevaluation's code; CAM of its head at test.

Head A (ACoL-style, as wsolevaluation's SPG): dropout -> conv3x3(D, width) + ReLU -> dropout -> conv3x3 + ReLU
-> dropout -> conv1x1 to C class maps; logits are their global average. Branch B maps the second-to-last
backbone stage (B1, through a forward hook on ``b1_layer``) and the last stage (B2) each through its own
conv3x3 + ReLU, then one shared conv3x3 + ReLU + conv1x1 to a 1-channel logit map; branch C maps head A's
second conv output the same way. In training, with labels, three pixel-wise BCE terms, each against a
target built from a map by two thresholds (``target``: above high -> 1, below low -> 0, between -> ignored;
an image with fewer than 30 foreground pixels takes 0.7 x its max as the high threshold):
- ``b2``: B2 against the true class's map of head A, min-max normalised (thresholds ``b2_high``/``b2_low``, 0.7/0.01);
- ``b1``: B1 against sigmoid(B2) (``b1_high``/``b1_low``, 0.5/0.05);
- ``c``: C against the mean of sigmoid(B1) and sigmoid(B2) (``c_high``/``c_low``, 0.7/0.1).
Targets are detached; all maps are upsampled to the input size first (wsolevaluation: 224 x 224).
``b1_layer`` ``auto``: timm's second-to-last feature stage; the paper backbones' layer3 / features.22 (conv4_3) /
Mixed_5d. Departure: the B and C branch widths are 512 as in the code; ``head_width`` defaults to 1024.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.acol import ACoLConfig
from wsolbench.methods.base import Method, MethodOutput, refuse_tokens, register_method

MIN_FG_PIXELS = 30
PAPER_B1 = {"layer3": "layer3", "Mixed_5d": "Mixed_5d", "features.22": "features.22"}


@dataclass
class SPGConfig(ACoLConfig):
    b2_high: float = 0.7
    b2_low: float = 0.01
    b1_high: float = 0.5
    b1_low: float = 0.05
    c_high: float = 0.7
    c_low: float = 0.1
    branch_width: int = 512
    b1_layer: str = "auto"


def target(attention: torch.Tensor, high: float, low: float) -> torch.Tensor:
    """B x 1 x H x W maps in [0, 1] -> 1 (foreground), 0 (background), -1 (ignored)."""
    flat = attention.flatten(1)
    few = ((flat > high).sum(dim=1) < MIN_FG_PIXELS)[:, None, None, None]
    high_t = torch.where(few, 0.7 * flat.max(dim=1).values[:, None, None, None], torch.full_like(few, high, dtype=attention.dtype))
    out = torch.full_like(attention, -1.0)
    out[attention > high_t] = 1.0
    out[attention < low] = 0.0
    return out


def _bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    keep = labels >= 0
    return F.binary_cross_entropy_with_logits(logits[keep], labels[keep]) if keep.any() else logits.sum() * 0


def _b1_layer(backbone: nn.Module, wanted: str) -> str:
    names = dict(backbone.named_modules())
    if wanted != "auto":
        if wanted not in names:
            raise WsolbenchError(f"spg: b1_layer {wanted} is not a module of the backbone")
        return wanted
    for name in PAPER_B1:
        if name in names and "features.layer4" not in names:
            return name
    info = getattr(getattr(backbone, "features", None), "feature_info", None)
    if info is not None and len(info.info) >= 2:
        module = info.info[-2]["module"]
        for name in (f"features.{module}", f"features.{module.replace('.', '_')}"):
            if name in names:
                return name
    raise WsolbenchError("spg: no default b1_layer for this backbone; give --set b1_layer=MODULE")


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


@register_method("spg", description="SPG: self-produced guidance, B/C branches on thresholded maps (0.7/0.01, 0.5/0.05, 0.7/0.1)")
class SPG(Method):
    Config = SPGConfig

    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        super().__init__(backbone, num_classes, **config)
        refuse_tokens(backbone, "spg", "reads a CNN's second-to-last stage as a map (its B1 branch)")
        cfg = self.cfg
        layer = dict(backbone.named_modules())[_b1_layer(backbone, cfg.b1_layer)]
        self._mid = None
        layer.register_forward_hook(lambda m, i, o: setattr(self, "_mid", o))
        was = backbone.training
        with torch.no_grad():  # the B1 input's channel count, from a probe image
            backbone.eval()
            backbone(torch.zeros(1, 3, 128, 128))
            backbone.train(was)
        mid_channels, self._mid = self._mid.shape[1], None
        d, w, bw = backbone.out_channels, cfg.head_width, cfg.branch_width
        self.a1, self.a2, self.a4 = _conv(d, w), _conv(w, w), nn.Conv2d(w, num_classes, 1)
        self.b1, self.b2 = _conv(mid_channels, bw), _conv(d, bw)
        self.b_shared = nn.Sequential(_conv(bw, bw), nn.Conv2d(bw, 1, 1))
        self.c = nn.Sequential(_conv(w, bw), nn.Conv2d(bw, 1, 1))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        p = self.cfg.dropout
        features = self.backbone(images)
        mid, self._mid = self._mid, None
        x = self.a2(F.dropout(self.a1(F.dropout(features, p, self.training)), p, self.training))
        cams = self.a4(F.dropout(x, p, self.training))
        out = MethodOutput(logits=cams.mean(dim=(2, 3)), cams=cams, features=features)
        if not (self.training and labels is not None):
            return out
        up = lambda t: F.interpolate(t, size=images.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        b1, b2, c = up(self.b_shared(self.b1(mid))), up(self.b_shared(self.b2(features))), up(self.c(x))
        with torch.no_grad():
            att = up(cams[torch.arange(len(labels)), labels][:, None].float())
            lo, hi = att.flatten(1).min(1).values, att.flatten(1).max(1).values
            att = (att - lo[:, None, None, None]) / (hi - lo).clamp_min(1e-12)[:, None, None, None]
            s1, s2 = torch.sigmoid(b1), torch.sigmoid(b2)
        cfg = self.cfg
        out.losses["cls"] = F.cross_entropy(out.logits, labels)
        out.losses["b2"] = _bce(b2, target(att, cfg.b2_high, cfg.b2_low))
        out.losses["b1"] = _bce(b1, target(s2, cfg.b1_high, cfg.b1_low))
        out.losses["c"] = _bce(c, target((s1 + s2) / 2, cfg.c_high, cfg.c_low))
        return out
