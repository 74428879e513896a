"""Local weight files: read one, check it fits a backbone, load it; every failure is one WsolbenchError line.

Fit rule: every tensor the backbone has must be in the file with the same shape, and the file may hold
nothing else except the parts the backbone leaves out of the full model (its classifier, a paper
backbone's removed stages). BatchNorm's ``num_batches_tracked`` may be absent (old torchvision files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from wsolbench.errors import WsolbenchError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .pth/.pt/.bin (torch.save) or .safetensors file, unwrapped like timm does
    (``state_dict``/``model`` entries, ``module.`` prefixes); never unpickles arbitrary objects."""
    from timm.models import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise WsolbenchError(f"weights file {path} does not exist")
    try:
        state = load_state_dict(str(path), use_ema=False)
    except Exception as exc:  # noqa: BLE001 - torch/safetensors raise many kinds; reported as one line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WsolbenchError(f"weights file {path} cannot be read ({type(exc).__name__}: {reason})") from None
    if not isinstance(state, Mapping) or not state:
        raise WsolbenchError(f"weights file {path} holds no state dict (name -> tensor)")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WsolbenchError(f"weights file {path} is not a state dict: entry '{key}' is not a tensor")
    return dict(state)


def fit_problems(
    expected: Mapping[str, torch.Size],
    state: Mapping[str, torch.Tensor],
    droppable: Callable[[str], bool] = lambda key: False,
) -> list[str]:
    """What stops ``state`` loading into a module whose tensor shapes are ``expected``, in model order."""
    problems = []
    for key, shape in expected.items():
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                problems.append(f"missing {key}")
        elif state[key].shape != shape:
            problems.append(f"{key} has shape {_shape(state[key].shape)}, the backbone needs {_shape(shape)}")
    problems += [f"unexpected {key}" for key in state if key not in expected and not droppable(key)]
    return problems


def check_fit(
    expected: Mapping[str, torch.Size],
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    name: str,
    droppable: Callable[[str], bool] = lambda key: False,
) -> None:
    problems = fit_problems(expected, state, droppable)
    if problems:
        more = f", {len(problems) - 1} more" if len(problems) > 1 else ""
        raise WsolbenchError(f"{path} does not fit backbone {name}: {problems[0]}{more}")


def load_checked(module: nn.Module, path: str | Path, name: str, droppable: Callable[[str], bool]) -> None:
    """Load the file into ``module`` (whose keys are the file's keys), after checking it fits."""
    state = read_state_dict(path)
    expected = shapes(module)
    check_fit(expected, state, path, name, droppable)
    module.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)


def shapes(module: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


def _shape(size: torch.Size) -> str:
    return "x".join(map(str, size)) or "scalar"


def remap_by_order(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Size], source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Rename a foreign state dict's tensors to ``target``'s keys, pairing them in order.

    For checkpoints of the same architecture under other names (e.g. a port's ``_conv_stem`` for timm's
    ``conv_stem``); every pair must have the same shape, or the two are not the same architecture.
    """
    if len(state) != len(target):
        raise WsolbenchError(f"{source} has {len(state)} tensors, the target has {len(target)}: not the same model")
    for (key, value), (new_key, shape) in zip(state.items(), target.items()):
        if value.shape != shape:
            raise WsolbenchError(
                f"{source}: {key} ({_shape(value.shape)}) does not pair with {new_key} ({_shape(shape)})"
            )
    return {new_key: value for new_key, value in zip(target, state.values())}
