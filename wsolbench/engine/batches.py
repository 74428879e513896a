"""Batching for methods that take any batch, and per-sample seeded augmentation.

``SeededSamples`` makes a sample's random crop and flip a function of (seed, epoch, index)
alone, so the number of loader workers, a resume in the middle of an epoch, or the rank a
sample lands on never change what the network sees.
"""
from __future__ import annotations

import torch


class RandomBatchSampler:
    """Seeded shuffled batches of ``batch_size`` (global), each rank taking its slice; drops the last partial batch."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        per_rank = self.batch_size // self.world_size
        for b in range(len(self)):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank * per_rank : (self.rank + 1) * per_rank]


class SeededSamples(torch.utils.data.Dataset):
    """Wraps a dataset so each item's augmentation is seeded by (seed, epoch, index)."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index)
            return self.dataset[index]
