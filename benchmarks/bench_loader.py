"""Is loading the bottleneck? Train-pipeline images/s next to forward+backward images/s.

    .venv/bin/python benchmarks/bench_loader.py [--seconds 4] [--device cpu|cuda]

Two settings, each with the default DataLoader worker count (``default_num_workers()``):
- the project's default job: the synthetic set (64 px JPEGs), train transform 64 (resize 72),
  against the main job's backbone (resnet18 dilated to output stride 8) at 64 px, batch 16;
- a CUB-sized pipeline: synthetic images rendered at 384 px (CUB images are about 500 x 375),
  train transform 224 (resize 256), against resnet18 at 224 px.
Loader and model are timed separately, each for about ``--seconds`` after a warm-up batch, on
this machine; the ratio loader/model above 1 means the loader keeps up. Both sets are generated
once into the wsolbench cache ($WSOLBENCH_CACHE, default ~/.cache/wsolbench).
"""
from __future__ import annotations

import argparse
import os
import time

import timm
import torch
import torch.nn.functional as F

import wsolbench.data  # noqa: F401 - registers the datasets
from wsolbench.data import loading
from wsolbench.registry import DATASETS


def _rate(step, seconds: float) -> float:
    """Images per second of ``step()`` (which returns how many images it handled), after a warm-up call."""
    step()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def loader_rate(samples, transform, batch: int, workers: int, seconds: float) -> float:
    data = loading.ImageDataset(samples, transform)
    endless = torch.utils.data.RandomSampler(data, replacement=True, num_samples=10**6)  # no epoch restarts
    batches = iter(torch.utils.data.DataLoader(data, batch_size=batch, sampler=endless, num_workers=workers))
    rate = _rate(lambda: len(next(batches)[0]), seconds)
    del batches  # stops the workers before the model is timed
    return rate


def model_rate(name: str, size: int, batch: int, seconds: float, device: str, output_stride: int = 32) -> float:
    model = timm.create_model(name, num_classes=200, output_stride=output_stride).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 200, (batch,), device=device)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return batch

    return _rate(step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    workers = loading.default_num_workers()
    small = DATASETS.build("synthetic").samples("train")
    big = DATASETS.build("synthetic", classes=4, per_class=16, size=384).samples("train")
    cpu_batch = args.device == "cpu"
    rows = [
        ("default job: synthetic 64 px, transform 64", loader_rate(small, loading.train_transform(64, 72), 32, workers, args.seconds),
         "resnet18 os8 @ 64, batch 16", model_rate("resnet18", 64, 16, args.seconds, args.device, output_stride=8)),
        ("CUB-sized: 384 px JPEG, transform 224", loader_rate(big, loading.train_transform(224, 256), 16, workers, args.seconds),
         f"resnet18 @ 224, batch {8 if cpu_batch else 64}", model_rate("resnet18", 224, 8 if cpu_batch else 64, args.seconds, args.device)),
    ]
    print(f"machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, DataLoader workers {workers}, "
          f"model on {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print(f"{'train pipeline':44s} {'img/s':>8s}   {'forward+backward':28s} {'img/s':>8s}   loader/model")
    for pipe, pipe_rate, model, rate in rows:
        print(f"{pipe:44s} {pipe_rate:8.1f}   {model:28s} {rate:8.1f}   {pipe_rate / rate:8.2f}")


if __name__ == "__main__":
    main()
