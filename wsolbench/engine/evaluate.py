"""Evaluation: run a method over a split, feed its maps to the protocol's accumulator.

The map of the true class always goes in (GT-known, MaxBoxAcc, PxAP); with a classifier the
top-5 classes and their maps go in too (Top-1/Top-5 Loc). Under torch.distributed each rank
evaluates a disjoint shard and the accumulators are summed. The boxes are scored on ``score_workers``
processes (``protocols/parallel.py``) while the model computes the next batch; any count gives the same bytes.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from wsolbench.engine import distributed as D
from wsolbench.engine.memory import EVERY_IMAGES, release_free_memory


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def class_scores(classifier, views: torch.Tensor, out=None) -> torch.Tensor:
    """B x C class scores from ``views``: B x 3 x H x W (one view: the logits; ``out``, the forward pass already
    run on those images, is reused when given) or B x 11 x 3 x H x W (``TenCropTransform``: the softmax of
    each of the ten crops, averaged, as the ACoL / SPG / I2C evaluation scripts do)."""
    if views.ndim == 4:
        return (out if out is not None else classifier(views)).logits.float()
    b, v = views.shape[:2]
    logits = classifier(views[:, 1:].flatten(0, 1)).logits.float()
    return logits.softmax(dim=1).view(b, v - 1, -1).mean(dim=1)


@torch.no_grad()
def predict(method, loader, device, amp=False, channels_last=False, classifier=None):
    """Yield (true-class maps, top-k classes or None, top-k maps or None, dataset indices) per batch, on the CPU.

    Loader images are B x 3 x H x W, or B x 11 x 3 x H x W with ten crops after the full view (the maps come
    from the full view, the classes from the crops). ``classifier``: another model's classes (its ``logits``)
    in place of the method's own."""
    method.eval()
    own = getattr(method, "wrapped", method)  # an explainer's wrapped method classifies without its graph
    if classifier is not None:
        classifier.eval()
    for images, labels, indices in loader:
        images = images.to(device, non_blocking=True)
        full = images[:, 0] if images.ndim == 5 else images
        if channels_last:  # 4-d only: the ten crops stay as they are
            full = full.contiguous(memory_format=torch.channels_last)
            images = full if images.ndim == 4 else images
        labels = torch.as_tensor(labels, device=device)
        with autocast(device, amp):
            out = method(full)
        maps = method.maps(out, labels[:, None])[:, 0].float()
        top, top_maps = None, None
        if classifier is not None or out.logits is not None:
            with autocast(device, amp):
                same = classifier is None and images.ndim == 4
                scores = class_scores(classifier or own, images, out if same else None)
            k = min(5, scores.shape[1])
            top = scores.topk(k, dim=1).indices
            top_maps = method.maps(out, top).float()
            top, top_maps = top.cpu().numpy(), top_maps.cpu().numpy()
        yield maps.cpu().numpy(), top, top_maps, torch.as_tensor(indices).numpy()


def make_loader(dataset, indices, batch_size, num_workers):
    """Batches of ``dataset[i]`` for ``i`` in ``indices``; each item carries its own dataset index."""
    subset = torch.utils.data.Subset(dataset, indices)
    return torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def evaluate_split(method, dataset, samples, protocols, device, *, batch_size=32, num_workers=0,
                   amp=False, channels_last=False, want_masks=True, info=D.DistInfo(), collect=None, map_check=None,
                   score_workers=None, classifier=None):
    """Accumulate each protocol's counters over ``samples`` (this rank's shard), synced across ranks.

    One forward pass feeds every protocol in ``protocols`` (a protocol or a list; the result matches).
    ``collect``: an optional list that receives per-batch arrays for ``--save-maps`` (under torch.distributed
    rank 0 receives every rank's batches, in rank order, and the other ranks none).
    ``map_check``: an optional ``map_check.PositionalCheck`` fed the true-class maps (summed over ranks).
    ``score_workers``: processes scoring the boxes (None: this rank's share of the usable cores).
    ``classifier``: a model whose classes (Top-1/Top-5 Cls and Loc) replace the method's own (``predict``).
    """
    from wsolbench.data.loading import load_mask
    from wsolbench.protocols.parallel import Scorer, usable_cores

    single = not isinstance(protocols, (list, tuple))
    first_collected = len(collect) if collect is not None else 0
    if score_workers is None:
        score_workers = max(1, usable_cores() // info.world_size)
    shard = D.shard(len(samples), info)
    with Scorer([protocols] if single else protocols, score_workers) as scorer:
        loader = make_loader(dataset, shard, batch_size, num_workers) if shard else []
        seen = 0
        for maps, top, top_maps, idx in predict(method, loader, device, amp, channels_last, classifier):
            if (seen + len(idx)) // EVERY_IMAGES > seen // EVERY_IMAGES:  # memory flat in the number of images
                release_free_memory()
            seen += len(idx)
            batch = [samples[i] for i in idx]
            sizes = np.array([s.size for s in batch], dtype=np.int64)
            boxes = [np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4) for s in batch]
            labels = np.array([s.label for s in batch], dtype=np.int64)
            masks = None
            if want_masks and all(s.mask_path is not None for s in batch):
                masks = [load_mask(s) for s in batch]
            if map_check is not None:
                map_check.update(maps, sizes, boxes)
            scorer.submit(dict(maps=maps, image_sizes=sizes, boxes=boxes, labels=labels if top is not None else None,
                               top5=top, top5_maps=top_maps, masks=masks, indices=idx))
            if collect is not None:
                collect.append(dict(maps=maps, image_sizes=sizes, boxes=boxes, labels=labels,
                                    top5=top, top5_maps=top_maps, masks=masks, indices=idx))
        accs = scorer.results()
    for acc in accs:
        acc.sync()  # every rank calls this, shard or not: it is a collective
    if map_check is not None:
        map_check.sync()
    if collect is not None and info.enabled:  # rank 0 gets every rank's batches (it writes them), the others none
        parts = D.gather_object(collect[first_collected:])
        collect[first_collected:] = [batch for part in parts for batch in part] if info.is_main else []
    return accs[0] if single else accs


def save_maps(path, batches, image_ids) -> None:
    """Write collected batches in the ``wsolbench score`` file format (atomically)."""
    import io

    from wsolbench.engine.atomic import write_bytes

    cat = lambda key: np.concatenate([b[key] for b in batches]) if batches and batches[0][key] is not None else None  # noqa: E731
    boxes = [bx for b in batches for bx in b["boxes"]]
    width = max((len(b) for b in boxes), default=1)
    padded = -np.ones((len(boxes), width, 4), dtype=np.float64)
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
    arrays = dict(maps=cat("maps").astype(np.float32), image_sizes=cat("image_sizes"), boxes=padded,
                  labels=cat("labels"), image_ids=np.array([image_ids[i] for i in cat("indices")]))
    if batches and batches[0]["top5"] is not None:
        arrays["top5"] = cat("top5")
        arrays["top5_maps"] = cat("top5_maps").astype(np.float32)
    if batches and batches[0]["masks"] is not None:
        # masks differ in size in some datasets (CUB: each image's own): one array padded with the ignore
        # value 255, and each mask's size, so ``score`` crops them back (maps_file.py)
        masks = [m for b in batches for m in b["masks"]]
        height, width = max(m.shape[0] for m in masks), max(m.shape[1] for m in masks)
        padded_masks = np.full((len(masks), height, width), 255, np.uint8)
        for i, m in enumerate(masks):
            padded_masks[i, : m.shape[0], : m.shape[1]] = m
        arrays["masks"] = padded_masks
        if len({m.shape for m in masks}) > 1:
            arrays["mask_sizes"] = np.array([m.shape for m in masks], np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())
