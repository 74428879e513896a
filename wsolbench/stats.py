"""Uncertainty of the reported numbers: a seeded percentile bootstrap over test images (DESIGN.md section 9).

A run's accumulators keep one row per image (does its box hit at each IoU level and threshold; is its class
right); ``write_run_records`` saves them beside ``metrics.json`` as ``per-image-PROTOCOL.npz``. A resample
draws N test images with replacement; as a (B x N) matrix of counts, every metric of every resample is a
count-weighted sum, so B resamples are one matrix product with the (N x T) hit matrix.

Rules:
- each metric is recomputed exactly as reported: under ``test-optimal`` GT-known Loc (and each IoU's
  MaxBoxAcc) re-takes its max over thresholds on every resample, and Top-1/Top-5 Loc follow that resample's
  threshold; a val-chosen or fixed threshold stays fixed (val is not resampled); MaxBoxAccV2 is the mean of
  the IoU levels' accuracies, each at its own threshold;
- several runs (the seeds of a leaderboard row, or two rows being compared) share the resampled image
  indices, so they must hold the same test images (the seeds of a row are scored on one test set: seeds and
  images are crossed, so one image resample serves every seed);
- a row of k >= 2 seeds adds the seed level (``seed_level`` / ``row_values``): per resample, its seeds' mean
  on the resampled images plus a Student-t draw of the seeds' mean around it, scaled by the seeds' spread on
  those images (a Gaussian multiplier bootstrap over seeds, rescaled to t with k - 1 degrees of freedom: the
  classical small-sample interval, where resampling 3 seeds with replacement has 10 distinct outcomes and
  covers ~75%). The seed draws depend on (seed, k) only: rows of k seeds share them seed index by seed
  index (paired by seed), rows of different seed counts get independent ones; a 1-seed row is its run's draws;
- interval: the 2.5th and 97.5th percentiles of B resamples (numpy's linear interpolation); a paired
  difference A - B is significant at 95% when its interval does not hold 0;
- PxAP (where masks exist): each image keeps its object / background pixel counts over the protocol's PxAP
  bins; a resample's histograms are the count-weighted sums of those rows, and its PxAP is computed from them
  as ``protocols.summary.pxap`` does (so the full sample gives the reported value).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from wsolbench.errors import WsolbenchError

B_DEFAULT, SEED_DEFAULT, LEVEL = 1000, 0, 95.0
MEASURES = ("gt_known_loc", "top1_loc", "top5_loc", "maxboxacc", "maxboxacc_v2", "top1_cls", "top5_cls", "pxap")
CHUNK = 250  # resamples per matrix product: bounds memory at CHUNK x (N + T) floats


def records_name(protocol: str, variant: str = "") -> str:
    """``per-image-PROTOCOL.npz``; an evaluation variant (explainer, ten-crop, another classifier) has its own
    file, ``per-image-PROTOCOL-VARIANT.npz``, beside the run's own (``engine/reeval.eval_variant``)."""
    return f"per-image-{protocol}{'-' + variant if variant else ''}.npz"


# --- the per-image file ---------------------------------------------------------------------------
def _split_arrays(prefix: str, acc, image_ids: list[str]) -> dict[str, np.ndarray]:
    s = {k: v.numpy() for k, v in acc.states.items() if k.startswith("img_")}
    index = s["img_index"]
    ids = np.array([image_ids[i] if i >= 0 else "" for i in index], dtype=str)
    out = {f"{prefix}_image_ids": ids, f"{prefix}_hits": s["img_hits"], f"{prefix}_top5_hits": s["img_top5_hits"],
           f"{prefix}_flags": np.stack([s["img_labeled"], s["img_top1"], s["img_top5"]])}
    if s.get("img_mask_hist") is not None and s["img_mask_hist"].shape[2]:  # masks were scored: PxAP's rows
        out[f"{prefix}_mask_hist"] = s["img_mask_hist"]
    return out


def write_records(path: Path, protocol, test_acc, val_acc, test_ids: list[str], val_ids: list[str] | None) -> None:
    """One protocol's per-image rows of test (and val), atomically."""
    from wsolbench.engine.atomic import write_bytes

    arrays = {"protocol": np.array(protocol.name), "thresholds": protocol.thresholds,
              "iou_thresholds": np.array(protocol.iou_thresholds), **_split_arrays("test", test_acc, test_ids)}
    if val_acc is not None and int(val_acc.states["n_images"]):
        arrays.update(_split_arrays("val", val_acc, val_ids or []))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def write_run_records(run_dir: Path, protocols, accs: dict, splits: dict, variant: str = "") -> None:
    """The hook of ``train_and_evaluate`` and ``wsolbench eval``: ``accs[split]`` holds one accumulator per
    protocol (or one accumulator for one protocol); ``splits[split]`` the samples, in order."""
    protocols = list(protocols) if isinstance(protocols, (list, tuple)) else [protocols]
    as_list = lambda a: list(a) if isinstance(a, (list, tuple)) else [a]  # noqa: E731
    test, val = as_list(accs["test"]), as_list(accs.get("val") or [None] * len(protocols))
    ids = {split: [s.image_id for s in samples] for split, samples in splits.items()}
    for protocol, t, v in zip(protocols, test, val):
        write_records(Path(run_dir) / records_name(protocol.name, variant), protocol, t, v, ids["test"], ids.get("val"))


@dataclass(frozen=True)
class Records:
    """One run's test rows under one protocol, with the threshold rule of the number they explain."""
    source: str
    image_ids: np.ndarray  # (N,)
    hits: np.ndarray  # (N, I, T) bool
    labeled: np.ndarray  # (N,) bool; top1, top5 likewise
    top1: np.ndarray
    top5: np.ndarray
    top5_hits: np.ndarray  # (N, T) bool
    thresholds: np.ndarray
    iou_thresholds: tuple[float, ...]
    protocol: str
    val_hits_sum: np.ndarray | None  # (I, T) counts on val, to choose the val thresholds
    chosen: tuple[int, ...] | None = None  # threshold index per IoU; None: the test optimum of each resample
    mask_hist: np.ndarray | None = None  # (N, 2, T + 2) object / background pixel counts (PxAP); None: no masks

    @property
    def n(self) -> int:
        return len(self.image_ids)

    @property
    def i05(self) -> int:
        return self.iou_thresholds.index(0.5)

    def with_policy(self, policy: str, threshold: float | None = None) -> "Records":
        """The rule of the reported number: ``test-optimal``, ``val`` or ``fixed`` (at ``threshold``)."""
        if policy == "test-optimal":
            return replace(self, chosen=None)
        if policy == "val":
            if self.val_hits_sum is None:
                raise WsolbenchError(f"{self.source}: policy 'val' but the file holds no val rows")
            return replace(self, chosen=tuple(int(np.argmax(row)) for row in self.val_hits_sum))  # first best, as summarize
        if policy in ("fixed",) or policy.startswith("fixed:"):
            value = float(policy.split(":", 1)[1]) if ":" in policy else threshold
            if value is None:
                raise WsolbenchError(f"{self.source}: policy 'fixed' needs its threshold")
            index = int(np.argmin(np.abs(self.thresholds - value)))
            return replace(self, chosen=(index,) * len(self.iou_thresholds))
        raise WsolbenchError(f"{self.source}: unknown threshold policy '{policy}'")

    def has(self, measure: str) -> bool:
        if measure in ("maxboxacc", "maxboxacc_v2"):
            return self.protocol == "wsoleval"
        if measure in ("top1_loc", "top5_loc", "top1_cls", "top5_cls"):
            return bool(self.labeled.any())
        if measure == "pxap":
            return self.mask_hist is not None and bool(self.mask_hist[:, 0].any())
        return measure == "gt_known_loc"


def load_records(run_dir: Path, protocol: str, policy: str = "val", threshold: float | None = None,
                 variant: str = "") -> Records:
    """``RUN_DIR/per-image-PROTOCOL[-VARIANT].npz`` under a threshold policy (one clear error when missing or bad)."""
    path = Path(run_dir) / records_name(protocol, variant)
    if not path.is_file():
        raise WsolbenchError(f"{path}: no per-image records (a run from before they were kept? "
                             f"`wsolbench eval {run_dir} --protocol {protocol}` writes them)")
    try:
        with np.load(path, allow_pickle=False) as z:
            t = len(z["thresholds"])
            unpack = lambda a: np.unpackbits(a, axis=-1, count=t).astype(bool)  # noqa: E731
            flags = z["test_flags"].astype(bool)
            val = unpack(z["val_hits"]).sum(axis=0) if "val_hits" in z.files else None
            rec = Records(source=str(path), image_ids=z["test_image_ids"], hits=unpack(z["test_hits"]),
                          labeled=flags[0], top1=flags[1], top5=flags[2], top5_hits=unpack(z["test_top5_hits"]),
                          thresholds=z["thresholds"], iou_thresholds=tuple(float(x) for x in z["iou_thresholds"]),
                          protocol=str(z["protocol"]), val_hits_sum=val,
                          mask_hist=z["test_mask_hist"] if "test_mask_hist" in z.files else None)
    except (OSError, KeyError, ValueError) as exc:
        raise WsolbenchError(f"{path}: unreadable per-image records ({exc})") from None
    return rec.with_policy(policy, threshold)


# --- the bootstrap --------------------------------------------------------------------------------
def resample_counts(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n) float32: how often each of n images is drawn in each of b resamples of size n."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)


def _dot(counts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """counts @ x in float32 (exact: integer sums below 2**24), returned as float64 for the divisions."""
    return (counts @ x.astype(np.float32)).astype(np.float64)


def _dot_counts(counts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """counts @ x for pixel counts: float32 while every sum stays below 2**24 (exact), else float64."""
    bound = float(counts.sum(axis=1).max(initial=0)) * float(x.max(initial=0))
    if bound < 2 ** 24:
        return _dot(counts, x)
    return counts.astype(np.float64) @ x.astype(np.float64)


def pxap_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``protocols.summary.pxap`` (percent) of each row of (B, K) object / background histograms; NaN for a row
    with no object pixel."""
    tp = np.cumsum(pos[:, ::-1], axis=1)
    fp = np.cumsum(neg[:, ::-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / pos.sum(axis=1, keepdims=True)
        ap = precision[:, 1:] * np.diff(recall, axis=1)
    ap = np.where(np.isnan(precision[:, 1:]), 0.0, ap).sum(axis=1) * 100
    return np.where(pos.sum(axis=1) > 0, ap, np.nan)


def _best(counts: np.ndarray, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample, the best count over thresholds and its threshold index (the first best, as summarize).

    Thresholds with the same column of hits give the same count on every resample: one product per distinct
    column, taken in order of first appearance so that argmax keeps the first best threshold."""
    _, first = np.unique(np.packbits(hits, axis=0).T, axis=0, return_index=True)
    columns = np.sort(first)
    totals = _dot(counts, hits[:, columns])
    j = totals.argmax(axis=1)
    return totals[np.arange(len(totals)), j], columns[j]


def _at(counts: np.ndarray, hits: np.ndarray, index: np.ndarray) -> np.ndarray:
    """counts[r] @ hits[:, index[r]] for each resample r, one product per distinct index."""
    distinct, where = np.unique(index, return_inverse=True)
    totals = _dot(counts, hits[:, distinct])
    return totals[np.arange(len(totals)), where]


def _metrics(rec: Records, counts: np.ndarray, measures) -> dict[str, np.ndarray]:
    """Each measure (percent) on each resample; NaN where the run does not report it."""
    b = len(counts)
    out, per_iou = {}, {}
    every_level = "maxboxacc_v2" in measures and rec.has("maxboxacc_v2")
    for i in range(len(rec.iou_thresholds)) if every_level else [rec.i05]:
        if rec.chosen is None:
            per_iou[i] = _best(counts, rec.hits[:, i])
        else:
            t = np.full(b, rec.chosen[i])
            per_iou[i] = (_dot(counts, rec.hits[:, i, rec.chosen[i]]), t)
    n = counts.sum(axis=1, dtype=np.float64)
    loc05, t05 = per_iou[rec.i05]
    n_labeled = _dot(counts, rec.labeled)
    with np.errstate(invalid="ignore", divide="ignore"):
        for m in measures:
            if not rec.has(m):
                out[m] = np.full(b, np.nan)
            elif m in ("gt_known_loc", "maxboxacc"):
                out[m] = 100.0 * loc05 / n
            elif m == "maxboxacc_v2":
                out[m] = 100.0 * np.mean([per_iou[i][0] for i in sorted(per_iou)], axis=0) / n
            elif m == "top1_cls":
                out[m] = 100.0 * _dot(counts, rec.top1) / n_labeled
            elif m == "top5_cls":
                out[m] = 100.0 * _dot(counts, rec.top5) / n_labeled
            elif m == "top1_loc":
                out[m] = 100.0 * _at(counts, rec.hits[:, rec.i05] & rec.top1[:, None], t05) / n_labeled
            elif m == "pxap":
                out[m] = pxap_rows(_dot_counts(counts, rec.mask_hist[:, 0]), _dot_counts(counts, rec.mask_hist[:, 1]))
            elif m == "top5_loc":
                out[m] = 100.0 * _at(counts, rec.top5_hits & rec.top5[:, None], t05) / n_labeled
            else:
                raise WsolbenchError(f"unknown measure '{m}' (one of: {', '.join(MEASURES)})")
    return out


def check_same_images(records: list[Records]) -> None:
    first = records[0]
    for rec in records[1:]:
        if rec.n != first.n or not np.array_equal(rec.image_ids, first.image_ids):
            raise WsolbenchError(f"{rec.source} and {first.source} hold different test images "
                                 f"({rec.n} vs {first.n} images, or another order); a paired comparison needs the same ones")


def draws(records: list[Records], measures=("gt_known_loc",), b: int = B_DEFAULT, seed: int = SEED_DEFAULT) -> dict[str, np.ndarray]:
    """{measure: (len(records), b)}: every run's metric on the same b resamples of the shared test images."""
    check_same_images(records)
    rng = np.random.default_rng(seed)
    out = {m: np.empty((len(records), b)) for m in measures}
    for start in range(0, b, CHUNK):
        counts = resample_counts(records[0].n, min(CHUNK, b - start), rng)
        for r, rec in enumerate(records):
            for m, values in _metrics(rec, counts, measures).items():
                out[m][r, start:start + len(values)] = values
    return out


def full_sample(rec: Records, measure: str) -> float:
    """The metric on the test set itself (every image once): the reported number."""
    return float(_metrics(rec, np.ones((1, rec.n), np.float32), [measure])[measure][0])


def interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap values (NaN when any is NaN)."""
    if np.isnan(values).any():
        return float("nan"), float("nan")
    low, high = np.percentile(values, [(100 - LEVEL) / 2, 100 - (100 - LEVEL) / 2])
    return float(low), float(high)


SEED_STREAM = 1  # the seed level's random numbers: np.random.default_rng([seed, SEED_STREAM, k])


def seed_level(k: int, b: int, seed: int = SEED_DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """The seed level's random numbers for rows of ``k`` seeds: (b, k) standard normal multipliers (the j-th
    column for the j-th seed, sorted) and (b,) chi-square draws with k - 1 degrees of freedom.

    They depend on (seed, k) only, so every row of k seeds uses the same ones (paired by seed index); rows of
    different seed counts get independent ones (no seed can be matched to a seed of the other row)."""
    if k < 2:
        raise WsolbenchError(f"the seed level needs 2 or more seeds, not {k}")
    rng = np.random.default_rng([seed, SEED_STREAM, k])
    return rng.standard_normal((b, k)), rng.chisquare(k - 1, b)


def row_values(values: np.ndarray, level: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(b,) draws of a row's mean over seeds from its seeds' (k, b) draws on the shared image resamples.

    One seed: its own draws (the image-only interval). k seeds: per resample b, the seeds' mean on b's images
    plus (s_b / sqrt(k)) * t, where s_b is the seeds' sample std on b's images and t ~ Student t(k - 1), built
    from ``level`` (``seed_level(k, ...)``) as sqrt(k / (k - 1)) * sum_j g_j (x_j - mean) / k / sqrt(v / (k - 1)):
    Gaussian multipliers g over the seeds and v ~ chi2(k - 1). Under normal seed effects its percentile
    interval is the t interval of the seeds' mean; with little seed spread it is the image-only interval.
    Clipped to [0, 100] (every measure is a percentage)."""
    values = np.asarray(values, dtype=np.float64)
    k = len(values)
    if k == 1:
        return values[0]
    g, v = level
    mean = values.mean(axis=0)
    z = np.sqrt(k / (k - 1)) * np.einsum("bk,kb->b", g, values - mean) / k  # ~ N(0, s_b^2 / k)
    return np.clip(mean + z / np.sqrt(v / (k - 1)), 0.0, 100.0)


def rows_draws(rows: list[list[Records]], measures=("gt_known_loc",), b: int = B_DEFAULT,
               seed: int = SEED_DEFAULT) -> dict[str, np.ndarray]:
    """{measure: (len(rows), b)}: each row's mean over its runs (seeds, in the given order) on the same b image
    resamples and, for rows of 2 or more runs, the seed level of ``row_values``."""
    everyone = [rec for row in rows for rec in row]
    if not rows or any(not row for row in rows):
        raise WsolbenchError("every row needs at least one run")
    d = draws(everyone, measures, b, seed)
    levels = {k: seed_level(k, b, seed) for k in {len(row) for row in rows} if k > 1}
    out = {m: np.empty((len(rows), b)) for m in measures}
    start = 0
    for r, row in enumerate(rows):
        k = len(row)
        for m in measures:
            out[m][r] = row_values(d[m][start:start + k], levels.get(k))
        start += k
    return out


@dataclass(frozen=True)
class Difference:
    measure: str
    a: float
    b: float
    low: float
    high: float
    n_images: int
    resamples: int
    seed: int

    @property
    def diff(self) -> float:
        return self.a - self.b

    @property
    def significant(self) -> bool:
        return not (self.low <= 0 <= self.high)


def paired_difference(runs_a: list[Records], runs_b: list[Records], measure: str = "gt_known_loc",
                      b: int = B_DEFAULT, seed: int = SEED_DEFAULT) -> Difference:
    """A - B (each the mean over its runs, the seeds of a row) on the same resampled test images and, for rows of
    several seeds, the same seed-level draws (``rows_draws``), with its 95% interval."""
    for rec in [*runs_a, *runs_b]:
        if not rec.has(measure):
            raise WsolbenchError(f"{rec.source}: the {rec.protocol} protocol reports no '{measure}' here")
    d = rows_draws([list(runs_a), list(runs_b)], [measure], b, seed)[measure]
    low, high = interval(d[0] - d[1])
    value = lambda runs: float(np.mean([full_sample(r, measure) for r in runs]))  # noqa: E731
    return Difference(measure, value(runs_a), value(runs_b), low, high, runs_a[0].n, b, seed)
