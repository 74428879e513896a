"""The run folder: what a run writes, and how to tell a complete run from a broken one.

    config.json    resolved RunConfig (+ run_id, method config, world size)
    env.json       package versions, commit, device, command line
    steps.jsonl    one line per optimizer step: loss terms, lr, images/s
    epochs.jsonl   one line per epoch: mean loss terms, train accuracy, val numbers
    checkpoint.pt  last checkpoint (tensors and plain data only: torch.load(weights_only=True))
    metrics.json   final numbers; written last, so its presence marks a complete run
    times.json     wall times
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from wsolbench.errors import WsolbenchError

CONFIG, ENV, STEPS, EPOCHS, CHECKPOINT, METRICS, TIMES = (
    "config.json", "env.json", "steps.jsonl", "epochs.jsonl", "checkpoint.pt", "metrics.json", "times.json",
)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise WsolbenchError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WsolbenchError(f"{path}: not valid JSON ({exc})") from None


def resume_point(run_dir: Path) -> Path | None:
    """``run_dir`` when an interrupted run there can be resumed (a checkpoint and its config), else None."""
    return run_dir if (run_dir / CHECKPOINT).exists() and (run_dir / CONFIG).exists() else None


def is_complete(run_dir: Path, run_id: str | None = None) -> bool:
    """A run is complete when its metrics.json parses and belongs to the expected run id."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return run_id is None or metrics.get("run_id") == run_id


def git_commit(start: Path | None = None) -> str:
    """The commit of the source tree wsolbench runs from (``+dirty`` when it has uncommitted changes)."""
    here = Path(start or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device) -> dict:
    import torch

    packages = {}
    for name in ("wsolbench", "torch", "torchvision", "timm", "numpy", "opencv-python-headless", "opencv-python",
                 "typer", "rich", "pandas"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    info = {
        "packages": packages,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "commit": git_commit(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
