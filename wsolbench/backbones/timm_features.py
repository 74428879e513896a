"""Any timm CNN as a backbone: the last stage of timm's feature extractor (``features_only=True``)."""
from __future__ import annotations

import contextlib
import difflib
import logging
from pathlib import Path

import timm
import torch
from torch import nn

from wsolbench.backbones.weights import check_fit, read_state_dict, shapes
from wsolbench.errors import WsolbenchError

# Transformer and MLP families, left out of the CNN listing by name (no model is built to tell).
# build_backbone still takes them where timm gives a spatial map.
NON_CNN_PREFIXES = (
    "aimv2", "beit", "cait", "coat_", "convit", "crossvit", "davit", "deepseek", "deit", "eva", "flexivit",
    "focalnet", "gcvit", "gemma", "gmixer", "gmlp", "hiera", "levit", "mixer", "mvitv2", "naflexvit", "nest_",
    "pit_", "pvt_v2", "qwen", "resmlp", "sam", "sequencer", "swin", "test_vit", "tiny_vit", "tnt", "twins",
    "vit", "volo", "xcit",
)


# what wsolbench's loaders feed every backbone (wsolbench.data.loading.to_tensor)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetInput(nn.Module):
    """Base of the timm backbones: images arrive ImageNet-normalised; a model whose weights expect another
    normalisation (timm's ``pretrained_cfg`` mean/std, e.g. 0.5/0.5 for the TF ports) gets them re-normalised."""

    def _init_input(self, pretrained_cfg: dict | None) -> None:
        cfg = pretrained_cfg or {}
        mean, std = tuple(cfg.get("mean") or IMAGENET_MEAN), tuple(cfg.get("std") or IMAGENET_STD)
        self.renormalise = (mean, std) != (IMAGENET_MEAN, IMAGENET_STD)
        if self.renormalise:  # x_model = (x * std_in + mean_in - mean) / std; not saved: derived from the name
            scale = torch.tensor(IMAGENET_STD) / torch.tensor(std)
            shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(mean)) / torch.tensor(std)
            self.register_buffer("input_scale", scale.view(1, 3, 1, 1), persistent=False)
            self.register_buffer("input_shift", shift.view(1, 3, 1, 1), persistent=False)

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """The images as the model's weights expect them (what its own forward is fed)."""
        return x * self.input_scale + self.input_shift if self.renormalise else x


class TimmLastStage(ImageNetInput):
    """Images B x 3 x H x W -> the last feature stage B x out_channels x H/reduction x W/reduction."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features  # timm's feature extractor, out_indices=(-1,)
        self._init_input(getattr(features, "pretrained_cfg", None))
        self.out_channels: int = features.feature_info.channels()[-1]
        self.reduction: int = features.feature_info.reduction()[-1]
        # swin-like models hand out channels-last maps; this flag turns them to B x C x H x W
        self.channels_last = str(getattr(features, "output_fmt", "NCHW")).endswith("NHWC")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(self.model_input(x))[-1]
        return out.permute(0, 3, 1, 2) if self.channels_last else out


def list_timm_backbones(pattern: str = "*") -> list[str]:
    """timm model names matching the shell-style ``pattern`` that serve as CNN feature extractors."""
    return [n for n in timm.list_models(pattern) if not n.startswith(NON_CNN_PREFIXES)]


def check_timm_name(name: str) -> None:
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; close timm names: {', '.join(close)}" if close else ""
    raise WsolbenchError(f"unknown backbone '{name}': not registered and not a timm model{hint}")


def build_timm_backbone(
    name: str, pretrained: str | Path | None = None, output_stride: int | None = None
) -> TimmLastStage:
    """timm's ``name`` cut to its last feature stage; weights: random, a local file, or ``"hub"`` (downloads)."""
    check_timm_name(name)
    kwargs: dict = dict(features_only=True, out_indices=(-1,))
    if output_stride is not None:
        kwargs["output_stride"] = output_stride
    with _quiet_unused_head_keys():
        features = create_timm_model(name, **kwargs, **weight_kwargs(name, pretrained))
    return TimmLastStage(features)


def weight_kwargs(name: str, pretrained: str | Path | None) -> dict:
    """``timm.create_model``'s weight options for random init (None), a local file (checked against the model
    first) or ``"hub"`` (the only route to the network)."""
    if pretrained is None or pretrained == "hub":
        return dict(pretrained=pretrained == "hub")
    check_file_fits(name, Path(pretrained))
    # timm reads the file itself (applying its key filters); the overlay names the file as the only source
    return dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained), source=None))


@contextlib.contextmanager
def _quiet_unused_head_keys():
    """timm warns "Unexpected keys" for the layers after the last feature stage (head, classifier), which a
    feature extractor does not have; the file was checked against the whole model above, so that is expected."""
    logger = logging.getLogger("timm.models._builder")
    drop = lambda record: not record.getMessage().startswith("Unexpected keys")  # noqa: E731
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def create_timm_model(name: str, **kwargs) -> nn.Module:
    """``timm.create_model`` with its failures (an unsupported option, no hub access) as one-line errors."""
    try:
        return timm.create_model(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - timm raises many kinds; reported as one line
        detail = (str(exc).strip().splitlines() or [""])[0]
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        options = [f"output_stride={kwargs['output_stride']}"] if kwargs.get("output_stride") else []
        if kwargs.get("pretrained"):
            options.append(f"weights {(kwargs.get('pretrained_cfg_overlay') or {}).get('file') or 'from the hub'}")
        with_options = f" with {', '.join(options)}" if options else ""
        raise WsolbenchError(f"timm could not build '{name}'{with_options} ({reason})") from None


def check_file_fits(name: str, path: Path) -> None:
    """Check a local file against the full timm model, since timm loads a feature extractor
    non-strictly and would leave missing tensors randomly initialised without a word."""
    state = read_state_dict(path)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        full = timm.create_model(name)
    classifier = full.pretrained_cfg.get("classifier") or ()
    heads = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
    expected = {k: v for k, v in shapes(full).items() if not k.startswith(heads)}
    check_fit(expected, state, path, name, droppable=lambda key: key.startswith(heads))
