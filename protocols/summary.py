"""From accumulated counts to the reported numbers, under a threshold policy recorded with them.

Policies: ``val`` (default: choose the threshold on the held-out split, report test there), ``test-optimal``
(the best threshold on test itself, the older papers' practice, labelled so) and ``fixed:T``.
GT-known Loc, Top-1 Loc and Top-5 Loc use the threshold that maximises GT-known Loc (IoU 0.5); MaxBoxAccV2
picks one threshold per IoU level (on val, or on test for test-optimal) and averages the three accuracies.
PxAP needs no threshold.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from wsolbench.errors import WsolbenchError

if TYPE_CHECKING:
    from wsolbench.protocols.accumulator import LocalizationAccumulator
    from wsolbench.protocols.presets import Protocol

POLICIES = ("val", "test-optimal", "fixed:T")


def parse_policy(policy: str, thresholds: np.ndarray) -> tuple[str, int | None]:
    """-> (kind, fixed threshold index or None)."""
    if policy in ("val", "test-optimal"):
        return policy, None
    if policy.startswith("fixed:"):
        try:
            value = float(policy.split(":", 1)[1])
        except ValueError:
            raise WsolbenchError(f"policy '{policy}': the threshold after 'fixed:' must be a number") from None
        index = int(np.argmin(np.abs(thresholds - value)))
        step = thresholds[1] - thresholds[0] if len(thresholds) > 1 else 1.0
        if not 0 <= value < 1 or abs(thresholds[index] - value) > step / 2:
            raise WsolbenchError(f"policy '{policy}': threshold must be in [0, 1)")
        return "fixed", index
    raise WsolbenchError(f"unknown threshold policy '{policy}' (use one of: {', '.join(POLICIES)})")


def _pct(count, total) -> np.ndarray:
    return np.asarray(count, np.float64) * 100.0 / max(int(total), 1)


def pxap(pos_hist: np.ndarray, neg_hist: np.ndarray) -> float:
    """wsolevaluation's PxAP: precision/recall from reversed cumulative sums, AP = sum(P[1:] * diff(R))."""
    tp = pos_hist[::-1].cumsum()
    fp = neg_hist[::-1].cumsum()
    n_pos = pos_hist.sum()
    if n_pos <= 0:
        raise WsolbenchError("PxAP: no object pixel in any mask")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / n_pos
    ap = precision[1:] * np.diff(recall)
    return float(ap[~np.isnan(precision[1:])].sum() * 100)


def summarize(protocol: "Protocol", test: "LocalizationAccumulator", val: "LocalizationAccumulator | None", policy: str = "val") -> dict:
    thresholds = protocol.thresholds
    kind, fixed_index = parse_policy(policy, thresholds)
    n_test = int(test.states["n_images"])
    if n_test == 0:
        raise WsolbenchError("nothing to summarize: the test accumulator holds no image")
    if kind == "val" and (val is None or int(val.states["n_images"]) == 0):
        raise WsolbenchError("policy 'val' needs a val accumulator with images (or ask for policy 'test-optimal')")
    i05 = protocol.iou05_index
    test_curves = _pct(test.states["gt_known"].numpy(), n_test)  # (I, T)
    val_curves = None if val is None or int(val.states["n_images"]) == 0 else _pct(val.states["gt_known"].numpy(), int(val.states["n_images"]))
    if kind == "fixed":
        per_iou = [fixed_index] * len(protocol.iou_thresholds)
    else:
        chooser = val_curves if kind == "val" else test_curves
        per_iou = [int(np.argmax(row)) for row in chooser]  # first best on ties
    chosen = per_iou[i05]
    out: dict = {
        "protocol": protocol.name, "policy": "fixed" if kind == "fixed" else kind, "box_rule": protocol.box_rule,
        "threshold": float(thresholds[chosen]), "n_images": n_test,
        "gt_known_loc": float(test_curves[i05, chosen]),
    }
    if val_curves is not None:
        out["n_val_images"] = int(val.states["n_images"])
    if protocol.name == "wsoleval":
        accs = [float(test_curves[i, t]) for i, t in enumerate(per_iou)]
        out["maxboxacc"] = accs[i05]
        out["maxboxacc_v2"] = float(np.mean(accs))
        out["thresholds_per_iou"] = {f"{iou:g}": float(thresholds[t]) for iou, t in zip(protocol.iou_thresholds, per_iou)}
        out["maxboxacc_per_iou"] = {f"{iou:g}": a for iou, a in zip(protocol.iou_thresholds, accs)}
    n_labeled = int(test.states["n_labeled"])
    if n_labeled:
        out["top1_cls"] = float(_pct(test.states["top1_cls"], n_labeled))
        out["top5_cls"] = float(_pct(test.states["top5_cls"], n_labeled))
        out["top1_loc"] = float(_pct(test.states["top1_loc"][chosen], n_labeled))
        out["top5_loc"] = float(_pct(test.states["top5_loc"][chosen], n_labeled))
        out["n_labeled"] = n_labeled
    if int(test.states["n_masks"]):
        out["pxap"] = pxap(test.states["mask_pos_hist"].numpy(), test.states["mask_neg_hist"].numpy())
        out["n_masks"] = int(test.states["n_masks"])
    out["config"] = protocol.config()
    curves = {"test": test_curves[i05].round(4).tolist()}
    if val_curves is not None:
        curves["val"] = val_curves[i05].round(4).tolist()
    out["curves"] = {"thresholds": [round(float(t), 6) for t in thresholds], "gt_known_loc": curves}
    return out
