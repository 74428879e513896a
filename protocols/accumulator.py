"""Accumulator of one split, in the torchmetrics style: update per batch, merge, sync, state_dict.

``STATE_REDUCTIONS`` declares each state's reduction, so merge and a distributed sync stay generic.
Sums (memory does not grow with the number of images):

- ``n_images``; ``gt_known`` (I x T): maps whose box reaches IoU iou_thresholds[i] at thresholds[t];
- ``n_labeled``, ``top1_cls``, ``top5_cls``; ``top1_loc`` / ``top5_loc`` (T): class right and box at IoU 0.5;
- ``n_masks``, ``mask_pos_hist`` / ``mask_neg_hist`` (T + 2): map values of object / background pixels over
  the bin edges [thresholds..., 1, 2, 3] (wsolevaluation's PxAP).

Per-image rows ("cat": concatenated in order; one row per image, for the bootstrap in ``wsolbench.stats``):

- ``img_index``: the image's position in its split (-1 when the caller gave none);
- ``img_hits`` (N x I x ceil(T/8), bits packed along T): the box reaches IoU i at threshold t;
- ``img_labeled``, ``img_top1``, ``img_top5``: a classification was scored, true class first / in the top 5;
- ``img_top5_hits`` (N x ceil(T/8)): the matching top-5 class's box at IoU 0.5 (Top-5 Loc; 0 outside the top 5).
- ``img_mask_hist`` (N x 2 x (T + 2)): the image's object / background pixel counts over the PxAP bins, kept
  only once some image had a mask (before that the rows are N x 2 x 0: no memory); an image without a mask
  has a zero row. uint16 while every scored map has at most 65,535 pixels, else int32 (the state widens).
10,000 images x 3 IoUs x 1,000 thresholds take 3.9 MB; the PxAP rows at 1,000 thresholds take 4.0 MB per
1,000 images in uint16 (docs/comparisons.md).
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
    "img_index": "cat", "img_hits": "cat", "img_labeled": "cat", "img_top1": "cat", "img_top5": "cat",
    "img_top5_hits": "cat", "img_mask_hist": "cat",
}
MASK_HIST_DTYPES = (torch.uint16, torch.int32)  # the compact one while the counts fit, else the wide one


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
        self._pending: dict[str, list] = {k: [] for k, r in STATE_REDUCTIONS.items() if r == "cat"}
        self._states: dict[str, torch.Tensor] = {
            "n_images": z(), "gt_known": z(n_i, n_t),
            "n_labeled": z(), "top1_cls": z(), "top5_cls": z(), "top1_loc": z(n_t), "top5_loc": z(n_t),
            "n_masks": z(), "mask_pos_hist": z(n_t + 2, dtype=torch.float64), "mask_neg_hist": z(n_t + 2, dtype=torch.float64),
            "img_index": z(0), "img_hits": z(0, n_i, (n_t + 7) // 8, dtype=torch.uint8),
            "img_labeled": z(0, dtype=torch.bool), "img_top1": z(0, dtype=torch.bool), "img_top5": z(0, dtype=torch.bool),
            "img_top5_hits": z(0, (n_t + 7) // 8, dtype=torch.uint8),
            "img_mask_hist": z(0, 2, 0, dtype=torch.uint16),
        }

    @property
    def states(self) -> dict[str, torch.Tensor]:
        """Every state; the per-image rows of the batches added since the last look are concatenated now, once
        (appending them batch by batch would copy the whole table at every batch: quadratic in the images)."""
        for key, parts in self._pending.items():
            if parts:
                self._states[key] = cat_rows(key, [self._states[key], *parts])
                parts.clear()
        return self._states

    def __getattr__(self, name: str):
        if name in STATE_REDUCTIONS and "_states" in self.__dict__:
            return self.states[name]
        raise AttributeError(name)

    # --- one batch -------------------------------------------------------------------------------
    def update(self, maps, image_sizes, boxes, labels=None, top5=None, top5_maps=None, masks=None, indices=None) -> None:
        """Add a batch; see ``wsolbench.protocols.presets`` for the argument shapes. ``indices``: each image's
        position in its split (kept with its per-image row; a distributed sync orders the rows by it)."""
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
        indices = -np.ones(n, np.int64) if indices is None else _numpy(indices).astype(np.int64).reshape(-1)
        if indices.shape != (n,):
            raise WsolbenchError(f"indices must hold one index per map ({n}), got {indices.size}")
        sums = self._states  # the sums only: the per-image rows of this batch are queued below
        gt_known = np.zeros(sums["gt_known"].shape, np.int64)
        top1_loc = np.zeros(len(self.thresholds), np.int64)
        top5_loc = np.zeros(len(self.thresholds), np.int64)
        n_t = len(self.thresholds)
        img_hits = np.zeros((n, len(self.iou_thresholds), n_t), bool)
        img_top5_hits = np.zeros((n, n_t), bool)
        img_flags = np.zeros((3, n), bool)  # labeled, top1, top5
        has_masks = masks is not None and any(m is not None for m in masks)
        img_mask_hist = np.zeros((n, 2, len(self.protocol.edges) - 1 if has_masks else 0), np.int64)
        i05 = self.protocol.iou05_index
        for b in range(n):
            height, width = int(sizes[b, 0]), int(sizes[b, 1])
            if height < 1 or width < 1:
                raise WsolbenchError(f"image {b}: image size must be positive, got {height} x {width}")
            gt = self.protocol.check_boxes(boxes[b], height, width, b)
            scoremap = self.protocol.prepare_map(maps[b], height, width)  # once: the boxes and PxAP share it
            hits = self.protocol.hits(maps[b], height, width, gt, scoremap)  # (I, T) bool
            gt_known += hits
            img_hits[b] = hits
            if labels is not None and top5 is not None:
                label, ranked = labels[b], top5[b]
                in_top5 = np.flatnonzero(ranked == label)
                sums["n_labeled"] += 1
                img_flags[0, b] = True
                if ranked[0] == label:
                    img_flags[1, b] = True
                    sums["top1_cls"] += 1
                    top1_loc += hits[i05]
                if in_top5.size:
                    sums["top5_cls"] += 1
                    class_map = None if top5_maps is None else top5_maps[b, in_top5[0]]
                    if class_map is not None and not np.array_equal(class_map, maps[b]):
                        # the map of the matching class among the five, when it is not the true-class map
                        class_hits = self.protocol.hits(class_map, height, width, gt)[i05]
                    else:
                        class_hits = hits[i05]
                    top5_loc += class_hits
                    img_flags[2, b] = True
                    img_top5_hits[b] = class_hits
            if masks is not None and masks[b] is not None:
                pos, neg = self.protocol.mask_histograms(maps[b], height, width, _numpy(masks[b]), b, scoremap)
                sums["mask_pos_hist"] += torch.from_numpy(pos)
                img_mask_hist[b, 0], img_mask_hist[b, 1] = pos, neg
                sums["mask_neg_hist"] += torch.from_numpy(neg)
                sums["n_masks"] += 1
        sums["n_images"] += n
        sums["gt_known"] += torch.from_numpy(gt_known)
        sums["top1_loc"] += torch.from_numpy(top1_loc)
        sums["top5_loc"] += torch.from_numpy(top5_loc)
        rows = {"img_index": torch.from_numpy(indices), "img_hits": torch.from_numpy(np.packbits(img_hits, axis=-1)),
                "img_labeled": torch.from_numpy(img_flags[0]), "img_top1": torch.from_numpy(img_flags[1]),
                "img_top5": torch.from_numpy(img_flags[2]),
                "img_top5_hits": torch.from_numpy(np.packbits(img_top5_hits, axis=-1))}
        for key, value in {**rows, "img_mask_hist": torch.from_numpy(img_mask_hist)}.items():
            self._pending[key].append(value)

    # --- combining -------------------------------------------------------------------------------
    def _check_same(self, other: "LocalizationAccumulator") -> None:
        if other.protocol.config() != self.protocol.config():
            raise WsolbenchError("cannot merge accumulators of different protocol settings")

    def merge(self, other: "LocalizationAccumulator") -> "LocalizationAccumulator":
        """Add ``other``'s counts; its per-image rows go after this one's (merge shards in their order)."""
        self._check_same(other)
        self.add_states(other.states)
        return self

    def add_states(self, states: dict) -> None:
        """Add the states of an accumulator of the same settings (tensors or arrays): sums added, its per-image
        rows queued after this one's."""
        for key, value in states.items():
            value = torch.as_tensor(value)
            if STATE_REDUCTIONS[key] == "cat":
                self._pending[key].append(value)
            else:
                self._states[key] = self._states[key] + value

    def per_image(self) -> dict[str, np.ndarray]:
        """The per-image rows as numpy arrays, bits unpacked: hits (N x I x T), labeled, top1, top5 (N),
        top5_hits (N x T), index (N), mask_hist (N x 2 x (T + 2), or N x 2 x 0 without masks)."""
        n_t = len(self.thresholds)
        s = self.states
        return {"index": s["img_index"].numpy(), "labeled": s["img_labeled"].numpy(), "top1": s["img_top1"].numpy(),
                "top5": s["img_top5"].numpy(),
                "hits": np.unpackbits(s["img_hits"].numpy(), axis=-1, count=n_t).astype(bool),
                "top5_hits": np.unpackbits(s["img_top5_hits"].numpy(), axis=-1, count=n_t).astype(bool),
                "mask_hist": s["img_mask_hist"].numpy()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.states.items()}

    def load_state_dict(self, state: dict) -> None:
        for key, value in self.states.items():
            if key not in state:
                raise WsolbenchError(f"accumulator state is missing '{key}'")
            if key == "img_mask_hist":  # any width (0 or T + 2) and either dtype
                self.states[key] = _cat_mask_hists(value[:0], torch.as_tensor(state[key]))
                continue
            new = torch.as_tensor(state[key], dtype=value.dtype)
            per_image = STATE_REDUCTIONS[key] == "cat"  # any number of rows
            if (new.shape[1:] if per_image else new.shape) != (value.shape[1:] if per_image else value.shape):
                raise WsolbenchError(f"accumulator state '{key}' has shape {tuple(new.shape)}, expected {tuple(value.shape)}")
            self.states[key] = new.clone()

    def sync(self) -> None:
        """Combine the states of all processes when torch.distributed is initialized (else nothing).

        Sums are all-reduced. Per-image rows are gathered on every rank and put in split order: by
        ``img_index`` when every row has one, else as ``D.shard`` deals images (rank r's j-th row is image
        r + j x world size)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        # NCCL reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        for key, value in self.states.items():
            if STATE_REDUCTIONS[key] == "sum":
                reduced = value.to(device)
                dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
                self.states[key] = reduced.cpu()
        rows = {k: v.numpy() for k, v in self.states.items() if STATE_REDUCTIONS[k] == "cat"}
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, rows)
        index = np.concatenate([p["img_index"] for p in parts])
        if (index < 0).any():  # no indices given: the strided shards' deal order
            world = len(parts)
            index = np.concatenate([rank + world * np.arange(len(p["img_index"])) for rank, p in enumerate(parts)])
        order = np.argsort(index, kind="stable")
        for key in rows:  # ranks may differ in the PxAP rows' width (masks seen or not) and dtype: cat_rows
            self.states[key] = cat_rows(key, [torch.as_tensor(p[key]) for p in parts])[torch.from_numpy(order)]


def _cat_mask_hists(*tables) -> torch.Tensor:
    """The tables' rows in order (N x 2 x K each; K = 0 where no mask was seen, padded with zeros to the
    others' width), in uint16 while every count fits, else int32."""
    tables = [torch.as_tensor(t) for t in tables]
    width = max(t.shape[2] for t in tables)
    if any(t.shape[2] not in (0, width) for t in tables):
        raise WsolbenchError(f"PxAP rows of {sorted({t.shape[2] for t in tables})} bins: not the same protocol settings")
    wide = any(t.dtype == torch.int32 or (t.dtype != torch.uint16 and t.numel() and int(t.max()) > 65535)
               for t in tables)
    dtype = MASK_HIST_DTYPES[1] if wide else MASK_HIST_DTYPES[0]
    parts = []
    for t in tables:
        if t.shape[2] != width:  # no mask seen there: zero rows
            t = torch.zeros((t.shape[0], 2, width), dtype=torch.int32)
        parts.append(t.to(torch.int32).to(dtype) if t.dtype != dtype else t)
    return torch.cat(parts)


def cat_rows(key: str, tables) -> torch.Tensor:
    """Per-image rows of one state, in order (the PxAP rows may differ in width and dtype)."""
    return _cat_mask_hists(*tables) if key == "img_mask_hist" else torch.cat(list(tables))
