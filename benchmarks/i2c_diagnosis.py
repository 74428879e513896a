"""The I2C diagnosis (docs/i2c-diagnosis.md) from finished run folders: a table and a picture.

Run: ``.venv/bin/python benchmarks/i2c_diagnosis.py RUN_DIR... [--png PATH] [--md]``. Each run folder's
steps.jsonl gives the loss terms per step and, where the method logged them (``diag``: ACoL/I2C/CAM's feature
norms; with ``--set log_grads=true`` each term's gradient norm on the feature map), the norms; epochs.jsonl the
train and val Top-1 Cls per epoch; per-image-cub.npz the test numbers with their 95% bootstrap intervals
(``wsolbench.stats``: 1,000 resamples, seed 0). Nothing is trained here.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from wsolbench import stats as S


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def label(run: Path) -> str:
    config = json.loads((run / "config.json").read_text())
    settings = {k: v for k, v in config.get("method_settings", {}).items()
                if k not in ("head_width", "log_grads") and not (k == "loss_start_epoch" and v == 4)}
    extra = " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    pre = " pretrained" if config.get("pretrained") else ""
    return f"{config['method']}{pre}" + (f" ({extra})" if extra else "")


def ratio(num: float, den: float) -> float:
    """num / den, NaN where den is 0: a fine-tuned classifier can reach a CE (and its gradient) of exactly 0.0."""
    return num / den if den != 0 else np.nan


def per_cls(step: dict, term: str) -> float:
    """A loss term over CE in one step."""
    return ratio(step.get(term, np.nan), step["cls"])


def grad_per_cls(step: dict, term: str) -> float:
    """A term's gradient norm on F over CE's, where logged (``--set log_grads=true``)."""
    diag = step.get("diag", {})
    return ratio(diag.get(term, np.nan), diag.get("grad_cls", np.nan))


def per_epoch(run: Path) -> dict[int, dict]:
    """epoch -> means over its steps of cls, sc/cls, gc/cls, the diag norms, grad ratios; + train/val Top-1 Cls."""
    steps = _jsonl(run / "steps.jsonl")
    out: dict[int, dict] = {}
    for e in sorted({r["epoch"] for r in steps}):
        rs = [r for r in steps if r["epoch"] == e]
        mean = lambda f: float(np.nanmean([f(r) for r in rs]))  # noqa: E731
        d = lambda r, k: r.get("diag", {}).get(k, np.nan)  # noqa: E731
        row = {"cls": mean(lambda r: r["cls"]), "sc/cls": mean(lambda r: per_cls(r, "sc")),
               "sc/cls max": float(np.nanmax([per_cls(r, "sc") for r in rs] + [np.nan])),
               "gc/cls": mean(lambda r: per_cls(r, "gc"))}
        for k in ("feat_norm", "seed_norm", "center_norm", "grad_cls", "grad_sc", "grad_gc"):
            row[k] = mean(lambda r: d(r, k))
        for k in ("grad_sc", "grad_gc"):
            row[f"{k}/grad_cls"] = mean(lambda r: grad_per_cls(r, k))
        out[e] = row
    for r in _jsonl(run / "epochs.jsonl"):
        out[r["epoch"]].update(train_top1=r["train_top1_cls"], val_top1=r["val"]["top1_cls"])
    return out


def test_numbers(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    rec = S.load_records(run, metrics["protocol"], metrics["policy"], metrics["threshold"])
    d = S.draws([rec], ["gt_known_loc", "top1_cls"])
    return {m: (metrics[m], *S.interval(d[m][0])) for m in ("gt_known_loc", "top1_cls")} | {"n": rec.n}


def summary(run: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    start = config.get("method_settings", {}).get("loss_start_epoch", 4)
    epochs = per_epoch(run)
    on = epochs.get(start, {})
    before = [epochs[e] for e in epochs if e < start]
    last = epochs[max(epochs)]
    has_sc = any("sc" in r for r in _jsonl(run / "steps.jsonl")[:1])
    return {"run": label(run), "start": start if has_sc else None, "sc/cls on": on.get("sc/cls", np.nan),
            "sc/cls max": on.get("sc/cls max", np.nan), "grad sc/cls on": on.get("grad_sc/grad_cls", np.nan),
            "grad sc/cls end": last.get("grad_sc/grad_cls", np.nan),
            "feat before": before[-1]["feat_norm"] if before else np.nan, "feat end": last["feat_norm"],
            "train cls before": max((b["train_top1"] for b in before), default=np.nan),
            "train cls end": last["train_top1"], "val cls end": last["val_top1"], **test_numbers(run)}


def markdown(rows: list[dict]) -> str:
    f = lambda v, p=2: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{p}f}"  # noqa: E731
    iv = lambda t: f"{t[0]:.1f} [{t[1]:.1f}, {t[2]:.1f}]"  # noqa: E731
    lines = ["| run | SC on from epoch | SC/CE at switch-on (mean, max step) | grad SC/CE on F (switch-on, end) "
             "| feature norm (before, end) | train Top-1 Cls (best before, end) | test GT-known (n) | test Top-1 Cls |",
             "|:--|--:|:--|:--|:--|:--|:--|:--|"]
    for r in rows:
        lines.append(f"| {r['run']} | {'-' if r['start'] is None else r['start']} | {f(r['sc/cls on'])}, {f(r['sc/cls max'])} "
                     f"| {f(r['grad sc/cls on'])}, {f(r['grad sc/cls end'])} | {f(r['feat before'], 1)}, {f(r['feat end'], 1)} "
                     f"| {f(r['train cls before'], 1)}, {f(r['train cls end'], 1)} | {iv(r['gt_known_loc'])} ({r['n']}) "
                     f"| {iv(r['top1_cls'])} |")
    return "\n".join(lines)


def figure(runs: list[Path], path: Path) -> None:
    from wsolbench.pictures import _figure, save_png

    fig = _figure(10, 7)
    axes = fig.subplots(2, 2).ravel()
    for i, run in enumerate(runs):
        steps = _jsonl(run / "steps.jsonl")
        color = f"C{i % 10}"  # one colour per run in every panel
        x = np.array([r["global_step"] for r in steps])
        smooth = lambda v: np.convolve(v, np.ones(8) / 8, mode="same")  # noqa: E731
        name = label(run)
        sc = np.array([per_cls(r, "sc") for r in steps])
        if np.nan_to_num(sc).any():
            axes[0].plot(x, smooth(np.nan_to_num(sc)), label=name, linewidth=1, color=color)
            axes[0].set_yscale("log")  # ratios from 0.1 (random init) to 1e5 (a fine-tuned CE near 0)
        g = np.array([grad_per_cls(r, "grad_sc") for r in steps])
        if not np.isnan(g).all():
            axes[1].plot(x, smooth(np.nan_to_num(g)), label=name, linewidth=1, color=color)
        f = np.array([r.get("diag", {}).get("feat_norm", np.nan) for r in steps])
        if not np.isnan(f).all():
            axes[2].plot(x, f, label=name, linewidth=1, color=color)
        ep = _jsonl(run / "epochs.jsonl")
        axes[3].plot([r["epoch"] + 1 for r in ep], [r["train_top1_cls"] for r in ep], marker=".", label=name, linewidth=1, color=color)
    titles = ["SC / CE (loss values, running mean of 8 steps)", "|grad SC| / |grad CE| on the feature map F",
              "mean L2 norm of the feature vectors of F", "train Top-1 Cls (%) per epoch"]
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        if not ax.lines:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[:3]:
        ax.set_xlabel("optimizer step", fontsize=8)
    axes[3].set_xlabel("epoch", fontsize=8)
    axes[3].legend(fontsize=6, loc="lower right")
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--png", type=Path, help="write the four-panel picture here")
    parser.add_argument("--epochs", action="store_true", help="also print each run's per-epoch figures")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # means of all-NaN columns (terms a run lacks)
    unfinished = [run for run in args.runs if not (run / "metrics.json").is_file()]
    for run in unfinished:
        print(f"left out (not finished): {run}")
    args.runs = [run for run in args.runs if run not in unfinished]
    rows = [summary(run) for run in args.runs]
    print(markdown(rows))
    if args.epochs:
        for run in args.runs:
            print(f"\n{label(run)}")
            for e, r in per_epoch(run).items():
                print(e, " ".join(f"{k} {v:.3g}" for k, v in r.items()))
    if args.png:
        figure(args.runs, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
