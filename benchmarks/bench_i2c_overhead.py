"""Step time (forward + backward + SGD step) of i2c over acol, same backbone, batch and head.

Interleaves the two methods step by step and compares medians, so load changes on a shared
machine hit both alike. Prints one ratio line.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from wsolbench.backbones import build_backbone
from wsolbench.methods.base import build_method


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--classes", type=int, default=8)  # per batch, 2 images each
    p.add_argument("--num-classes", type=int, default=200)
    p.add_argument("--head-width", type=int, default=256)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    methods = {}
    for name in ("acol", "i2c"):
        torch.manual_seed(0)
        m = build_method(name, build_backbone(a.backbone), a.num_classes, head_width=a.head_width).to(device).train()
        m.set_epoch(5)
        methods[name] = (m, torch.optim.SGD(m.param_groups(0.001, 5e-4), momentum=0.9, nesterov=True))
    images = torch.randn(2 * a.classes, 3, a.size, a.size, device=device)
    labels = torch.arange(a.classes, device=device).repeat_interleave(2)
    times = {n: [] for n in methods}
    names = list(methods)
    for step in range(a.steps + 2):
        for name in names if step % 2 else names[::-1]:  # alternate which goes first
            m, opt = methods[name]
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = sum(m(images, labels).losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= 2:  # warm-up
                times[name].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) for n, t in times.items()}
    # adjacent steps share the machine's load, so the median of their ratios is the steadier figure
    ratio = statistics.median(i / c for i, c in zip(times["i2c"], times["acol"]))
    print(f"device={device.type} backbone={a.backbone} batch={2 * a.classes} size={a.size} "
          f"acol={med['acol'] * 1e3:.1f}ms i2c={med['i2c'] * 1e3:.1f}ms "
          f"ratio i2c/acol={ratio:.3f} (median of {len(times['i2c'])} paired steps)")

if __name__ == "__main__":
    main()
