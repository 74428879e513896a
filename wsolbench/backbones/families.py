"""Per-family settings for fine-tuning ImageNet weights (``--pretrained``), applied where the user set nothing.

    apply_family_regime(cfg, given={"lr"})   # cfg with the family's input size / stride filled in, lr kept

A pretrained network's features need images near the scale they were trained at and its kernels at
the dilation they were trained at: the 64 px, output-stride-8 setting that suits random init on the
synthetic set puts EfficientNet-Lite0's stride-32 5x5 kernels, dilated x4, on an 8 x 8 map that is
mostly padding. Each row was chosen on VAL numbers of short cam runs (docs/pretrained.md), never on
test numbers; methods keep their own settings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from wsolbench.backbones import TIMM_PREFIX


@dataclass(frozen=True)
class Regime:
    name: str
    min_input_size: int  # the network input is at least this (small images are upsampled to it)
    output_stride: int | None  # None: the model's own stride
    max_lr: float | None = None  # the base rate is at most this (a paper's lower rate stays); None: no cap


# (backbone name prefixes, regime); the first row whose prefix matches applies
FAMILIES: list[tuple[tuple[str, ...], Regime]] = [
    # the packaged ImageNet weights (`wsolbench weights efficientnet-lite0`): 128 px, stride 16 (an 8 x 8 map),
    # lr at most 0.003 (12-epoch cam runs on the synthetic set, val: 0.01 wiped the features, 0.001 lagged)
    # Only the TF ports: timm's efficientnet_lite* is another model for these weights (docs/pretrained.md).
    (("tf_efficientnet_lite",), Regime("tf-efficientnet-lite-pretrained", 128, 16, 0.003)),
]


def family_regime(backbone: str) -> Regime | None:
    name = backbone[len(TIMM_PREFIX):] if backbone.startswith(TIMM_PREFIX) else backbone
    return next((regime for prefixes, regime in FAMILIES if name.startswith(prefixes)), None)


def apply_family_regime(cfg, given: set[str]):
    """``cfg`` (a RunConfig) with its backbone family's regime where it fine-tunes weights, for each option
    the user did not give; ``cfg.regime`` names the row applied (None: nothing changed)."""
    # fine-tuning only: --epochs 0 scores the weights as they are (wsolbench.zeroshot)
    regime = family_regime(cfg.backbone) if cfg.pretrained and cfg.epochs > 0 else None
    if regime is None:
        return cfg
    changes = {}
    if "input_size" not in given:
        if cfg.input_size is not None and cfg.input_size < regime.min_input_size:  # None: the dataset's own
            changes["input_size"] = regime.min_input_size
    if "output_stride" not in given and cfg.output_stride != regime.output_stride:
        changes["output_stride"] = regime.output_stride
    if "lr" not in given and regime.max_lr is not None and cfg.lr > regime.max_lr:
        changes["lr"] = regime.max_lr
    if not changes:
        return cfg
    return dataclasses.replace(cfg, **changes, regime=regime.name)
