"""Accumulator of one split, in the torchmetrics style: update per batch, merge, sync, state_dict.

Every state is a counter or a histogram (``STATE_REDUCTIONS`` declares each one's reduction: a sum), so memory
does not grow with the number of images and a distributed all-reduce is generic:

- ``n_images``; ``gt_known`` (I x T): maps whose box reaches IoU iou_thresholds[i] at thresholds[t];
- ``n_labeled``, ``top1_cls``, ``top5_cls``; ``top1_loc`` / ``top5_loc`` (T): class right and box at IoU 0.5;
- ``n_masks``, ``mask_pos_hist`` / ``mask_neg_hist`` (T + 2): map values of object / background pixels over
  the bin edges [thresholds..., 1, 2, 3] (wsolevaluation's PxAP).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wsolbench.errors import WsolbenchError

if TYPE_CHECKING:
    from wsolbench.protocols.presets import Protocol

STATE_REDUCTIONS = {
    "n_images": "sum", "gt_known": "sum",
    "n_labeled": "sum", "top1_cls": "sum", "top5_cls": "sum", "top1_loc": "sum", "top5_loc": "sum",
    "n_masks": "sum", "mask_pos_hist": "sum", "mask_neg_hist": "sum",
}


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


class LocalizationAccumulator:
    """Counts for one split under one protocol; ``Protocol.summarize`` turns them into numbers."""

    def __init__(self, protocol: "Protocol"):
        self.protocol = protocol
        self.thresholds = protocol.thresholds
        self.iou_thresholds = protocol.iou_thresholds
        self.reset()

    def reset(self) -> None:
        n_t, n_i = len(self.thresholds), len(self.iou_thresholds)
        z = lambda *shape, dtype=torch.int64: torch.zeros(shape, dtype=dtype)  # noqa: E731
        self.states: dict[str, torch.Tensor] = {
            "n_images": z(), "gt_known": z(n_i, n_t),
            "n_labeled": z(), "top1_cls": z(), "top5_cls": z(), "top1_loc": z(n_t), "top5_loc": z(n_t),
            "n_masks": z(), "mask_pos_hist": z(n_t + 2, dtype=torch.float64), "mask_neg_hist": z(n_t + 2, dtype=torch.float64),
        }

    def __getattr__(self, name: str):
        states = self.__dict__.get("states", {})
        if name in states:
            return states[name]
        raise AttributeError(name)

    # --- one batch -------------------------------------------------------------------------------
    def update(self, maps, image_sizes, boxes, labels=None, top5=None, top5_maps=None, masks=None) -> None:
        """Add a batch; see ``wsolbench.protocols.presets`` for the argument shapes."""
        maps = _numpy(maps)
        sizes = _numpy(image_sizes).astype(np.int64)
        if maps.ndim != 3:
            raise WsolbenchError(f"maps must be B x h x w, got shape {maps.shape}")
        n = len(maps)
        if sizes.shape != (n, 2):
            raise WsolbenchError(f"image_sizes must be {n} x 2 (height, width), got shape {sizes.shape}")
        if len(boxes) != n:
            raise WsolbenchError(f"boxes must hold one array per map ({n}), got {len(boxes)}")
        labels = None if labels is None else _numpy(labels).astype(np.int64).reshape(-1)
        top5 = None if top5 is None else _numpy(top5).astype(np.int64).reshape(n, -1)
        top5_maps = None if top5_maps is None else _numpy(top5_maps)
        if masks is not None and len(masks) != n:
            raise WsolbenchError(f"masks must hold one mask per map ({n}), got {len(masks)}")
        gt_known = np.zeros(self.states["gt_known"].shape, np.int64)
        top1_loc = np.zeros(len(self.thresholds), np.int64)
        top5_loc = np.zeros(len(self.thresholds), np.int64)
        i05 = self.protocol.iou05_index
        for b in range(n):
            height, width = int(sizes[b, 0]), int(sizes[b, 1])
            if height < 1 or width < 1:
                raise WsolbenchError(f"image {b}: image size must be positive, got {height} x {width}")
            gt = self.protocol.check_boxes(boxes[b], height, width, b)
            scoremap = self.protocol.prepare_map(maps[b], height, width)  # once: the boxes and PxAP share it
            hits = self.protocol.hits(maps[b], height, width, gt, scoremap)  # (I, T) bool
            gt_known += hits
            if labels is not None and top5 is not None:
                label, ranked = labels[b], top5[b]
                in_top5 = np.flatnonzero(ranked == label)
                self.states["n_labeled"] += 1
                if ranked[0] == label:
                    self.states["top1_cls"] += 1
                    top1_loc += hits[i05]
                if in_top5.size:
                    self.states["top5_cls"] += 1
                    class_map = None if top5_maps is None else top5_maps[b, in_top5[0]]
                    if class_map is not None and not np.array_equal(class_map, maps[b]):
                        # the map of the matching class among the five, when it is not the true-class map
                        class_hits = self.protocol.hits(class_map, height, width, gt)[i05]
                    else:
                        class_hits = hits[i05]
                    top5_loc += class_hits
            if masks is not None and masks[b] is not None:
                pos, neg = self.protocol.mask_histograms(maps[b], height, width, _numpy(masks[b]), b, scoremap)
                self.states["mask_pos_hist"] += torch.from_numpy(pos)
                self.states["mask_neg_hist"] += torch.from_numpy(neg)
                self.states["n_masks"] += 1
        self.states["n_images"] += n
        self.states["gt_known"] += torch.from_numpy(gt_known)
        self.states["top1_loc"] += torch.from_numpy(top1_loc)
        self.states["top5_loc"] += torch.from_numpy(top5_loc)

    # --- combining -------------------------------------------------------------------------------
    def _check_same(self, other: "LocalizationAccumulator") -> None:
        if other.protocol.config() != self.protocol.config():
            raise WsolbenchError("cannot merge accumulators of different protocol settings")

    def merge(self, other: "LocalizationAccumulator") -> "LocalizationAccumulator":
        self._check_same(other)
        for key in self.states:
            self.states[key] = self.states[key] + other.states[key]
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.states.items()}

    def load_state_dict(self, state: dict) -> None:
        for key, value in self.states.items():
            if key not in state:
                raise WsolbenchError(f"accumulator state is missing '{key}'")
            new = torch.as_tensor(state[key], dtype=value.dtype)
            if new.shape != value.shape:
                raise WsolbenchError(f"accumulator state '{key}' has shape {tuple(new.shape)}, expected {tuple(value.shape)}")
            self.states[key] = new.clone()

    def sync(self) -> None:
        """Sum the states over all processes when torch.distributed is initialized (else nothing)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        # NCCL reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        for key, value in self.states.items():
            assert STATE_REDUCTIONS[key] == "sum"
            reduced = value.to(device)
            dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
            self.states[key] = reduced.cpu()
