"""I2C's pure loss functions (Zhang et al., ECCV 2020), each testable on its own.

Shapes: maps B x h x w (the true class's map), features B x D x h x w, seeds B x K x D,
labels B, valid B (the image has seeds), bank C x D, counts C.

- ``select_seeds``: positions strictly above ``delta`` in the min-max normalised map. "random"
  draws K of them without replacement when there are >= K and with replacement from what there
  is when fewer; "raster" takes the first K in row-major order and, when fewer, cycles through
  them. A constant map normalises to zeros and gives no seeds (``valid`` False); with delta in
  [0, 1) any other map has at least its maximum above delta. Draws use torch's global RNG.
- ``sc_loss`` (Eq. 1): every same-class pair (i < j) of valid images, seeds matched by index k,
  ``1/K sum_k d(v_i^k, v_j^k)``, averaged over pairs.
- ``gc_loss`` (Eq. 3): mean over classes present in the batch of ``d(a^y, w^y)``.
- ``momentum_update`` (Eq. 4-5): ``w <- (1 - eta) w + eta a``, ``eta = exp(-alpha t)``, ``t`` the
  class's update count before this update (the first visit copies ``a``).

``d`` is the squared Euclidean distance (paper) or the un-squared one via ``F.pairwise_distance``
(reference code; its eps=1e-6 keeps the gradient finite when two vectors coincide).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SEED_ORDERS = ("random", "raster")
DISTANCES = ("squared", "euclidean")


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each B x h x w map to [0, 1]; a constant map becomes zeros (no NaN)."""
    maps = maps.float()
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    flat = span > 0
    return (maps - low) / torch.where(flat, span, torch.ones_like(span)) * flat


def select_seeds(maps: torch.Tensor, k: int, delta: float, order: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
    """K flat positions (B x K, into h*w) per map and ``valid`` (B,): the map has any seed."""
    flat = normalize_maps(maps).flatten(1)
    above = flat > delta
    count = above.sum(1)
    n = flat.shape[1]
    if order == "random":
        key = torch.rand(flat.shape, device=flat.device) + 2.0 * (~above)  # above-delta first, shuffled
    elif order == "raster":
        key = torch.arange(n, device=flat.device).expand_as(flat) + n * (~above)  # above-delta first, in order
    else:
        raise ValueError(f"seed order must be one of {SEED_ORDERS}, not {order!r}")
    ranked = key.argsort(dim=1)
    slots = torch.arange(k, device=flat.device).expand(flat.shape[0], k)
    have = count.clamp(min=1)[:, None]
    if order == "random":
        fill = (torch.rand(slots.shape, device=flat.device) * have).long().clamp(max=have - 1)
    else:
        fill = slots % have
    slots = torch.where(count[:, None] < k, fill, slots)
    return ranked.gather(1, slots), count > 0


def gather_seeds(features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Seed vectors B x K x D from the feature map at the flat ``positions`` (keeps the gradient)."""
    # advanced indexing on (row, column) rather than flatten(2): no copy of a channels_last map
    rows = torch.arange(features.shape[0], device=features.device)[:, None]
    width = features.shape[-1]
    return features[rows, :, positions // width, positions % width]


def distance(x: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Distance over the last dimension."""
    if mode == "squared":
        return (x - y).pow(2).sum(-1)
    if mode == "euclidean":
        return F.pairwise_distance(x, y)
    raise ValueError(f"distance must be one of {DISTANCES}, not {mode!r}")


def sc_loss(seeds: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, mode: str = "squared") -> torch.Tensor:
    """Eq. 1 averaged over same-class pairs; 0 (attached to the graph) when there is no pair."""
    same = (labels[:, None] == labels[None, :]) & valid[:, None] & valid[None, :]
    i, j = torch.triu(same, diagonal=1).nonzero(as_tuple=True)
    if i.numel() == 0:
        return seeds.sum() * 0.0
    return distance(seeds[i], seeds[j], mode).mean()  # mean over pairs and over k


def class_seed_sums(
    seeds: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sum of seed vectors (C x D, with gradient) and their number (C, float)."""
    weight = valid.to(seeds.dtype)
    sums = seeds.new_zeros(num_classes, seeds.shape[-1]).index_add(0, labels, seeds.sum(1) * weight[:, None])
    counts = seeds.new_zeros(num_classes).index_add(0, labels, weight * seeds.shape[1])
    return sums, counts


def class_means(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """a^y (Eq. 2); zeros for absent classes."""
    return sums / counts.clamp(min=1)[:, None]


def gc_loss(means: torch.Tensor, centers: torch.Tensor, present: torch.Tensor, mode: str = "squared") -> torch.Tensor:
    """Eq. 3: mean over present classes of d(a^y, w^y); 0 (attached) when no class is present."""
    d = distance(means, centers, mode) * present
    return d.sum() / present.sum().clamp(min=1)


@torch.no_grad()
def momentum_update(
    centers: torch.Tensor, updates: torch.Tensor, means: torch.Tensor, present: torch.Tensor, alpha: float
) -> None:
    """In place: the present classes' centers move toward ``means`` and their counters go up by one."""
    eta = torch.exp(-alpha * updates.to(centers.dtype))[:, None]
    moved = (1 - eta) * centers + eta * means.to(centers.dtype)
    centers.copy_(torch.where(present[:, None], moved, centers))
    updates.add_(present.long())


def scale_gradient(x: torch.Tensor, scale) -> torch.Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``scale`` in the backward pass."""
    return x.detach() + (x - x.detach()) * scale
