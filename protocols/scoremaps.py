"""Score maps into the space boxes are scored in: resize, min-max normalise, uint8.

Two ways, one per protocol family:
- ``resize_wsoleval``: the wsolevaluation benchmark's, OpenCV bicubic (INTER_CUBIC) to 224x224;
- ``resize_original``: the I2C/CAM papers', bilinear to the original image size (height x width).
Both then min-max normalise (a constant map, or one holding NaN, becomes all zeros: the benchmark's rule)
and ``to_uint8`` gives ``(map * 255).astype(uint8)``, the map the box search thresholds.
"""
from __future__ import annotations

import cv2
import numpy as np


def _kernels():
    """The compiled element-wise steps (``_scoremap_kernels``), imported on first use (numba takes a second)."""
    from wsolbench.protocols import _scoremap_kernels

    return _scoremap_kernels


def normalize_minmax(scoremap: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; NaN anywhere or a constant map gives zeros (wsolevaluation's normalize_scoremap:
    ``m -= m.min(); m /= m.max()`` in float32, whose max after the subtraction is ``max - min`` rounded, as
    subtracting keeps the order)."""
    m = np.ascontiguousarray(scoremap, dtype=np.float32)
    if m.size == 0 or np.isnan(m).any():
        return np.zeros(m.shape, np.float32)
    low, high = m.min(), m.max()
    if low == high:
        return np.zeros(m.shape, np.float32)
    return _kernels().shift_scale(m, low, np.float32(high - low))


def resize_map(scoremap: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    m = np.ascontiguousarray(scoremap, dtype=np.float32)
    if m.shape == (height, width):
        return m.copy()
    return cv2.resize(m, (int(width), int(height)), interpolation=interpolation)


def resize_wsoleval(scoremap: np.ndarray, size: int = 224) -> np.ndarray:
    return normalize_minmax(resize_map(scoremap, size, size, cv2.INTER_CUBIC))


def resize_original(scoremap: np.ndarray, height: int, width: int) -> np.ndarray:
    return normalize_minmax(resize_map(scoremap, height, width, cv2.INTER_LINEAR))


def to_uint8(normalized: np.ndarray) -> np.ndarray:
    """``(map * 255).astype(np.uint8)`` of a normalised map."""
    return _kernels().to_uint8(np.ascontiguousarray(normalized, dtype=np.float32))


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A mask (1 object, 0 background, 255 ignored) to (height, width) by nearest neighbour."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if m.shape == (height, width):
        return m
    return cv2.resize(m, (int(width), int(height)), interpolation=cv2.INTER_NEAREST)
