"""The straightforward box search, one threshold and one contour search at a time.

This is the rule of the wsolevaluation benchmark (``compute_bboxes_from_scoremaps``) written plainly: it is
what ``wsolbench.protocols.level_boxes.threshold_boxes`` must equal at every threshold, and what it is timed
against (``benchmarks/bench_boxes.py``). Boxes are inclusive extents (x0, y0, x1, y1); a threshold with no
foreground gives one row (0, 0, -1, -1).
"""
from __future__ import annotations

import cv2
import numpy as np


def reference_boxes(u8: np.ndarray, thresholds, multi_contour: bool) -> list[np.ndarray]:
    """One (n_t, 4) int64 array of boxes per threshold."""
    image = np.ascontiguousarray(u8, dtype=np.uint8)
    out = []
    for t in thresholds:
        _, mask = cv2.threshold(image, int(t * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.array([[0, 0, -1, -1]], np.int64))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, x + w - 1, y + h - 1])
        out.append(np.array(boxes, np.int64))
    return out


def same_boxes(level_boxes, reference: list[np.ndarray]) -> bool:
    """Whether a ``LevelBoxes`` gives the reference's boxes at every threshold (order carries no meaning)."""
    return all(sorted(map(tuple, level_boxes.at_threshold(j).tolist())) == sorted(map(tuple, ref.tolist()))
               for j, ref in enumerate(reference))
