"""Does a method's map depend on the image? The share of map variance a fixed positional pattern explains.

Each map is min-max normalised and resized to a common ``GRID`` x ``GRID`` grid (M_i). Over N images,
with the mean map P = mean_i M_i and the grand mean m:

    positional_share = N * ||P - m||^2 / sum_i ||M_i - m||^2        (in [0, 1])

the R^2 of predicting every map by the same picture. Maps that follow the object score near 0 where
objects sit anywhere; a grid of blobs that is the same whatever the image scores near 1 (a fixed-map
baseline scores 1 by construction). Above ``THRESHOLD`` the run is flagged: its boxes come from
where the map always is, not from what the image shows. Maps without any spread (constant maps)
add nothing; with none at all the share is None.

Streaming: ``update`` per batch keeps the sum of maps and of squares (float64), ``sync`` sums them over
ranks, so every rank's shard counts once.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

GRID = 16
THRESHOLD = 0.5  # see docs/pretrained.md: image-following maps on the synthetic set measure well below it


class PositionalCheck:
    def __init__(self, grid: int = GRID):
        self.grid = grid
        self.n = 0
        self.sum = np.zeros((grid, grid), dtype=np.float64)
        self.sum_sq = 0.0

    def update(self, maps: np.ndarray) -> None:
        """``maps``: B x h x w raw maps (any range, any h x w)."""
        x = torch.as_tensor(np.asarray(maps, dtype=np.float32))[:, None]
        x = F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False)[:, 0].double()
        low = x.amin(dim=(1, 2), keepdim=True)
        span = x.amax(dim=(1, 2), keepdim=True) - low
        keep = span.flatten() > 1e-12  # a constant map has no shape to compare
        x = ((x - low) / span.clamp_min(1e-12))[keep]
        self.n += int(x.shape[0])
        self.sum += x.sum(0).numpy()
        self.sum_sq += float((x * x).sum())

    def sync(self) -> None:
        from wsolbench.engine import distributed as D

        packed = torch.tensor([self.n, self.sum_sq, *self.sum.ravel()], dtype=torch.float64)
        D.all_reduce_sum_(packed)
        self.n, self.sum_sq = int(packed[0]), float(packed[1])
        self.sum = packed[2:].numpy().reshape(self.grid, self.grid)

    def share(self) -> float | None:
        if self.n == 0:
            return None
        cells = self.grid * self.grid
        grand = self.sum.sum() / (self.n * cells)
        total = self.sum_sq - self.n * cells * grand**2  # sum_i ||M_i - m||^2
        mean_map = self.sum / self.n
        explained = self.n * float(((mean_map - grand) ** 2).sum())
        return float(min(max(explained / total, 0.0), 1.0)) if total > 1e-12 else None

    def summary(self) -> dict:
        """The figures a run's metrics carry."""
        share = self.share()
        return {"positional_share": share, "positional_flag": share is not None and share > THRESHOLD,
                "positional_n": self.n}


def warning(share: float | None) -> str | None:
    """The line printed under a run whose maps are dominated by a fixed pattern, else None."""
    if share is None or share <= THRESHOLD:
        return None
    return (f"warning: {100 * share:.0f}% of the test maps' variance is one fixed positional pattern "
            f"(threshold {100 * THRESHOLD:.0f}%): the maps barely depend on the image")
