"""The ``.npz`` file ``wsolbench score`` reads: maps from any tool, with what is needed to score them.

Keys: ``maps`` N x h x w float (the true class's map, any resolution, covering the whole image),
``image_sizes`` N x 2 (height, width), ``boxes`` N x B x 4 (x0 y0 x1 y1, original pixels, inclusive; rows of
-1 pad), optional ``masks`` N x h x w uint8 (1 object, 0 background, 255 ignored), ``labels`` N,
``top5`` N x 5 (predicted classes, best first), ``top5_maps`` N x 5 x h x w, and ``image_ids`` N strings
(which image each row is; informational, as ``wsolbench eval --save-maps`` writes it).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from wsolbench.errors import WsolbenchError
from wsolbench.protocols.box_scores import box_problem

REQUIRED = ("maps", "image_sizes", "boxes")
OPTIONAL = ("masks", "labels", "top5", "top5_maps", "image_ids")


def load_maps_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check the file; any problem is a WsolbenchError naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise WsolbenchError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WsolbenchError(f"{path}: not a readable .npz file ({exc})") from None
    check_arrays(data, str(path))
    return data


def check_arrays(data: dict[str, np.ndarray], where: str) -> None:
    def fail(msg: str):
        raise WsolbenchError(f"{where}: {msg}")

    missing = [k for k in REQUIRED if k not in data]
    if missing:
        fail(f"missing key(s) {', '.join(missing)} (needs maps, image_sizes, boxes)")
    maps = data["maps"]
    if maps.ndim != 3 or maps.shape[1] < 1 or maps.shape[2] < 1:
        fail(f"'maps' must be N x h x w, got shape {maps.shape}")
    if not np.issubdtype(maps.dtype, np.number):
        fail(f"'maps' must be numbers, got {maps.dtype}")
    n = len(maps)
    finite = np.isfinite(maps.reshape(n, -1)).all(axis=1)
    if not finite.all():
        fail(f"'maps'[{int(np.flatnonzero(~finite)[0])}] holds NaN or infinity")
    sizes = data["image_sizes"]
    if sizes.shape != (n, 2):
        fail(f"'image_sizes' must be {n} x 2 (height, width), got shape {sizes.shape}")
    if (sizes < 1).any() or (sizes != np.round(sizes)).any():
        fail(f"'image_sizes'[{int(np.flatnonzero((sizes < 1).any(axis=1) | (sizes != np.round(sizes)).any(axis=1))[0])}] is not a positive whole size")
    boxes = data["boxes"]
    if boxes.ndim != 3 or boxes.shape[0] != n or boxes.shape[2] != 4:
        fail(f"'boxes' must be {n} x B x 4 (x0 y0 x1 y1, rows of -1 as padding), got shape {boxes.shape}")
    for i in range(n):
        real = boxes[i][~(boxes[i] == -1).all(axis=1)]
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        if len(real) == 0:
            fail(f"image {i} has no box (all rows are -1 padding)")
        for box in real:
            problem = box_problem(box, h, w)
            if problem:
                fail(f"image {i}: {problem}")
    if "masks" in data:
        masks = data["masks"]
        if masks.ndim != 3 or len(masks) != n:
            fail(f"'masks' must be {n} x h x w, got shape {masks.shape}")
        values = set(np.unique(masks).tolist())
        if not values <= {0, 1, 255}:
            fail(f"'masks' may hold only 0 (background), 1 (object), 255 (ignored); found {sorted(values - {0, 1, 255})[:5]}")
    if ("labels" in data) != ("top5" in data):
        fail("'labels' and 'top5' go together (Top-1/Top-5 Loc need both)")
    if "labels" in data and data["labels"].shape != (n,):
        fail(f"'labels' must have shape ({n},), got {data['labels'].shape}")
    if "top5" in data and (data["top5"].ndim != 2 or data["top5"].shape[0] != n or data["top5"].shape[1] < 1):
        fail(f"'top5' must be {n} x 5, got shape {data['top5'].shape}")
    if "top5_maps" in data:
        if "top5" not in data:
            fail("'top5_maps' needs 'top5' and 'labels'")
        t5 = data["top5_maps"]
        if t5.ndim != 4 or t5.shape[:2] != data["top5"].shape:
            fail(f"'top5_maps' must be {n} x {data['top5'].shape[1]} x h x w, got shape {t5.shape}")
        finite = np.isfinite(t5.reshape(n, -1)).all(axis=1)
        if not finite.all():
            fail(f"'top5_maps'[{int(np.flatnonzero(~finite)[0])}] holds NaN or infinity")
    if "image_ids" in data and (data["image_ids"].shape != (n,) or data["image_ids"].dtype.kind not in "US"):
        fail(f"'image_ids' must be {n} strings, got shape {data['image_ids'].shape} of {data['image_ids'].dtype}")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        fail(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(REQUIRED + OPTIONAL)})")


def accumulate(protocol, data: dict[str, np.ndarray], batch: int = 64):
    """An accumulator of ``protocol`` fed with the file's arrays."""
    acc = protocol.accumulator()
    n = len(data["maps"])
    for s in range(0, n, batch):
        sl = slice(s, min(n, s + batch))
        acc.update(
            data["maps"][sl], data["image_sizes"][sl], list(data["boxes"][sl]),
            labels=data["labels"][sl] if "labels" in data else None,
            top5=data["top5"][sl] if "top5" in data else None,
            top5_maps=data["top5_maps"][sl] if "top5_maps" in data else None,
            masks=list(data["masks"][sl]) if "masks" in data else None,
        )
    return acc
