"""The box search as the wsolevaluation benchmark defines it, one threshold and one contour search at a time.

This is ``compute_bboxes_from_scoremaps`` of wsolevaluation written plainly, for reading and for checking:
``level_boxes`` (the fast path) must give the same boxes at every threshold, and the protocol setting
``box_search="reference"`` (``--box-search reference``) scores with this instead (same numbers, slower).
Boxes are inclusive extents (x0, y0, x1, y1); a threshold with no foreground gives one row (0, 0, -1, -1).
"""
from __future__ import annotations

import cv2
import numpy as np

from wsolbench.protocols.level_boxes import NO_REGION, LevelBoxes


def reference_boxes(u8: np.ndarray, thresholds, multi_contour: bool) -> list[np.ndarray]:
    """One (n_t, 4) int64 array of boxes per threshold."""
    image = np.ascontiguousarray(u8, dtype=np.uint8)
    out = []
    for t in thresholds:
        # foreground: the pixels above int(t * max), as cv2.threshold(..., THRESH_BINARY) marks them
        _, mask = cv2.threshold(image, int(t * np.max(image)), 255, cv2.THRESH_BINARY)
        # regions: every contour of the foreground, outer borders and hole borders (RETR_TREE)
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.array([NO_REGION], np.int64))
            continue
        if not multi_contour:  # the largest region: the first contour of largest polygon area
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:  # a region's box: its contour's bounding rectangle, inclusive
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, x + w - 1, y + h - 1])
        out.append(np.array(boxes, np.int64))
    return out


def reference_level_boxes(u8: np.ndarray, thresholds, multi_contour: bool) -> LevelBoxes:
    """The reference's boxes in ``level_boxes.LevelBoxes`` form (one level per threshold)."""
    per_threshold = reference_boxes(u8, thresholds, multi_contour)
    counts = [len(b) for b in per_threshold]
    boxes = np.concatenate(per_threshold) if per_threshold else np.zeros((0, 4), np.int64)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return LevelBoxes(boxes.astype(np.int64), start, np.arange(len(per_threshold), dtype=np.int64))
