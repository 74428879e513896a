"""Box overlap, inclusive pixels: area = (x1 - x0 + 1) * (y1 - y0 + 1), as wsolevaluation and CUB count it."""
from __future__ import annotations

import numpy as np

from wsolbench.protocols.level_boxes import LevelBoxes


def iou_inclusive(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(K, 4) x (G, 4) -> (K, G) IoU; a box with x1 < x0 (no region) has area 0 and IoU 0."""
    b = np.asarray(boxes, np.float64)[:, None, :]
    g = np.asarray(gt, np.float64)[None, :, :]
    iw = np.maximum(0.0, np.minimum(b[..., 2], g[..., 2]) - np.maximum(b[..., 0], g[..., 0]) + 1)
    ih = np.maximum(0.0, np.minimum(b[..., 3], g[..., 3]) - np.maximum(b[..., 1], g[..., 1]) + 1)
    inter = iw * ih
    area_b = np.maximum(0.0, b[..., 2] - b[..., 0] + 1) * np.maximum(0.0, b[..., 3] - b[..., 1] + 1)
    area_g = np.maximum(0.0, g[..., 2] - g[..., 0] + 1) * np.maximum(0.0, g[..., 3] - g[..., 1] + 1)
    union = area_b + area_g - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def best_iou_per_threshold(level_boxes: LevelBoxes, scored_boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T,) best IoU of any box of each threshold with any ground-truth box.

    ``scored_boxes`` are ``level_boxes.boxes`` already turned into the protocol's box convention.
    """
    per_box = iou_inclusive(scored_boxes, gt).max(axis=1)
    per_level = np.maximum.reduceat(per_box, level_boxes.start[:-1])
    return per_level[level_boxes.level_of]


def bad_boxes(boxes: np.ndarray, height, width) -> np.ndarray:
    """(...,) bool: which ground-truth boxes (..., 4; x0 y0 x1 y1, inclusive) cannot be scored in a height x
    width image: not finite, inverted, or outside it. A coordinate up to one pixel past the border (x1 ==
    width, as some annotations give it) is accepted; ``clip_boxes`` brings it inside. ``height`` and
    ``width`` broadcast against the boxes' leading shape."""
    b = np.asarray(boxes, np.float64)
    x0, y0, x1, y1 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    with np.errstate(invalid="ignore"):
        return (~np.isfinite(b).all(axis=-1) | (x0 < -1) | (y0 < -1) | (x1 > width) | (y1 > height)
                | (x1 < x0) | (y1 < y0))


def box_problem(box: np.ndarray, height: int, width: int) -> str | None:
    """Why one box breaks ``bad_boxes``' rule, in words, or None."""
    if not bad_boxes(box, height, width):
        return None
    shown = [int(v) if float(v).is_integer() else float(v) for v in box]
    if not np.isfinite(np.asarray(box, np.float64)).all():
        return f"box {shown} is not finite"
    return (f"box {shown} is outside the {width}x{height} image or inverted "
            f"(inclusive x0 <= x1 <= {width - 1}, y0 <= y1 <= {height - 1})")


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.asarray(boxes, np.float64).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width - 1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height - 1)
    return out
