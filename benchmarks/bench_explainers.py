"""Cost per image of each post-hoc explainer, as the evaluation pays it: one map (the true class) per image.

Runs the method's forward (what CAM costs) and then each explainer over the same batch, a few repeats,
and prints the median seconds per image and the ratio to the plain forward. Score-CAM and Ablation-CAM
run one forward pass per channel of the target layer, batched (``--batch``); the evaluation asks for
up to 6 maps per image (true class + top 5, a pair is computed once), so its cost is up to 6x these.

    .venv/bin/python benchmarks/bench_explainers.py --backbone resnet18 --size 224 --images 4
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from wsolbench.backbones import build_backbone
from wsolbench.explain import EXPLAINERS, Explained
from wsolbench.methods.base import build_method


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--batch", type=int, default=64, help="forward passes per batch for Score-CAM / Ablation-CAM")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="*", default=list(EXPLAINERS))
    p.add_argument("--package-way", action="store_true", help="one forward and backward per pair, through the "
                   "package (how every explainer ran before the batched computation)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    method = build_method("cam", build_backbone(a.backbone), a.classes).to(device).eval()
    images = torch.randn(a.images, 3, a.size, a.size, device=device)
    classes = torch.randint(a.classes, (a.images, 1), device=device)

    def forward():
        with torch.no_grad():
            method.maps(method(images), classes)

    def timed(fn) -> float:
        fn()  # warm-up
        runs = []
        for _ in range(a.repeats):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            runs.append((time.perf_counter() - t0) / a.images)
        return statistics.median(runs)

    base = timed(forward)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {a.threads} thread(s)"
    print(f"{a.backbone} at {a.size} px, {a.images} images, {name}; median of {a.repeats}")
    print(f"{'method':<20}{'s / image':>12}{'x CAM':>10}")
    print(f"{'cam (forward)':<20}{base:>12.4f}{1.0:>10.1f}")
    for explainer in a.only:
        wrapped = Explained(method, explainer, batch_size=a.batch, batched=False if a.package_way else None)

        def run():
            with torch.no_grad():
                out = wrapped(images)
            wrapped.maps(out, classes)

        cost = timed(run)
        print(f"{explainer:<20}{cost:>12.4f}{cost / base:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
