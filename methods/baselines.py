"""Map-free baselines: fixed maps that ignore the image, as floors for the localization metrics.

They have no backbone, no parameters and no logits (``needs_backbone = False``); the engine
skips training and the classification metrics for them. ``maps`` returns the same
``RESOLUTION`` x ``RESOLUTION`` map for every image and class; the protocol resizes it to
the image, so its boxes follow the image's aspect ratio.

- ``center-box``: a centred Gaussian (sigma = half the half-width). Its thresholded region is a
  centred square-ish blob whose size falls as the threshold rises, so the protocol's threshold
  search picks the best centred box size.
- ``full-image``: ones with a single zero in the top-left pixel. A constant map would become all
  zeros under min-max normalisation (no box at any threshold); with one zero pixel every other
  pixel normalises to 1, so every threshold below 1 keeps a region whose bounding box is the
  whole image (the first row and column still reach the zero pixel's row and column).
"""
from __future__ import annotations

import torch

from wsolbench.methods.base import Method, MethodOutput, register_method

RESOLUTION = 28


class FixedMapBaseline(Method):
    needs_backbone = False

    def __init__(self, backbone=None, num_classes: int = 0, **config):
        super().__init__(None, num_classes, **config)  # any backbone given is ignored

    def template(self) -> torch.Tensor:
        """The RESOLUTION x RESOLUTION map shown for every image and class."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> MethodOutput:
        return MethodOutput(logits=None, cams=None)

    def maps(self, out: MethodOutput, classes: torch.Tensor) -> torch.Tensor:
        batch, k = classes.shape
        return self.template().to(classes.device).expand(batch, k, -1, -1).clone()


@register_method("center-box", description="Baseline: a centred Gaussian map (best centred box size)")
class CenterBox(FixedMapBaseline):
    sigma = 0.5  # in units of the image's half-width/half-height

    def template(self) -> torch.Tensor:
        axis = (torch.arange(RESOLUTION) + 0.5) / RESOLUTION * 2 - 1  # pixel centres in (-1, 1)
        r2 = axis[:, None] ** 2 + axis[None, :] ** 2
        return torch.exp(-r2 / (2 * self.sigma**2))


@register_method("full-image", description="Baseline: the whole image as the box at every threshold")
class FullImage(FixedMapBaseline):
    def template(self) -> torch.Tensor:
        grid = torch.ones(RESOLUTION, RESOLUTION)
        grid[0, 0] = 0.0  # one low pixel so min-max normalisation keeps the rest at 1
        return grid
