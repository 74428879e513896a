"""Backbones: any timm CNN's last feature stage, and the I2C paper's modified VGG16/ResNet50/InceptionV3.

    build_backbone("resnet50")                     # the paper's ResNet50: 2048 x 28 x 28 at 224
    build_backbone("timm/resnet50")                # timm's plain ResNet50 last stage: 2048 x 7 x 7
    build_backbone("resnet18", output_stride=16)   # any timm CNN
    build_backbone("vgg16", pretrained="vgg16.pth")  # local weights; pretrained="hub" downloads via timm
    build_backbone("deit_tiny_patch16_224", input_size=64)  # a ViT: its patch tokens as a 192 x 4 x 4 map

Every backbone maps B x 3 x H x W images to a B x C x h x w map and has ``out_channels`` (C) and
``reduction`` (H / h). Vision transformers (``backbones/vit.py``) also hand out their class token and
attention weights (``forward_tokens``; ``is_token_backbone`` tells them apart).
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from wsolbench.backbones import paper  # noqa: F401 - registers vgg16, resnet50, inception_v3
from wsolbench.backbones.paper import PaperBackbone
from wsolbench.backbones.timm_features import TimmLastStage, build_timm_backbone, list_timm_backbones
from wsolbench.backbones.vit import TokenBackbone, build_token_backbone, is_token_backbone, routes_to_tokens
from wsolbench.registry import BACKBONES

TIMM_PREFIX = "timm/"  # forces timm's plain model where a paper version is registered

__all__ = ["build_backbone", "list_timm_backbones", "is_token_backbone", "is_transformer_name", "PaperBackbone",
           "TimmLastStage", "TokenBackbone", "TIMM_PREFIX"]


def is_transformer_name(name: str) -> bool:
    """Whether ``build_backbone(name)`` gives a TokenBackbone (a vision transformer)."""
    name = name[len(TIMM_PREFIX):] if name.startswith(TIMM_PREFIX) else name
    return name not in BACKBONES and routes_to_tokens(name)


def build_backbone(name: str, pretrained: str | Path | None = None, output_stride: int | None = None,
                   input_size: int | None = None) -> nn.Module:
    """A registered backbone by name, else timm's vision transformer ``name`` at ``input_size`` (None: its
    own), else timm's model ``name`` cut to its last feature stage (CNNs ignore ``input_size``).

    ``pretrained``: None (random init), a local .pth/.pt/.bin/.safetensors state dict, or ``"hub"``
    (timm downloads; the only case that touches the network).
    """
    if name in BACKBONES:
        return BACKBONES.build(name, pretrained=pretrained, output_stride=output_stride)
    name = name[len(TIMM_PREFIX):] if name.startswith(TIMM_PREFIX) else name
    if routes_to_tokens(name):
        return build_token_backbone(name, pretrained, output_stride, input_size)
    return build_timm_backbone(name, pretrained, output_stride)
