"""Vision transformers as backbones: the patch tokens reshaped to the D x h x w map every method reads.

    backbone = build_backbone("deit_tiny_patch16_224", input_size=64)
    backbone(x)                     # B x 192 x 4 x 4: the final-normed patch tokens (CAM, ACoL, I2C read it)
    t = backbone.forward_tokens(x)  # Tokens(map, cls, patches, attentions, prefix) from the same one forward

Which models: timm's ``VisionTransformer`` class (vit_*, deit_*, deit3_*, flexivit_*, their distilled and
register-token variants, and the other families built on that class) whose blocks use timm's standard
``Attention``. The prefix tokens (class, distillation, registers: ``num_prefix_tokens``) are left out of the
map. The model is built at the run's input size (timm's ``img_size``), so timm resamples the position
embeddings of a ``--pretrained`` file to that grid as it loads it (its checkpoint filter, bicubic).
``output_stride`` does not apply: a transformer's stride is its patch size; giving one is an error.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from wsolbench.backbones.timm_features import (
    NON_CNN_PREFIXES, ImageNetInput, _quiet_unused_head_keys, check_timm_name, create_timm_model, weight_kwargs,
)
from wsolbench.errors import WsolbenchError

TOKEN_PREFIXES = ("vit_", "deit", "flexivit", "test_vit")  # always routed here (an unusable layout is an error)


@dataclass
class Tokens:
    """One forward pass of a TokenBackbone, every part from the same computation."""

    map: torch.Tensor  # B x D x h x w: the final-normed patch tokens (what ``forward`` returns)
    cls: torch.Tensor | None  # B x D: the final-normed class token (None: a model without one)
    patches: torch.Tensor  # B x h*w x D: the final-normed patch tokens, raster order
    attentions: list[torch.Tensor]  # one per block: B x heads x N x N softmax weights, N = prefix + h*w
    prefix: torch.Tensor  # B x num_prefix_tokens x D: class, distillation and register tokens


def tokens_to_map(tokens: torch.Tensor, num_prefix_tokens: int, grid: tuple[int, int]) -> torch.Tensor:
    """B x N x D tokens -> B x D x h x w: the prefix tokens dropped, the patch tokens in raster order."""
    b, _, d = tokens.shape
    return tokens[:, num_prefix_tokens:].reshape(b, grid[0], grid[1], d).permute(0, 3, 1, 2)


def _attention(attn: nn.Module, x: torch.Tensor, attn_mask=None, is_causal: bool = False, *, record: list):
    """timm's ``Attention.forward`` with the weights computed explicitly (not fused) and appended to ``record``."""
    if attn_mask is not None or is_causal:
        raise WsolbenchError("forward_tokens: masked or causal attention is not supported")
    b, n, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    record.append(weights)
    out = (attn.attn_drop(weights) @ v).transpose(1, 2).reshape(b, n, attn.attn_dim)
    out = attn.norm(out)
    if gate is not None:
        out = out * gate
    return attn.proj_drop(attn.proj(out))


class TokenBackbone(ImageNetInput):
    """Images B x 3 x H x W -> B x D x H/p x W/p (the patch tokens); ``forward_tokens`` adds the rest."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model = model  # timm's full VisionTransformer (its head Identity unless zero-shot)
        self.name = name
        self._init_input(model.pretrained_cfg)
        self.num_prefix_tokens: int = model.num_prefix_tokens
        self.grid: tuple[int, int] = tuple(model.patch_embed.grid_size)
        self.out_channels: int = model.num_features
        self.reduction: int = model.patch_embed.img_size[0] // self.grid[0]  # the patch size (hybrids: x the stem's)
        self.has_class_token = model.cls_token is not None

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every final-normed token, B x N x D (prefix first), from timm's own fused forward."""
        return self.model.forward_features(self.model_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tokens_to_map(self.tokens(x), self.num_prefix_tokens, self.grid)

    def forward_tokens(self, x: torch.Tensor) -> Tokens:
        """The map, the class token and every block's attention weights, from one forward pass."""
        attentions: list[torch.Tensor] = []
        modules = [block.attn for block in self.model.blocks]
        for attn in modules:  # an instance attribute shadows the class's forward for this pass only
            attn.forward = functools.partial(_attention, attn, record=attentions)
        try:
            tokens = self.tokens(x)
        finally:
            for attn in modules:
                del attn.forward
        p = self.num_prefix_tokens
        return Tokens(map=tokens_to_map(tokens, p, self.grid), cls=tokens[:, 0] if self.has_class_token else None,
                      patches=tokens[:, p:], attentions=attentions, prefix=tokens[:, :p])


def is_token_backbone(module: nn.Module) -> bool:
    """Whether a backbone hands out tokens and attention (``forward_tokens``) besides its map."""
    return callable(getattr(module, "forward_tokens", None))


def layout_problem(model: nn.Module) -> str | None:
    """Why a timm model cannot serve as a TokenBackbone (None: it can)."""
    from timm.layers import Attention
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        return f"timm's {type(model).__name__} is not a VisionTransformer (patch_embed + blocks + prefix tokens)"
    if getattr(model.patch_embed, "grid_size", None) is None:
        return "its patch embedding has no fixed grid"
    if not all(hasattr(b, "attn") for b in model.blocks):
        return "its blocks have no single attention module (.attn)"
    other = sorted({type(b.attn).__name__ for b in model.blocks if type(b.attn) is not Attention})
    if other:
        return f"its blocks' attention ({', '.join(other)}) is not timm's standard Attention"
    return None


@functools.lru_cache(maxsize=None)
def _meta_model(name: str) -> nn.Module | None:
    try:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            return timm.create_model(name)
    except Exception:  # noqa: BLE001 - the real build reports it
        return None


def routes_to_tokens(name: str) -> bool:
    """Whether ``build_backbone`` builds timm's ``name`` as a TokenBackbone (no weights are built to tell)."""
    from timm.models.vision_transformer import VisionTransformer

    if not timm.is_model(name) or not name.startswith(NON_CNN_PREFIXES):
        return False
    return name.startswith(TOKEN_PREFIXES) or isinstance(_meta_model(name), VisionTransformer)


def list_token_backbones(pattern: str = "*") -> list[str]:
    """timm names matching ``pattern`` in the families routed here (a model of them without the layout errs)."""
    return [n for n in timm.list_models(pattern) if n.startswith(TOKEN_PREFIXES)]


def build_token_backbone(name: str, pretrained: str | Path | None = None, output_stride: int | None = None,
                         input_size: int | None = None, num_classes: int = 0) -> TokenBackbone:
    """timm's ``name`` at ``input_size`` (None: its own) as a TokenBackbone; weights as for CNNs."""
    check_timm_name(name)
    meta = _meta_model(name)
    problem = layout_problem(meta) if meta is not None else "timm cannot build it"
    if problem:
        raise WsolbenchError(f"backbone {name}: no usable token layout ({problem})")
    stride = meta.patch_embed.img_size[0] // meta.patch_embed.grid_size[0]
    if output_stride is not None:
        raise WsolbenchError(f"backbone {name} is a vision transformer: its stride is its patch size ({stride}), "
                             f"output_stride={output_stride} does not apply (leave --output-stride out)")
    if input_size is not None and input_size % stride:
        below, above = input_size // stride * stride, (input_size // stride + 1) * stride
        raise WsolbenchError(f"backbone {name}: input size {input_size} is not a multiple of its patch size {stride} "
                             f"(try --input-size {below or above} or {above})")
    kwargs: dict = dict(num_classes=num_classes)
    if input_size is not None:
        kwargs["img_size"] = input_size
    with _quiet_unused_head_keys():
        model = create_timm_model(name, **kwargs, **weight_kwargs(name, pretrained))
    return TokenBackbone(model, name)
