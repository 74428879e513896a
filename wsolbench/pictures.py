"""Pictures of a finished run: maps, boxes and threshold curves, drawn exactly as the protocol scores them.

    run = load_run(RUN_DIR)                        # wsolbench.finished_run: the rebuilt model and its data
    indices = pick_images(len(run.samples("test")), n=16, seed=0)
    tiles = make_tiles(run, "test", indices)       # finished_run: map, ground truth and predicted box per image
    save_png(grid_figure(run, "test", tiles), path)
    save_png(curves_figure(run.metrics, run.label), path)
    save_png(losses_figure(read_steps(RUN_DIR / "steps.jsonl"), run.label), path)

Every tile is in the protocol's scoring space: the original image for ``cub``/``ilsvrc``, the image resized
to 224x224 for ``wsoleval``. The map is the protocol's own (resized, min-max normalised) map of the TRUE
class; the red box(es) are the protocol's boxes at the run's chosen threshold (``metrics.json``
``threshold``: the GT-known / IoU 0.5 one), in the protocol's box convention, so the IoU in a tile's title
is the one the run was scored with (the best over predicted boxes and ground-truth boxes).
Drawing uses matplotlib's Agg canvas directly (no pyplot, no screen, no global backend switch).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wsolbench.engine import rundir as R
from wsolbench.errors import WsolbenchError

TILE_INCHES = (2.4, 2.7)  # width, height of one image tile (its two-line title included)
HEADER_INCHES = 0.6  # room for the figure's title above the tiles
CURVES_INCHES = (6.4, 4.2)
DPI = 100
MAP_ALPHA = 0.45
MAP_CMAP = "jet"
GT_COLOR, PRED_COLOR = "lime", "red"
POLICY_WORDS = {
    "val": "chosen on val (held out)",
    "test-optimal": "optimal on test (the old papers' practice: optimistic)",
    "fixed": "fixed in advance",
}


def pick_images(count: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indices out of ``count`` (all when fewer), the same for the same seed, sorted."""
    if n < 1:
        raise WsolbenchError(f"--n must be at least 1, got {n}")
    if count == 0:
        raise WsolbenchError("the split holds no image")
    chosen = np.random.default_rng(seed).choice(count, size=min(n, count), replace=False)
    return sorted(int(i) for i in chosen)


def predicted_boxes(protocol, raw_map: np.ndarray, height: int, width: int, threshold: float) -> np.ndarray:
    """The boxes ``protocol`` scores for ``raw_map`` at ``threshold``: (K, 4), scoring space, its box convention."""
    from wsolbench.protocols.level_boxes import threshold_boxes
    from wsolbench.protocols.scoremaps import to_uint8

    u8 = to_uint8(protocol.prepare_map(raw_map, height, width))
    levels = threshold_boxes(u8, np.array([threshold], np.float64), protocol.multi_contour)
    return np.array(protocol.boxes_in_convention(levels.at_threshold(0), *u8.shape))


@dataclass
class Tile:
    """One image as the protocol sees it, ready to draw."""

    image_id: str
    image: np.ndarray  # RGB uint8 in the scoring space
    heat: np.ndarray  # the true class's normalised map, same size
    gt: np.ndarray  # (G, 4) ground-truth boxes, scoring space
    pred: np.ndarray  # (K, 4) the protocol's boxes at the run's threshold
    iou: float  # best IoU of a predicted box with a ground-truth box
    label: int
    predicted: int | None  # top-1 class; None for map-only baselines


def make_tile(protocol, sample, raw_map: np.ndarray, predicted: int | None, threshold: float) -> Tile:
    from wsolbench.data.loading import load_image
    from wsolbench.protocols.box_scores import iou_inclusive

    height, width = sample.size
    heat = protocol.prepare_map(raw_map, height, width)
    gt = protocol.check_boxes(sample.boxes, height, width, sample.image_id)
    pred = predicted_boxes(protocol, raw_map, height, width, threshold)
    image = load_image(sample.path)
    if image.shape[:2] != heat.shape:  # wsoleval: the benchmark scores on the image resized to 224x224
        image = cv2.resize(image, (heat.shape[1], heat.shape[0]), interpolation=cv2.INTER_AREA)
    iou = float(iou_inclusive(pred, gt).max())
    return Tile(sample.image_id, image, heat, gt, pred, iou, sample.label, predicted)


# --- drawing -------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _name(names: list[str], label: int | None) -> str:
    if label is None:
        return "-"
    return names[label] if 0 <= label < len(names) else str(label)


def _box_patch(box, color: str, **style):
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = (float(v) for v in box)  # inclusive pixels: the box covers whole pixel cells
    # not clipped: a box along the image border stays fully visible
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor=color, clip_on=False,
                     **{"linewidth": 1.5, **style})


def draw_tile(ax, tile: Tile, names: list[str]) -> None:
    from wsolbench.protocols.box_scores import iou_inclusive

    h, w = tile.heat.shape
    ax.imshow(tile.image, interpolation="nearest")
    ax.imshow(tile.heat, cmap=MAP_CMAP, alpha=MAP_ALPHA, vmin=0.0, vmax=1.0, interpolation="nearest")
    for box in tile.gt:
        ax.add_patch(_box_patch(box, GT_COLOR))
    # all-regions rule: the box that scores (best IoU) solid, the other regions' boxes thin and dashed
    best = int(iou_inclusive(tile.pred, tile.gt).max(axis=1).argmax()) if len(tile.pred) else -1
    for k, box in enumerate(tile.pred):
        style = {} if k == best else {"linewidth": 0.8, "linestyle": "--"}
        ax.add_patch(_box_patch(box, PRED_COLOR, **style))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    right = tile.predicted is None or tile.predicted == tile.label
    ax.set_title(f"{tile.image_id}  true {_name(names, tile.label)}\npred {_name(names, tile.predicted)}  "
                 f"IoU {tile.iou:.2f}", fontsize=7, color="black" if right else "firebrick")


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid of ``n`` tiles."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _caption(run) -> str:
    m = run.metrics
    return (f"protocol {m['protocol']}, {m.get('box_rule', run.protocol.box_rule)} box, threshold {run.threshold:g} "
            f"({POLICY_WORDS.get(m.get('policy'), m.get('policy'))})\n"
            f"map of the true class; green: ground truth, red: predicted box")


def grid_figure(run, split: str, tiles: list[Tile]):
    rows, cols = grid_shape(len(tiles))
    fig = _figure(cols * TILE_INCHES[0], rows * TILE_INCHES[1] + HEADER_INCHES)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[len(tiles):]:
        ax.set_axis_off()
    for ax, tile in zip(axes.ravel(), tiles):
        draw_tile(ax, tile, run.class_names)
    fig.suptitle(f"{run.label}, {run.config.get('dataset')} {split}: GT-known Loc "
                 f"{run.metrics.get('gt_known_loc', float('nan')):.1f}\n{_caption(run)}", fontsize=8, wrap=True)
    return fig


def compare_figure(runs: tuple, split: str, tiles: tuple[list[Tile], list[Tile]]):
    """One column per run (its label on top), one row per image."""
    rows = len(tiles[0])
    fig = _figure(2 * TILE_INCHES[0], rows * TILE_INCHES[1] + HEADER_INCHES)
    for sub, run, column in zip(fig.subfigures(1, 2), runs, tiles):
        axes = sub.subplots(rows, 1, squeeze=False)[:, 0]
        for ax, tile in zip(axes, column):
            draw_tile(ax, tile, run.class_names)
        m = run.metrics
        sub.suptitle(f"{run.label}\n{run.run_dir.name}\n{m['protocol']}, t = {run.threshold:g} ({m.get('policy')}), "
                     f"GT-known {m.get('gt_known_loc', float('nan')):.1f}", fontsize=7)
    return fig


def check_curves(metrics: dict, where: str) -> tuple[list[float], dict[str, list[float]]]:
    """(thresholds, {split: GT-known Loc per threshold}) from metrics' "curves"; malformed is an error."""
    curves = metrics.get("curves")
    if not isinstance(curves, dict) or not isinstance(curves.get("gt_known_loc"), dict):
        raise WsolbenchError(f"{where}: 'curves' must hold 'thresholds' and 'gt_known_loc' {{split: [...]}}")
    thresholds = curves.get("thresholds") or []
    per_split = {s: v for s, v in curves["gt_known_loc"].items() if s in ("val", "test")}
    if "test" not in per_split:
        raise WsolbenchError(f"{where}: 'curves' has no test curve")
    for split, values in per_split.items():
        if not isinstance(values, list) or len(values) != len(thresholds):
            raise WsolbenchError(f"{where}: the {split} curve has {len(values) if isinstance(values, list) else '?'} "
                                 f"values for {len(thresholds)} thresholds")
    return thresholds, per_split


def curves_figure(metrics: dict, title: str, where: str = R.METRICS):
    """GT-known Loc (IoU 0.5) against the threshold, val and test, with the chosen threshold marked."""
    thresholds, per_split = check_curves(metrics, where)
    chosen = float(metrics["threshold"])
    fig = _figure(*CURVES_INCHES)
    ax = fig.subplots()
    styles = {"val": dict(color="tab:blue", linestyle="--"), "test": dict(color="tab:orange")}
    for split in ("val", "test"):
        if split in per_split:
            ax.plot(thresholds, per_split[split], label=split, linewidth=1.5, **styles[split])
    policy = POLICY_WORDS.get(metrics.get("policy"), str(metrics.get("policy")))
    ax.axvline(chosen, color="black", linewidth=1, linestyle=":", label=f"t = {chosen:g}, {policy}")
    if "gt_known_loc" in metrics:
        ax.plot([chosen], [metrics["gt_known_loc"]], "o", color="tab:orange")
        ax.annotate(f"test {metrics['gt_known_loc']:.1f}", (chosen, metrics["gt_known_loc"]),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    ax.set_xlabel("threshold on the min-max normalised map")
    ax.set_ylabel("GT-known Loc (%, IoU 0.5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    per_iou = metrics.get("thresholds_per_iou")  # wsoleval's MaxBoxAccV2 picks one threshold per IoU level
    extra = ("\nMaxBoxAccV2 thresholds: " + ", ".join(f"IoU {k}: {v:g}" for k, v in per_iou.items())) if per_iou else ""
    ax.set_title(f"{title}\nprotocol {metrics.get('protocol')}, {metrics.get('box_rule', '?')} box{extra}", fontsize=9)
    return fig


LOSS_META = {"epoch", "step", "global_step", "lr", "images_per_s"}  # steps.jsonl fields that are not loss terms


def read_steps(path: str | Path) -> list[dict]:
    """steps.jsonl's records; a torn or foreign line is an error naming the file and line."""
    import json

    records = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WsolbenchError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "global_step" not in record:
            raise WsolbenchError(f"{path}:{n}: not a step record (no 'global_step')")
        records.append(record)
    return records


def loss_terms(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """{term: (steps, values)}: ``loss`` (the total) and every named term the method logged (``cls``, ``sc``,
    ``gc``, an ACoL branch's loss, ...), in the order they first appear."""
    terms: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        for key, value in r.items():
            if key not in LOSS_META and isinstance(value, (int, float)) and not isinstance(value, bool):
                steps, values = terms.setdefault(key, ([], []))
                steps.append(int(r["global_step"]))
                values.append(float(value))
    if len(terms) == 2 and "loss" in terms and terms["loss"] == next(v for k, v in terms.items() if k != "loss"):
        del terms["loss"]  # one term: the total is that term, drawn once
    return terms


def losses_figure(records: list[dict], title: str, smooth: int = 0):
    """Each loss term against the optimizer step (log scale when they span decades); ``smooth`` > 1 adds a running
    mean over that many steps, drawn over the raw values (kept faint)."""
    terms = loss_terms(records)
    if not terms:
        raise WsolbenchError(f"{title}: the steps log holds no loss term")
    fig = _figure(*CURVES_INCHES)
    ax = fig.subplots()
    for key, (steps, values) in terms.items():
        line, = ax.plot(steps, values, linewidth=0.8, alpha=0.35 if smooth > 1 else 1.0)
        if smooth > 1 and len(values) >= smooth:
            mean = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
            ax.plot(steps[smooth - 1:], mean, color=line.get_color(), linewidth=1.5, label=key)
        else:
            line.set_label(key)
    every = [v for _, values in terms.values() for v in values]
    if min(every) > 0 and max(every) / min(every) > 30:  # terms of different sizes (CE vs lambda * SC)
        ax.set_yscale("log")
    epochs = sorted({r.get("epoch") for r in records if r.get("epoch") is not None})
    starts = [min(r["global_step"] for r in records if r.get("epoch") == e) for e in epochs[1:]]
    for s in starts:  # epoch boundaries
        ax.axvline(s - 0.5, color="grey", linewidth=0.5, alpha=0.4)
    ax.set_xlabel("optimizer step (grey: epoch starts)")
    ax.set_ylabel("loss term (as weighted in the total)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"{title}\ntraining loss terms" + (f", running mean over {smooth} steps" if smooth > 1 else ""),
                 fontsize=9)
    return fig


def save_png(fig, path: str | Path) -> Path:
    """Render ``fig`` to PNG in memory, then write it atomically."""
    from wsolbench.engine.atomic import write_bytes

    write_bytes(path, png_bytes(fig))
    return Path(path)


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """``fig`` rendered to PNG in memory."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# --- the leaderboard's forest plot -------------------------------------------------------------------------

@dataclass
class ForestRow:
    """One leaderboard row: its mean over seeds, its 95% interval (None: no per-image records) and each seed's
    own value, with whether that run collapsed."""
    label: str
    mean: float
    span: tuple[float, float] | None
    seeds: list[tuple[int, float, bool]]  # (seed, value, collapsed)


def forest_figure(rows: list[ForestRow], measure: str, title: str):
    """One line per row, top to bottom: the 95% interval as a bar, the mean as a black tick, and each seed's value
    as a dot just below it (a collapsed run as a red x)."""
    if not rows:
        raise WsolbenchError(f"{title}: no row to draw")
    fig = _figure(CURVES_INCHES[0] + 1.6, 0.9 + 0.42 * len(rows))
    ax = fig.subplots()
    for y, row in enumerate(rows):
        if row.span is not None:
            ax.barh(y, row.span[1] - row.span[0], left=row.span[0], height=0.32, color="tab:blue", alpha=0.35,
                    edgecolor="tab:blue", label="95% interval" if y == 0 else None)
        if np.isfinite(row.mean):
            ax.plot([row.mean, row.mean], [y - 0.2, y + 0.2], color="black", linewidth=2,
                    label="mean over seeds" if y == 0 else None)
        for seed, value, collapsed in row.seeds:
            if np.isfinite(value):
                ax.plot(value, y + 0.3, "x" if collapsed else "o", color="red" if collapsed else "dimgray",
                        markersize=6 if collapsed else 4, linestyle="none")
    ax.plot([], [], "o", color="dimgray", markersize=4, linestyle="none", label="a seed")  # legend entries only
    if any(c for row in rows for _, _, c in row.seeds):
        ax.plot([], [], "x", color="red", markersize=6, linestyle="none", label="a collapsed seed")
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -0.6)  # the first row on top
    ax.set_xlabel(f"{measure} (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a row
    ax.set_title(title, fontsize=9)
    return fig
