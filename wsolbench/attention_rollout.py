"""Attention rollout (Abnar & Zuidema, ACL 2020): how much each token draws on each input token over all blocks.

Per block l the heads are fused (mean by default), the identity is added for the residual connection and
every row is normalised to sum 1: A'_l = norm(fuse(A_l) + I). The rollout is the product from the first
block to the last, R = A'_L ... A'_2 A'_1 (B x N x N); ``rollout_map`` reads the class token's row over the
patch tokens as a B x h x w map. ``discard_ratio`` (as in jacobgil/vit-explain) zeroes that fraction of each
block's lowest fused weights before the identity is added, never the class token's weight to itself.

    t = backbone.forward_tokens(images)  # a TokenBackbone (wsolbench.backbones.vit)
    maps = rollout_map(t.attentions, backbone.num_prefix_tokens, backbone.grid)
"""
from __future__ import annotations

import torch

from wsolbench.errors import WsolbenchError

FUSIONS = ("mean", "max", "min")


def attention_rollout(attentions: list[torch.Tensor], discard_ratio: float = 0.0,
                      head_fusion: str = "mean") -> torch.Tensor:
    """Per-block B x heads x N x N softmax weights -> the B x N x N rollout."""
    if head_fusion not in FUSIONS:
        raise WsolbenchError(f"attention rollout: head_fusion {head_fusion!r} is not one of {', '.join(FUSIONS)}")
    if not 0.0 <= discard_ratio < 1.0:
        raise WsolbenchError(f"attention rollout: discard_ratio must be in [0, 1), not {discard_ratio}")
    if not attentions:
        raise WsolbenchError("attention rollout: no attention weights (a model without blocks?)")
    result = None
    for weights in attentions:
        fused = getattr(weights.float(), {"mean": "mean", "max": "amax", "min": "amin"}[head_fusion])(dim=1)
        n = fused.shape[-1]
        drop = int(n * n * discard_ratio)
        if drop:
            flat = fused.flatten(1)
            lowest = flat.topk(drop, dim=1, largest=False).indices
            keep = torch.ones_like(flat).scatter(1, lowest, 0.0)
            keep[:, 0] = 1.0  # the class token's weight to itself stays
            fused = (flat * keep).view_as(fused)
        step = fused + torch.eye(n, device=fused.device, dtype=fused.dtype)
        step = step / step.sum(dim=-1, keepdim=True)
        result = step if result is None else step @ result
    return result


def rollout_map(attentions: list[torch.Tensor], num_prefix_tokens: int, grid: tuple[int, int],
                discard_ratio: float = 0.0, head_fusion: str = "mean") -> torch.Tensor:
    """The class token's (token 0's) rollout row over the patch tokens, as B x h x w."""
    rollout = attention_rollout(attentions, discard_ratio, head_fusion)
    return rollout[:, 0, num_prefix_tokens:].reshape(rollout.shape[0], *grid)
