"""TensorBoard event files of a run, written live during training (``wsolbench run --tensorboard``).

    board = RunBoard(run_dir, purge_step=global_step + 1)   # RUN_DIR/tensorboard/
    board.step(record, optimizer)                            # per optimizer step: loss/*, lr/*
    board.epoch(epoch_record, run)                           # per epoch: val/*, train/*, images/val
    board.close()

Tags and their step axis:

- ``loss/<term>``: the steps.jsonl record's total ``loss`` and every named term (``cls``, ``sc``, ``gc``, ...),
  at the record's ``global_step`` (optimizer steps done, from 1);
- ``lr/<group name>``: each optimizer parameter group's learning rate used for that step, same step;
- ``val/<measure>``: every number of the epoch record's ``val`` dict (val at val's best threshold:
  ``top1_cls``, ``gt_known_loc``, ``threshold``, ...), at the EPOCH NUMBER counted from 1 (epochs.jsonl's
  ``epoch`` + 1: the number of epochs done, as the console's "epoch N" line);
- ``train/<measure>``: the epoch's mean loss terms and train accuracy (``train/top1_cls``), same epoch number;
- ``images/val``: the first ``N_IMAGES`` val images with the map of the true class, the ground truth (green)
  and the predicted box (red) at the epoch's val-optimal threshold, drawn by ``wsolbench.pictures``; same
  epoch number.

Only rank 0 writes. A resumed run appends a new event file to the same folder; its ``purge_step`` (the first
step the run will log again) hides the steps the interrupted run logged after its checkpoint, so TensorBoard
shows every step once. Epoch numbers never reach the purge step (a run has at least one step per epoch).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wsolbench.errors import WsolbenchError

SUBDIR = "tensorboard"  # RUN_DIR/tensorboard/
N_IMAGES = 4  # val images drawn per epoch
FLUSH_SECS = 10  # live: a watching TensorBoard sees a step within seconds (the default is two minutes)
MISSING = "--tensorboard needs the tensorboard package: pip install 'wsolbench[tensorboard]'"
STEP_META = {"epoch", "step", "global_step", "lr", "images_per_s"}  # steps.jsonl fields that are not loss terms


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or the one-line error when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise WsolbenchError(MISSING) from None
    return SummaryWriter


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RunBoard:
    """A ``SummaryWriter`` on ``run_dir/tensorboard``; ``purge_step``: the first global step this process logs."""

    def __init__(self, run_dir: str | Path, purge_step: int = 1):
        writer_class = summary_writer_class()
        self.log_dir = Path(run_dir) / SUBDIR
        self.writer = writer_class(log_dir=str(self.log_dir), purge_step=purge_step, flush_secs=FLUSH_SECS)

    def step(self, record: dict, optimizer) -> None:
        """One steps.jsonl record: its loss terms, and the rate of each of ``optimizer``'s parameter groups."""
        step = int(record["global_step"])
        for key, value in record.items():
            if key not in STEP_META and _number(value):
                self.writer.add_scalar(f"loss/{key}", value, step)
        for i, group in enumerate(optimizer.param_groups if optimizer is not None else ()):
            self.writer.add_scalar(f"lr/{group.get('name', str(i))}", group["lr"], step)

    def epoch(self, record: dict, run=None) -> None:
        """One epochs.jsonl record (``val/*``, ``train/*``) and, given the engine's ``run``, the val images."""
        n = int(record["epoch"]) + 1
        for key, value in record.get("val", {}).items():
            if _number(value):
                self.writer.add_scalar(f"val/{key}", value, n)
        for key, value in record.items():
            if key.startswith("train_") and _number(value):
                self.writer.add_scalar(f"train/{key[len('train_'):]}", value, n)
        if run is not None and "threshold" in record.get("val", {}):
            self.writer.add_image("images/val", val_images(run, float(record["val"]["threshold"]), n), n,
                                  dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def val_images(run, threshold: float, epoch_number: int) -> np.ndarray:
    """The first ``N_IMAGES`` val images of the engine's ``run`` as one RGB strip (H, W, 3) uint8: the true
    class's map, ground truth and predicted box at ``threshold``, as ``wsolbench show`` draws them.

    One forward pass over those images in eval mode, without a DataLoader: no draw from the random
    generators, so the run's numbers are those of a run without ``--tensorboard``.
    """
    from wsolbench import pictures as P
    from wsolbench.engine.evaluate import predict

    setup, cfg = run.setup, run.cfg
    samples = setup.splits["val"][:N_IMAGES]
    batch = torch.utils.data.default_collate([run.eval_sets["val"][i] for i in range(len(samples))])
    with torch.inference_mode():
        maps, top, _, _ = next(predict(run.method, [batch], run.device, cfg.amp, cfg.channels_last))
    tiles = [P.make_tile(setup.protocol, s, maps[k], int(top[k, 0]) if top is not None else None, threshold)
             for k, s in enumerate(samples)]
    fig = P._figure(len(tiles) * P.TILE_INCHES[0], P.TILE_INCHES[1] + P.HEADER_INCHES)
    for ax, tile in zip(fig.subplots(1, len(tiles), squeeze=False)[0], tiles):
        P.draw_tile(ax, tile, list(setup.dataset.class_names))
    fig.suptitle(f"epoch {epoch_number}, val: map of the true class; green ground truth, red predicted box "
                 f"(threshold {threshold:g}, val's best)", fontsize=8)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
