"""A finished run rebuilt from its folder by the engine, and its maps as ``wsolbench.pictures`` draws them.

    run = load_run(RUN_DIR)                   # config.json + metrics.json + checkpoint.pt -> the model, data, protocol
    tiles = make_tiles(run, "test", indices)  # map, ground truth and predicted box per image (pictures.Tile)

Kept apart from the drawing (``pictures.py``), which the engine itself uses for live TensorBoard images: the
engine imports the drawing, this module imports the engine, and nothing goes round in a circle.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsolbench.engine import rundir as R
from wsolbench.errors import WsolbenchError
from wsolbench.pictures import Tile, make_tile


@dataclass
class LoadedRun:
    """A finished run rebuilt from its folder: the engine's Setup with the trained weights loaded."""

    run_dir: Path
    config: dict  # config.json
    metrics: dict  # metrics.json
    setup: object  # wsolbench.engine.train.Setup
    input_size: int  # what the network saw at test time

    @property
    def protocol(self):
        return self.setup.protocol

    @property
    def threshold(self) -> float:
        return float(self.metrics["threshold"])

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.get('method')} / {c.get('backbone')} / seed {c.get('seed')}"

    @property
    def class_names(self) -> list[str]:
        return list(self.setup.dataset.class_names)

    def samples(self, split: str) -> list:
        check_split(split)
        return list(self.setup.splits[split])


def check_split(split: str) -> str:
    if split not in ("train", "val", "test"):
        raise WsolbenchError(f"--split {split}: unknown split (use test, val or train)")
    return split


def read_finished_run(run_dir: str | Path) -> tuple[dict, dict]:
    """(config.json, metrics.json) of a complete run; a missing folder/file or an unfinished run is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise WsolbenchError(f"{run_dir}: no such run folder")
    config = R.read_json(run_dir / R.CONFIG)
    metrics_path = run_dir / R.METRICS
    if not metrics_path.is_file():
        raise WsolbenchError(f"{metrics_path}: missing, the run is unfinished "
                             f"(continue it with: wsolbench run --resume {run_dir})")
    metrics = R.read_json(metrics_path)
    if metrics.get("run_id") != config.get("run_id"):
        raise WsolbenchError(f"{metrics_path}: belongs to run {metrics.get('run_id')}, not {config.get('run_id')} "
                             f"(an unfinished rerun?)")
    for key in ("protocol", "threshold", "curves"):
        if key not in metrics:
            raise WsolbenchError(f"{metrics_path}: no '{key}' entry")
    return config, metrics


def load_run(run_dir: str | Path, device: str = "auto", log=lambda *a, **k: None) -> LoadedRun:
    """Rebuild a finished run's method, dataset and protocol with the engine and load its checkpoint."""
    from wsolbench.engine.distributed import DistInfo
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.reeval import load_weights
    from wsolbench.engine.train import build, resolve_device

    run_dir = Path(run_dir)
    config, metrics = read_finished_run(run_dir)
    cfg = RunConfig.from_dict(config)
    # the protocol metrics.json was scored with; extra protocols are not drawn
    cfg = dataclasses.replace(cfg, device=device, protocol=metrics["protocol"], extra_protocols=[])
    setup = build(cfg, resolve_device(device), DistInfo(), log=log)
    if metrics.get("box_rule", setup.protocol.box_rule) != setup.protocol.box_rule:
        raise WsolbenchError(f"{run_dir / R.METRICS}: box rule {metrics['box_rule']} differs from protocol "
                             f"{setup.protocol.name}'s ({setup.protocol.box_rule})")
    load_weights(setup.method, Path(run_dir) / R.CHECKPOINT, cfg)
    return LoadedRun(run_dir, config, metrics, setup, int(config.get("resolved_input_size") or setup.input_size))


def run_maps(run: LoadedRun, split: str, indices: list[int]) -> dict[int, tuple[np.ndarray, int | None]]:
    """{index: (raw map of the true class, top-1 class or None)} for ``indices`` of ``split``, as the engine
    evaluates; the raw maps do not depend on the protocol, so one pass serves every protocol's tiles."""
    from wsolbench.data.loading import ImageDataset, test_transform
    from wsolbench.engine.evaluate import make_loader, predict

    cfg = run.setup.cfg
    dataset = ImageDataset(run.samples(split), test_transform(run.input_size))
    loader = make_loader(dataset, list(indices), max(cfg.batch_size, 1), 0)
    out = {}
    for maps, top, _, positions in predict(run.setup.method, loader, run.setup.device, cfg.amp, cfg.channels_last):
        for k, i in enumerate(positions.tolist()):
            out[i] = (maps[k], int(top[k, 0]) if top is not None else None)
    return out


def make_tiles(run: LoadedRun, split: str, indices: list[int]) -> list[Tile]:
    """Run the trained method over ``indices`` of ``split`` (as the engine evaluates) and build their tiles."""
    samples = run.samples(split)
    maps = run_maps(run, split, indices)
    return [make_tile(run.protocol, samples[i], *maps[i], run.threshold) for i in indices]
