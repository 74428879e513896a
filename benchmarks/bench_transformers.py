"""ms per training step (forward + backward + SGD step) of vit-cam and ts-cam on a ViT, and cam on resnet10t.

Same input size, batch and classes; the three are interleaved step by step (the order rotating) so load changes
on a shared machine hit all alike; prints the medians and the ratios to cam/resnet10t (one run), and the load
average so the reader knows whether the machine was idle. The synthetic set's own stride-8 resnet10t is
``--cnn-stride 8`` (the default: the board's CNN setting). TS-CAM trains without its attention weights
(they are read in eval only); ``--eval`` also times one eval forward of each (ts-cam with the weights).

    python benchmarks/bench_transformers.py --size 64 --steps 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from wsolbench.backbones import build_backbone
from wsolbench.methods.base import build_method


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vit", default="deit_tiny_patch16_224")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--num-classes", type=int, default=8)
    p.add_argument("--cnn-stride", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    load = os.getloadavg()[0]
    cells = {
        "cam/resnet10t": lambda: build_method("cam", build_backbone("resnet10t", output_stride=a.cnn_stride), a.num_classes),
        f"vit-cam/{a.vit}": lambda: build_method("vit-cam", build_backbone(a.vit, input_size=a.size), a.num_classes),
        f"ts-cam/{a.vit}": lambda: build_method("ts-cam", build_backbone(a.vit, input_size=a.size), a.num_classes),
    }
    runs = {}
    for name, make in cells.items():
        torch.manual_seed(0)
        m = make().train()
        runs[name] = (m, torch.optim.SGD(m.param_groups(0.01, 5e-4), momentum=0.9, nesterov=True))
    images = torch.randn(a.batch, 3, a.size, a.size)
    labels = torch.arange(a.batch) % a.num_classes
    times = {n: [] for n in runs}
    names = list(runs)
    for step in range(a.steps + 2):
        for name in names[step % 3:] + names[:step % 3]:
            m, opt = runs[name]
            t0 = time.perf_counter()
            loss = sum(m(images, labels).losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= 2:  # warm-up
                times[name].append(time.perf_counter() - t0)
    base = names[0]
    print(f"load average before: {load:.2f} (cores: {os.cpu_count()}); threads={a.threads} batch={a.batch} "
          f"size={a.size} steps={a.steps}")
    for name in names:
        ratio = statistics.median(t / b for t, b in zip(times[name], times[base]))
        print(f"{name:32s} {statistics.median(times[name]) * 1e3:8.1f} ms/step   x{ratio:.2f} of {base}")
    if a.eval:
        with torch.no_grad():
            for name in names:
                m = runs[name][0].eval()
                m(images)
                t0 = time.perf_counter()
                for _ in range(5):
                    m(images)
                print(f"{name:32s} {(time.perf_counter() - t0) / 5 * 1e3:8.1f} ms/eval forward")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
