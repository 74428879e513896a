"""Box mapping under resize, crop and flip, so boxes follow the image exactly.

Boxes are ``(x0, y0, x1, y1)`` with x1/y1 inclusive: the box covers pixel columns x0..x1. Seen as
continuous intervals a box is ``[x0, x1 + 1)``; each helper maps that interval and converts back,
then clips to the output image ``[0, width - 1] x [0, height - 1]``. Sizes are ``(height, width)``.
All take and return a float64 array of shape (k, 4) (anything ``np.asarray`` accepts goes in).
"""
from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def clip_boxes(boxes, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w - 1)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h - 1)
    return b


def resize_boxes(boxes, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Image resized from ``src_size`` to ``dst_size`` (each axis on its own)."""
    (sh, sw), (dh, dw) = src_size, dst_size
    sx, sy = dw / sw, dh / sh
    b = as_boxes(boxes)
    out = np.stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 2] + 1) * sx - 1, (b[:, 3] + 1) * sy - 1], axis=1)
    return clip_boxes(out, dst_size)


def crop_boxes(boxes, left: int, top: int, crop_size: tuple[int, int]) -> np.ndarray:
    """Crop of ``crop_size`` whose top-left corner is (left, top); boxes left outside are dropped."""
    b = as_boxes(boxes) - np.array([left, top, left, top], dtype=np.float64)
    h, w = crop_size
    inside = (b[:, 2] >= 0) & (b[:, 3] >= 0) & (b[:, 0] <= w - 1) & (b[:, 1] <= h - 1)
    return clip_boxes(b[inside], crop_size)


def flip_boxes(boxes, width: int) -> np.ndarray:
    """Horizontal flip of an image ``width`` pixels wide: column x goes to width - 1 - x."""
    b = as_boxes(boxes)
    return np.stack([width - 1 - b[:, 2], b[:, 1], width - 1 - b[:, 0], b[:, 3]], axis=1)
