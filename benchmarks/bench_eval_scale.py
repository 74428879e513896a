"""Evaluation at ILSVRC's size: images/s, each stage's cost per image and peak memory, at N = 5,000 and 50,000.

Builds an ILSVRC-layout folder of N generated JPEGs (``val/ILSVRC2012_val_*.JPEG``, 500 x 375 as ImageNet
photos mostly are, one box each, ``LOC_val_solution.csv`` and ``LOC_synset_mapping.txt`` of 1,000 WNIDs: real
files, read by the real reader), writes a random-init 1,000-class timm model to a local weight file and scores
the folder zero-shot with it (``wsolbench run --epochs 0 --pretrained FILE -d ilsvrc``, the ilsvrc protocol),
each N in a fresh process whose peak RSS is read from ``wait4``. Then, on the first ``--explain-images``
images: ``wsolbench eval RUN`` and ``wsolbench eval RUN --explainer X`` for the gradient explainers, wall time
and peak RSS of each. Then each stage's cost per image, in this process on one thread: decode, resize (and
normalise), forward, maps (true class + top 5), boxes (the protocol's box search and IoU), PxAP (with a mask
per image, as the masked sets have) and the bootstrap (200 resamples of the N-image records, per image).

    .venv/bin/python benchmarks/bench_eval_scale.py                       # N = 5,000 and 50,000 (about 25 min)
    .venv/bin/python benchmarks/bench_eval_scale.py --images 2000 --explain-images 200 --data /tmp/ilsvrc-bench

The folders are kept under ``--data`` (default: a folder in the temp dir) and reused by the next run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WNIDS = [f"n{10000000 + 7919 * i:08d}" for i in range(1000)]
WIDTH, HEIGHT = 500, 375


def write_image(path: Path, rng: np.random.Generator) -> str:
    """A smooth background and one brighter rectangle; returns its box as ``x0 y0 x1 y1``."""
    import cv2

    small = rng.integers(0, 160, (6, 8, 3), dtype=np.uint8)
    image = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    w, h = int(rng.integers(80, 300)), int(rng.integers(60, 250))
    x0, y0 = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
    image[y0:y0 + h, x0:x0 + w] = np.clip(image[y0:y0 + h, x0:x0 + w].astype(np.int16) + 90, 0, 255)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return f"{x0} {y0} {x0 + w - 1} {y0 + h - 1}"


def build_folder(data: Path, n_max: int, sizes: list[int]) -> dict[int, Path]:
    """One folder of ``n_max`` images (written once) and, for each smaller N, a folder of hard links to its first N."""
    full = data / f"ilsvrc-{n_max}"
    val = full / "val"
    val.mkdir(parents=True, exist_ok=True)
    solution = full / "LOC_val_solution.csv"
    if not solution.exists():
        rng = np.random.default_rng(0)
        rows = ["ImageId,PredictionString"]
        t = time.perf_counter()
        for i in range(n_max):
            name = f"ILSVRC2012_val_{i + 1:08d}"
            box = write_image(val / f"{name}.JPEG", rng)
            rows.append(f"{name},{WNIDS[int(rng.integers(0, 1000))]} {box}")
        (full / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(WNIDS)))
        solution.write_text("\n".join(rows) + "\n")
        print(f"wrote {n_max:,} JPEGs in {time.perf_counter() - t:.0f} s")
    folders = {n_max: full}
    lines = solution.read_text().splitlines()
    for n in sizes:
        if n == n_max:
            continue
        sub = data / f"ilsvrc-{n}-of-{n_max}"
        if not (sub / "LOC_val_solution.csv").exists():
            (sub / "val").mkdir(parents=True, exist_ok=True)
            for line in lines[1:n + 1]:
                name = line.split(",")[0]
                target = sub / "val" / f"{name}.JPEG"
                if not target.exists():
                    os.link(val / f"{name}.JPEG", target)
            (sub / "LOC_synset_mapping.txt").write_text((full / "LOC_synset_mapping.txt").read_text())
            (sub / "LOC_val_solution.csv").write_text("\n".join(lines[:n + 1]) + "\n")
        folders[n] = sub
    return folders


def measured(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB of the process and the children it waited for) of ``cmd``; fails loudly."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 2**20


def stage_costs(folder: Path, weights: Path, model: str, n: int, records_run: Path) -> dict[str, float]:
    """ms per image of each stage on ``n`` images, one thread."""
    import cv2
    import torch

    from wsolbench.data.loading import EvalTransform, load_image
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine import distributed as D
    from wsolbench.engine.train import build
    from wsolbench import stats as S

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    cfg = RunConfig(method="cam", backbone=model, dataset="ilsvrc", data_root=str(folder), pretrained=str(weights),
                    epochs=0, threshold_policy="test-optimal", device="cpu")
    setup = build(cfg, torch.device("cpu"), D.DistInfo(), log=lambda *_: None)
    samples = setup.splits["test"][:n]
    protocol, method = setup.protocol, setup.method.eval()
    clock = {}

    def timed(key, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        clock[key] = clock.get(key, 0.0) + time.perf_counter() - t
        return out

    transform = EvalTransform(setup.input_size)
    batch = 32
    rng = np.random.default_rng(0)
    for start in range(0, len(samples), batch):
        part = samples[start:start + batch]
        raw = [timed("decode", load_image, s.path) for s in part]
        images = torch.stack([timed("resize + normalise", transform, r, np.asarray(s.boxes))[0] for r, s in zip(raw, part)])
        with torch.no_grad():
            out = timed("forward", method, images)
            labels = torch.tensor([s.label for s in part])

            def maps_of():
                top = out.logits.topk(5, dim=1).indices
                return method.maps(out, labels[:, None])[:, 0].numpy(), method.maps(out, top).numpy()
            maps, _ = timed("maps (true + top 5)", maps_of)
        for m, s in zip(maps, part):
            height, width = s.size
            gt = protocol.check_boxes(np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4), height, width, 0)
            scoremap = timed("boxes", protocol.prepare_map, m, height, width)
            timed("boxes", protocol.hits, m, height, width, gt, scoremap)
            mask = (rng.random((height, width)) < 0.3).astype(np.uint8)
            timed("PxAP", protocol.mask_histograms, m, height, width, mask, 0, scoremap)
    per_image = {k: 1e3 * v / len(samples) for k, v in clock.items()}
    rec = S.load_records(records_run, "ilsvrc", "test-optimal")
    t = time.perf_counter()
    S.draws([rec], ["top1_loc", "gt_known_loc"], b=200)
    per_image["bootstrap (200 resamples)"] = 1e3 * (time.perf_counter() - t) / rec.n
    return per_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, nargs="+", default=[5000, 50000])
    p.add_argument("--explain-images", type=int, default=1000)
    p.add_argument("--explainers", nargs="+", default=["gradcam", "gradcampp", "xgradcam", "layercam"])
    p.add_argument("--model", default="test_efficientnet", help="a timm model with a pool + linear head")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--stage-images", type=int, default=500)
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "wsolbench-eval-scale")
    args = p.parse_args()
    import torch
    import timm

    sizes = sorted(set(args.images + [args.explain_images]))
    print(f"load average before: {os.getloadavg()}")
    folders = build_folder(args.data, max(sizes), sizes)
    weights = args.data / f"{args.model}-random.pth"
    if not weights.exists():
        torch.manual_seed(0)
        torch.save(timm.create_model(args.model, num_classes=1000).state_dict(), weights)
    wsolbench = [sys.executable, "-m", "wsolbench"]

    def score(n: int) -> tuple[Path, float, float]:
        out = args.data / f"runs-{n}-{args.model}-{args.input_size}"
        for old in out.glob("ilsvrc/*"):  # measure a fresh evaluation, not a skipped cell
            subprocess.run(["rm", "-rf", str(old)], check=True)
        wall, rss = measured([*wsolbench, "run", "-m", "cam", "-b", args.model, "--pretrained", str(weights), "--epochs",
                              "0", "-d", "ilsvrc", "--data-root", str(folders[n]), "--policy", "test-optimal",
                              "--input-size", str(args.input_size), "--out", str(out), "--device", "cpu", "--no-progress"])
        return next(out.glob("ilsvrc/*")), wall, rss

    n = args.explain_images
    run, _, _ = score(n)
    plain_wall, plain_rss = measured([*wsolbench, "eval", str(run), "--device", "cpu"])
    print(f"explainers on {n:,} images (wall s, x the run's own maps; peak RSS GB, + over plain eval)")
    print(f"{'own maps':>10} {plain_wall:8.1f}  1.00x {plain_rss:6.2f}")
    for name in args.explainers:
        wall, rss = measured([*wsolbench, "eval", str(run), "--explainer", name, "--device", "cpu"])
        print(f"{name:>10} {wall:8.1f} {wall / plain_wall:5.2f}x {rss:6.2f} (+{rss - plain_rss:.2f})", flush=True)
    print(f"\nstage costs, ms per image on one thread ({args.stage_images} images; bootstrap over the {n:,}-image records)")
    costs = stage_costs(folders[n], weights, args.model, args.stage_images, run)
    for key, value in costs.items():
        print(f"  {key:<28} {value:7.3f}")
    print(f"  {'all but the forward':<28} {sum(v for k, v in costs.items() if k != 'forward'):7.3f}  (goal: at most 2)")
    print(f"\n{'images':>8} {'wall s':>8} {'images/s':>9} {'peak RSS GB':>12}")
    for n in sorted(args.images):
        _, wall, rss = score(n)
        print(f"{n:>8,} {wall:>8.1f} {n / wall:>9.1f} {rss:>12.2f}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
