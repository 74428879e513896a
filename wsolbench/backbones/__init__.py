"""Backbones: any timm CNN's last feature stage, and the I2C paper's modified VGG16/ResNet50/InceptionV3.

    build_backbone("resnet50")                     # the paper's ResNet50: 2048 x 28 x 28 at 224
    build_backbone("timm/resnet50")                # timm's plain ResNet50 last stage: 2048 x 7 x 7
    build_backbone("resnet18", output_stride=16)   # any timm CNN
    build_backbone("vgg16", pretrained="vgg16.pth")  # local weights; pretrained="hub" downloads via timm

Every backbone maps B x 3 x H x W images to a B x C x h x w map and has ``out_channels`` (C) and
``reduction`` (H / h).
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from wsolbench.backbones import paper  # noqa: F401 - registers vgg16, resnet50, inception_v3
from wsolbench.backbones.paper import PaperBackbone
from wsolbench.backbones.timm_features import TimmLastStage, build_timm_backbone, list_timm_backbones
from wsolbench.registry import BACKBONES

TIMM_PREFIX = "timm/"  # forces timm's plain model where a paper version is registered

__all__ = ["build_backbone", "list_timm_backbones", "PaperBackbone", "TimmLastStage", "TIMM_PREFIX"]


def build_backbone(name: str, pretrained: str | Path | None = None, output_stride: int | None = None) -> nn.Module:
    """A registered backbone by name, else timm's model ``name`` cut to its last feature stage.

    ``pretrained``: None (random init), a local .pth/.pt/.bin/.safetensors state dict, or ``"hub"``
    (timm downloads; the only case that touches the network).
    """
    if name.startswith(TIMM_PREFIX):
        return build_timm_backbone(name[len(TIMM_PREFIX):], pretrained, output_stride)
    if name in BACKBONES:
        return BACKBONES.build(name, pretrained=pretrained, output_stride=output_stride)
    return build_timm_backbone(name, pretrained, output_stride)
