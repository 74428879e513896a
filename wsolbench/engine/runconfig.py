"""The resolved configuration of one run, and ``--set key=value`` parsing.

Everything that decides a run's numbers is in ``RunConfig``; its hash names the run folder,
so a grid can skip a run that is already complete with the same resolved config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field

from wsolbench.errors import WsolbenchError

# fields that do not change a run's numbers, left out of its identity (regime: a record of where the
# options came from; the options themselves are in the identity)
NOT_IDENTITY = ("num_workers", "out", "box_search", "score_workers", "regime", "grid_file", "tensorboard")


@dataclass
class RunConfig:
    method: str = "i2c"
    backbone: str = "resnet10t"
    dataset: str = "synthetic"
    data_root: str | None = None
    dataset_options: dict = field(default_factory=dict)  # the reader's keyword arguments, e.g. metadata, class_order
    protocol: str | None = None  # None: the dataset's default protocol
    extra_protocols: list = field(default_factory=list)  # also scored from the same maps: eval-NAME.json
    threshold_policy: str = "val"  # val | test-optimal | fixed:T
    epochs: int = 10
    batch_size: int = 16  # images per optimizer step over all processes (the effective batch)
    images_per_class: int = 2  # class-paired batches: batch_size / images_per_class classes per batch
    lr: float = 0.001  # base rate, as applied (no scaling by world size); groups multiply it
    lr_schedule: str = "cosine"  # cosine | constant
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    seed: int = 0
    input_size: int | None = None  # None: the dataset's default
    resize: int | None = None  # train: resize to this, then random crop input_size; None: input_size * 256 / 224
    pretrained: str | None = None
    output_stride: int | None = None  # timm backbones: dilate the last stages to this stride
    method_settings: dict = field(default_factory=dict)  # --set key=value, the method's typed config
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False
    channels_last: bool = False
    skip_bad: bool = False
    num_workers: int | None = None  # None: on CUDA default_num_workers() (cores - 1, at most 8); on CPU 0
    out: str = "runs"
    box_search: str = "fast"  # fast | reference: how the protocol finds boxes (same numbers; docs/scoring.md)
    score_workers: int | None = None  # processes scoring the boxes; None: the usable cores
    regime: str | None = None  # the backbone family's --pretrained row that set options (backbones/families.py)
    tensorboard: bool = False  # --tensorboard: live event files in RUN_DIR/tensorboard/ (engine/tensorboard.py)
    grid_file: str | None = None  # the grid file (wsolbench run --config) the run came from, if any

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
        return f"{self.method}__{self.backbone.replace('/', '-')}__seed{self.seed}__{digest}"

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def parse_settings(pairs: list[str] | None) -> dict:
    """``["delta=0.6", "use_gc=false"]`` -> ``{"delta": 0.6, "use_gc": False}`` (JSON values, else strings)."""
    settings = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise WsolbenchError(f"--set expects key=value, got '{pair}'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
        settings[key.strip()] = value
    return settings


def coerce_settings(config_cls: type, settings: dict) -> dict:
    """Cast ``settings`` to the field types of the dataclass ``config_cls``; unknown keys are an error."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    out = {}
    for key, value in settings.items():
        if key not in fields:
            raise WsolbenchError(
                f"unknown setting '{key}' for {config_cls.__qualname__} (settings: {', '.join(sorted(fields))})"
            )
        kind = hints.get(key)
        try:
            if kind is bool and not isinstance(value, bool):
                value = {"true": True, "1": True, "false": False, "0": False}[str(value).lower()]
            elif kind is int and not isinstance(value, bool):
                if float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif kind is float:
                value = float(value)
        except (KeyError, ValueError, TypeError):
            raise WsolbenchError(f"setting '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}") from None
        out[key] = value
    return out


def _split_top_level(raw: str) -> list[str]:
    """``"0.1,0.2"`` -> ``["0.1", "0.2"]``; commas inside brackets or quotes stay (``[1,2],[3,4]``)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(raw):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
    return parts + [raw[start:]]


def parse_sweep(pairs: list[str] | None) -> dict[str, list]:
    """``["delta=0.6,0.7", "use_gc=false"]`` -> ``{"delta": [0.6, 0.7], "use_gc": [False]}``.

    Each value as in ``parse_settings``; several keys make a product (``wsolbench.engine.sweep``).
    """
    sweep: dict[str, list] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WsolbenchError(f"--set expects key=value or key=v1,v2,..., got '{pair}'")
        if key in sweep:
            raise WsolbenchError(f"--set {key} is given twice; list its values once: --set {key}=v1,v2")
        if not raw.strip():
            raise WsolbenchError(f"--set {pair}: no value after '=' (give key=value or key=v1,v2,...)")
        pieces = [p.strip() for p in _split_top_level(raw)]
        if not any(pieces):
            raise WsolbenchError(f"--set {pair}: no value in the list, the sweep's product would be empty")
        if not all(pieces):
            raise WsolbenchError(f"--set {pair}: an empty value in the list")
        values = [parse_settings([f"{key}={p}"])[key] for p in pieces]
        sweep[key] = list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in values))
        sweep[key] = [json.loads(v) for v in sweep[key]]  # duplicates once, in the order given
    return sweep
