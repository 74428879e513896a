"""Hide-and-Seek (Singh & Lee, ICCV 2017): hide random grid cells of each training image; CAM at test.

In training mode with labels, the input is split into ``grid`` x ``grid`` cells and each cell is
hidden with probability ``drop_rate`` (a fresh draw per image and step). Hidden pixels take the
dataset mean: the loader normalises images by the ImageNet mean and std, so the mean is 0 in the
network's input space. At eval (or without labels) the image is untouched and the model is CAM.

Departure from wsolevaluation's code: there ``has_grid_size`` (default 4) steps over the image in
pixels (4 x 4-pixel patches); here ``grid`` counts cells per side, as the paper's grid and
DESIGN.md section 10 describe it. ``--set grid=N`` changes it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import MethodOutput, register_method
from wsolbench.methods.cam import CAM, CAMConfig


@dataclass
class HaSConfig(CAMConfig):
    grid: int = 4  # cells per side
    drop_rate: float = 0.5  # probability that a cell is hidden

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise WsolbenchError(f"has: grid must be a positive integer, not {self.grid}")
        if not 0.0 <= self.drop_rate <= 1.0:
            raise WsolbenchError(f"has: drop_rate must be in [0, 1], not {self.drop_rate}")


def hide_cells(images: torch.Tensor, grid: int, drop_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(images with hidden cells set to 0, the B x grid x grid keep mask). Pixel row r is in cell r * grid // H."""
    b, _, h, w = images.shape
    keep = (torch.rand(b, 1, grid, grid, device=images.device) >= drop_rate).to(images.dtype)
    return images * F.interpolate(keep, size=(h, w), mode="nearest"), keep[:, 0]


@register_method("has", description="Hide-and-Seek: random grid cells hidden in training (grid 4, drop 0.5); CAM")
class HaS(CAM):
    Config = HaSConfig

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        if self.training and labels is not None:
            images, _ = hide_cells(images, self.cfg.grid, self.cfg.drop_rate)
        return super().forward(images, labels)
