"""ADL, Attention-based Dropout Layer (Choe & Shim, CVPR 2019): drop the most attended regions in training; CAM.

After each chosen backbone module (a forward hook), in training mode only: the channel mean of the
output is the attention map A. With probability ``drop_rate`` the output is multiplied by the drop
mask (A < ``gamma`` x max A per image: the most attended region set to zero), otherwise by the
importance map sigmoid(A); one draw per layer and step. At eval the layer is the identity, and the
model is CAM (ADL has no parameters).

``positions`` (comma-separated module names inside the backbone) default by backbone (``auto``):
- the paper's VGG16 (``vgg16``): after pool3, pool4 and conv5_3 -> features.16, features.23, features.29;
- the paper's ResNet50 and timm ResNets: layer3 block 0, layer4 blocks 0 and 2 (wsolevaluation's positions);
- the paper's InceptionV3: after Mixed_5d and Mixed_6e (the third, inside the ACoL-style head, has no
  counterpart in CAM's linear head);
- any other timm CNN: after its last two feature stages (timm's feature_info modules).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import refuse_tokens, register_method
from wsolbench.methods.cam import CAM, CAMConfig

PAPER_POSITIONS = {"vgg16": "features.16,features.23,features.29", "inception_v3": "Mixed_5d,Mixed_6e"}


@dataclass
class ADLConfig(CAMConfig):
    drop_rate: float = 0.75  # probability of the drop mask (else the importance map)
    gamma: float = 0.9  # drop threshold as a fraction of the attention's max
    positions: str = "auto"  # comma-separated backbone module names, or auto

    def __post_init__(self) -> None:
        for name in ("drop_rate", "gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise WsolbenchError(f"adl: {name} must be in [0, 1], not {getattr(self, name)}")


def adl(x: torch.Tensor, drop_rate: float, gamma: float) -> tuple[torch.Tensor, bool]:
    """(x times the drop mask or the importance map, whether the drop mask was chosen)."""
    attention = x.mean(dim=1, keepdim=True)
    if float(torch.rand(())) < drop_rate:
        peak = attention.flatten(1).max(dim=1).values[:, None, None, None]
        return x * (attention < gamma * peak).to(x.dtype), True
    return x * torch.sigmoid(attention), False


def default_positions(backbone: nn.Module) -> list[str]:
    kind = type(backbone).__name__
    names = dict(backbone.named_modules())
    if kind == "PaperBackbone" and "Mixed_6e" in names:
        return PAPER_POSITIONS["inception_v3"].split(",")
    if kind == "PaperBackbone" and "features.29" in names and "layer4" not in names:
        return PAPER_POSITIONS["vgg16"].split(",")
    for prefix in ("", "features."):  # the paper's ResNet50, timm's ResNets
        if f"{prefix}layer3.0" in names and f"{prefix}layer4.0" in names:
            last = f"{prefix}layer4.2" if f"{prefix}layer4.2" in names else f"{prefix}layer4.{len(names[prefix + 'layer4']) - 1}"
            return [f"{prefix}layer3.0", f"{prefix}layer4.0", last][: 3 if last != f"{prefix}layer4.0" else 2]
    info = getattr(getattr(backbone, "features", None), "feature_info", None)
    if info is None:
        raise WsolbenchError(f"adl: no default positions for backbone {kind}; give --set positions=NAME,NAME")
    found = []
    for module in [i["module"] for i in info.info][-2:]:
        for name in (f"features.{module}", f"features.{module.replace('.', '_')}"):
            if name in names:
                found.append(name)
                break
    return found


@register_method("adl", description="ADL: attention-based dropout after chosen stages in training (0.75, gamma 0.9); CAM")
class ADL(CAM):
    Config = ADLConfig

    def __init__(self, backbone: nn.Module, num_classes: int, **config):
        super().__init__(backbone, num_classes, **config)
        refuse_tokens(backbone, "adl", "inserts its dropout layer between a CNN's stages (C x H x W maps)")
        names = dict(backbone.named_modules())
        wanted = default_positions(backbone) if self.cfg.positions == "auto" else \
            [p.strip() for p in self.cfg.positions.split(",") if p.strip()]
        missing = [p for p in wanted if p not in names]
        if missing or not wanted:
            raise WsolbenchError(f"adl: positions {', '.join(missing) or '(none)'} not in the backbone "
                                 f"(module names such as {', '.join(list(names)[1:6])}, ...)")
        self.position_names = wanted
        self.branches: list[bool] = []  # the last step's choices (True: drop mask), for inspection
        for name in wanted:
            names[name].register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if not self.training:
            return None  # identity
        out, dropped = adl(output, self.cfg.drop_rate, self.cfg.gamma)
        self.branches.append(dropped)
        return out

    def forward(self, images, labels=None):
        self.branches = []
        return super().forward(images, labels)
