"""Protocol presets: what a number from wsolbench means.

    from wsolbench.registry import PROTOCOLS
    proto = PROTOCOLS.build("cub")          # or "ilsvrc", "wsoleval"; kwargs interval=0.01, multi_contour=True,
                                             # box_search="fast" | "reference" (same numbers; see below)
    acc = proto.accumulator()                # one per split (val, test)
    acc.update(maps, image_sizes, boxes, labels=None, top5=None, top5_maps=None, masks=None)
    metrics = proto.summarize(test_acc, val_acc=None, policy="val")   # "val" | "test-optimal" | "fixed:0.25"

``update`` takes one batch: maps B x h x w (numpy or torch; the raw map of the TRUE class covering the whole
image), image_sizes B x 2 (height, width of the original image), boxes a list of B arrays n_i x 4
(x0 y0 x1 y1 in original pixels, inclusive), labels B, top5 B x 5 (predicted classes, best first),
top5_maps B x 5 x h x w (each of those classes' map), masks a list of B uint8 arrays (1 object,
0 background, 255 ignored) or None.

- ``wsoleval``: the wsolevaluation benchmark (CVPR 2020). Map -> OpenCV bicubic 224x224 -> min-max ->
  uint8; thresholds np.arange(0, 1, interval) (0.001); foreground > int(t * max); all contours (default,
  MaxBoxAccV2) or the largest; box (x, y, x + w, y + h) clipped to 223; ground truth int(x * 224 / W);
  IoU 0.3/0.5/0.7; PxAP from masks at 224.
- ``cub`` / ``ilsvrc``: the I2C paper's Top-1 / Top-5 / GT-known Loc at IoU 0.5 in original pixels: map ->
  bilinear to the image size -> min-max -> uint8, same thresholding, largest region, inclusive box
  (x, y, x + w - 1, y + h - 1); every ground-truth box of an image counts.

``box_search`` picks how the boxes are found, never what they are: ``fast`` (``level_boxes``, all thresholds in
two passes) or ``reference`` (``reference_boxes``, one OpenCV contour search per threshold, for reading and
checking). It is recorded in ``config()`` with the numbers.
"""
from __future__ import annotations

import numpy as np

from wsolbench.errors import WsolbenchError
from wsolbench.protocols.accumulator import LocalizationAccumulator
from wsolbench.protocols.box_scores import bad_boxes, box_problem, clip_boxes
from wsolbench.protocols.box_scores import best_iou_per_threshold
from wsolbench.protocols.level_boxes import SEARCHES, best_ious
from wsolbench.protocols.scoremaps import resize_mask, resize_original, resize_wsoleval, to_uint8
from wsolbench.protocols.summary import summarize
from wsolbench.registry import PROTOCOLS


class Protocol:
    """One evaluation protocol: map preparation, box rule, thresholds, IoU levels and the summary."""

    def __init__(self, name: str, *, space: str, interval: float, multi_contour: bool, iou_thresholds: tuple[float, ...],
                 input_size: int = 224, description: str = "", box_search: str = "fast"):
        if not 0 < interval < 1:
            raise WsolbenchError(f"protocol {name}: interval must be in (0, 1), got {interval}")
        if box_search not in SEARCHES:
            raise WsolbenchError(f"protocol {name}: --box-search must be one of {', '.join(SEARCHES)}, got '{box_search}'")
        self.box_search = box_search
        self.name = name
        self.space = space  # "resized": scored in input_size x input_size (wsoleval); "original": image pixels
        self.interval = float(interval)
        self.multi_contour = bool(multi_contour)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.iou05_index = self.iou_thresholds.index(0.5)
        self.input_size = int(input_size)
        self.description = description
        self.thresholds = np.arange(0, 1, self.interval)
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])  # PxAP's bin edges

    @property
    def box_rule(self) -> str:
        return "multi-contour" if self.multi_contour else "largest"

    def config(self) -> dict:
        """Everything that fixes the numbers, recorded with them."""
        resize = "bicubic (cv2.INTER_CUBIC)" if self.space == "resized" else "bilinear (cv2.INTER_LINEAR)"
        size = f"{self.input_size}x{self.input_size}" if self.space == "resized" else "original image size"
        return {
            "protocol": self.name, "box_rule": self.box_rule, "interval": self.interval,
            "n_thresholds": len(self.thresholds), "iou_thresholds": list(self.iou_thresholds),
            "map_resize": f"{resize} to {size}, min-max normalised, (map * 255).astype(uint8)",
            "foreground": "map > int(t * max(map))",
            "box": "(x, y, x + w, y + h) clipped to the image" if self.space == "resized" else "(x, y, x + w - 1, y + h - 1)",
            "box_space": size, "input_size": self.input_size,
            "box_search": self.box_search,  # how the boxes are found; the numbers are the same either way
        }

    def accumulator(self) -> LocalizationAccumulator:
        return LocalizationAccumulator(self)

    # --- per image --------------------------------------------------------------------------------
    def score_space(self, height: int, width: int) -> tuple[int, int]:
        return (self.input_size, self.input_size) if self.space == "resized" else (height, width)

    def prepare_map(self, raw: np.ndarray, height: int, width: int) -> np.ndarray:
        """The normalised float map in the scoring space."""
        if self.space == "resized":
            return resize_wsoleval(raw, self.input_size)
        return resize_original(raw, height, width)

    def check_boxes(self, boxes, height: int, width: int, index: int) -> np.ndarray:
        """Ground-truth boxes of image ``index`` (inclusive, original pixels) in the scoring space."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
        b = b[~(b == -1).all(axis=1)]  # padding rows
        if len(b) == 0:
            raise WsolbenchError(f"image {index}: no ground-truth box")
        bad = bad_boxes(b, height, width)
        if bad.any():  # the first bad box, in words
            raise WsolbenchError(f"image {index}: {box_problem(b[bad.argmax()], height, width)}")
        b = clip_boxes(b, height, width)
        if self.space == "resized":  # wsolevaluation's resize_bbox: int(x * 224 / W)
            s = self.input_size
            b = np.stack([b[:, 0] * s / width, b[:, 1] * s / height, b[:, 2] * s / width, b[:, 3] * s / height], 1).astype(np.int64)
        return b

    def boxes_in_convention(self, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        """Inclusive region extents -> the protocol's box (wsoleval's x + w, clipped; else inclusive)."""
        if self.space != "resized":
            return boxes
        out = boxes.copy()
        out[:, 2] = np.minimum(out[:, 2] + 1, width - 1)
        out[:, 3] = np.minimum(out[:, 3] + 1, height - 1)
        return out

    def hits(self, raw_map: np.ndarray, height: int, width: int, gt: np.ndarray,
             scoremap: np.ndarray | None = None) -> np.ndarray:
        """(I, T) bool: the map's box reaches iou_thresholds[i] at thresholds[t]. ``scoremap``: the map as
        ``prepare_map`` makes it, if the caller has it."""
        if raw_map.ndim != 2:
            raise WsolbenchError(f"a map must be h x w, got shape {raw_map.shape}")
        u8 = to_uint8(self.prepare_map(raw_map, height, width) if scoremap is None else scoremap)
        if self.box_search == "reference":
            from wsolbench.protocols.reference_boxes import reference_level_boxes

            found = reference_level_boxes(u8, self.thresholds, self.multi_contour)
            best = best_iou_per_threshold(found, self.boxes_in_convention(found.boxes, *u8.shape), gt)
        else:
            best = best_ious(u8, self.thresholds, self.multi_contour, gt, grow=self.space == "resized")
        return best[None, :] >= np.asarray(self.iou_thresholds)[:, None]

    def mask_histograms(self, raw_map: np.ndarray, height: int, width: int, mask: np.ndarray, index: int,
                        scoremap: np.ndarray | None = None):
        """PxAP histograms of one image: object and background pixel values over [thresholds..., 1, 2, 3]
        (``np.histogram``'s counts, ``_histogram``). ``scoremap``: the map as ``prepare_map`` makes it, if the
        caller has it."""
        if mask.ndim != 2:
            raise WsolbenchError(f"image {index}: mask must be h x w, got shape {mask.shape}")
        values = set(np.unique(mask).tolist())
        if not values <= {0, 1, 255}:
            raise WsolbenchError(f"image {index}: mask values must be 0, 1 or 255, found {sorted(values - {0, 1, 255})[:5]}")
        scoremap = self.prepare_map(raw_map, height, width) if scoremap is None else scoremap
        m = resize_mask(mask, *scoremap.shape)
        from wsolbench.protocols._histogram import mask_histograms  # numba: imported on first use

        return mask_histograms(scoremap, m, self.edges)

    def summarize(self, test_acc: LocalizationAccumulator, val_acc: LocalizationAccumulator | None = None, policy: str = "val") -> dict:
        return summarize(self, test_acc, val_acc, policy)


def search_kwargs(box_search: str | None) -> dict:
    """``PROTOCOLS.build`` keyword for a ``--box-search`` value: none for the default, so a plugin's protocol
    without the setting still builds."""
    return {} if box_search in (None, "fast") else {"box_search": box_search}


def _largest_only(name: str, multi_contour: bool) -> None:
    if multi_contour:
        raise WsolbenchError(f"protocol {name} uses the largest-region rule only (the I2C paper's); use wsoleval for all regions")


@PROTOCOLS.register("wsoleval", description="wsolevaluation (CVPR 2020): 224x224 bicubic, MaxBoxAccV2 / MaxBoxAcc, PxAP")
def wsoleval(interval: float = 0.001, multi_contour: bool = True, box_search: str = "fast") -> Protocol:
    return Protocol("wsoleval", space="resized", interval=interval, multi_contour=multi_contour, iou_thresholds=(0.3, 0.5, 0.7),
                    box_search=box_search)


@PROTOCOLS.register("cub", description="I2C paper, CUB-200-2011: Top-1/Top-5/GT-known Loc, IoU 0.5, original pixels", preset="cub")
@PROTOCOLS.register("ilsvrc", description="I2C paper, ILSVRC 2012: Top-1/Top-5/GT-known Loc, IoU 0.5, original pixels", preset="ilsvrc")
def i2c_paper(preset: str = "cub", interval: float = 0.01, multi_contour: bool = False, box_search: str = "fast") -> Protocol:
    _largest_only(preset, multi_contour)
    return Protocol(preset, space="original", interval=interval, multi_contour=False, iou_thresholds=(0.5,),
                    box_search=box_search)
