"""The I2C paper's backbones: timm's VGG16, ResNet50 and InceptionV3 cut and re-strided to a 28x28 map at 224.

Each is built from timm's own model (random init, or ``pretrained="hub"``), modified in place, and
kept as an ``nn.Sequential`` of timm's own child modules under timm's names, so its state-dict keys
are exactly the timm/torchvision checkpoint keys minus the removed head: a local ImageNet file loads
as is (``weights.load_checked``).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.backbones.timm_features import create_timm_model
from wsolbench.backbones.weights import load_checked
from wsolbench.errors import WsolbenchError
from wsolbench.registry import BACKBONES

PAPER_REDUCTION = 8  # 224 -> 28


class PaperBackbone(nn.Sequential):
    """Images B x 3 x H x W -> features B x out_channels x H/8 x W/8 (timm's modules, timm's key names)."""

    def __init__(self, modules: "OrderedDict[str, nn.Module]", out_channels: int, reduction: int = PAPER_REDUCTION):
        super().__init__(modules)
        self.out_channels = out_channels
        self.reduction = reduction


def _timm_model(arch: str, pretrained: str | Path | None, **kwargs) -> nn.Module:
    # only the explicit "hub" asks timm to download; a local file is loaded after the cut
    return create_timm_model(arch, pretrained=pretrained == "hub", **kwargs)


def _finish(
    name: str,
    full: nn.Module,
    keep: Iterable[str],
    out_channels: int,
    pretrained: str | Path | None,
    also_dropped: tuple[str, ...] = (),
) -> PaperBackbone:
    """Keep the named children of ``full`` in order; load a local weights file if one is given.

    ``also_dropped``: key prefixes of other checkpoint formats that the cut removes too
    (torchvision's VGG ``classifier.``, InceptionV3's ``AuxLogits.``).
    """
    full_keys = set(full.state_dict())
    backbone = PaperBackbone(OrderedDict((k, getattr(full, k)) for k in keep), out_channels)
    if pretrained is not None and pretrained != "hub":
        kept_keys = set(backbone.state_dict())

        def dropped(key: str) -> bool:
            return (key in full_keys and key not in kept_keys) or key.startswith(also_dropped)

        load_checked(backbone, pretrained, name, dropped)
    return backbone


def _check_output_stride(name: str, output_stride: int | None) -> None:
    if output_stride not in (None, PAPER_REDUCTION):
        raise WsolbenchError(
            f"backbone {name} has the paper's fixed stride {PAPER_REDUCTION}; output_stride={output_stride} "
            f"is not supported (use timm/{name} for timm's plain model with an output_stride)"
        )


def _stride1_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=1, padding=1)


@BACKBONES.register(
    "vgg16", description="I2C paper VGG16: no FC, pool4/pool5 stride 1, 3x3 avg-pool; 512 x 28 x 28 at 224",
    output_stride=PAPER_REDUCTION,
)
def vgg16(pretrained: str | Path | None = None, output_stride: int | None = None) -> PaperBackbone:
    _check_output_stride("vgg16", output_stride)
    full = _timm_model("vgg16", pretrained)
    pools = [i for i, layer in enumerate(full.features) if isinstance(layer, nn.MaxPool2d)]
    for i in pools[3:]:  # pool4, pool5: keep 28x28
        full.features[i] = _stride1_pool()
    full.avgpool = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
    return _finish("vgg16", full, ["features", "avgpool"], 512, pretrained, ("classifier.",))


@BACKBONES.register(
    "resnet50", description="I2C paper ResNet50: layer3/layer4 stride 1 (no dilation), no pool/fc; 2048 x 28 x 28 at 224",
    output_stride=PAPER_REDUCTION,
)
def resnet50(pretrained: str | Path | None = None, output_stride: int | None = None) -> PaperBackbone:
    _check_output_stride("resnet50", output_stride)
    full = _timm_model("resnet50", pretrained)
    for layer in (full.layer3, full.layer4):
        first = layer[0]  # the stride sits in the first block's 3x3 conv and its 1x1 shortcut conv
        first.conv2.stride = (1, 1)
        first.downsample[0].stride = (1, 1)
    keep = ["conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return _finish("resnet50", full, keep, 2048, pretrained)


class _Mixed6aStride1(nn.Module):
    """timm's InceptionB (Mixed_6a) with stride 1, padding 1 in all three branches, as in the I2C/ACoL code.

    Adopts the block's own convs under the same names; only the stride-2 max-pool of its forward changes.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv_block in (self.branch3x3, self.branch3x3dbl_3):
            conv_block.conv.stride = (1, 1)
            conv_block.conv.padding = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


INCEPTION_KEEP = [
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Pool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Pool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
]


@BACKBONES.register(
    "inception_v3", description="I2C paper InceptionV3: up to Mixed_6e, Mixed_6a stride 1, padded stem; 768 x 28 x 28 at 224",
    output_stride=PAPER_REDUCTION,
)
def inception_v3(pretrained: str | Path | None = None, output_stride: int | None = None) -> PaperBackbone:
    _check_output_stride("inception_v3", output_stride)
    full = _timm_model("inception_v3", pretrained)
    full.Conv2d_1a_3x3.conv.padding = (1, 1)
    full.Pool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    full.Pool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    full.Mixed_6a = _Mixed6aStride1(full.Mixed_6a)
    return _finish("inception_v3", full, INCEPTION_KEEP, 768, pretrained, ("AuxLogits.",))
