"""Class-paired batches: N classes x M images of each per batch (I2C uses 40 x 2).

Each epoch, seeded by ``seed + epoch`` and identical on every rank:
1. each class's images are shuffled and cut into groups of M; a class whose count is not a
   multiple of M completes its last group with other images of the same class (the only repeats),
   and a class with fewer than M images repeats its own images;
2. batches are filled with N groups of N distinct classes, always from the classes with the most
   groups left (random order among equals), which uses up every group when class sizes allow;
   groups that cannot fill a batch of N distinct classes are dropped for this epoch (drop-last);
3. under torch.distributed each global batch is split by classes: rank r gets groups
   ``r * N / world_size`` to ``(r + 1) * N / world_size`` (N must divide by world_size), so every
   rank yields whole class groups and the same number of batches.

    sampler = ClassPairedBatchSampler(labels, classes_per_batch=40, images_per_class=2, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler); sampler.set_epoch(e) before each epoch
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import torch

from wsolbench.errors import WsolbenchError


class ClassPairedBatchSampler(torch.utils.data.Sampler):
    def __init__(self, labels: Sequence[int], classes_per_batch: int, images_per_class: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        by_class: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_class[int(label)].append(index)
        self.by_class = dict(sorted(by_class.items()))
        self.n, self.m = classes_per_batch, images_per_class
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        if self.n < 1 or self.m < 1:
            raise WsolbenchError(f"class-paired batches need classes_per_batch >= 1 and images_per_class >= 1, got {self.n} x {self.m}")
        if self.n > len(self.by_class):
            raise WsolbenchError(f"class-paired batches of {self.n} classes, but the split has only {len(self.by_class)} classes")
        if self.n % world_size or not 0 <= rank < world_size:
            raise WsolbenchError(f"classes_per_batch {self.n} must divide by world_size {world_size} (rank {rank})")
        self.groups_per_class = {c: -(-len(ix) // self.m) for c, ix in self.by_class.items()}
        self._len: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self._len is None:  # the number of batches depends only on the class sizes, not on the seed
            self._len = len(self._schedule(np.random.default_rng(0)))
        return self._len

    def _schedule(self, rng: np.random.Generator) -> list[list[int]]:
        """Per batch, its classes: N distinct classes, most groups left first, random among equals."""
        left = dict(self.groups_per_class)
        batches = []
        while sum(1 for v in left.values() if v) >= self.n:
            tiebreak = rng.permutation(len(left))
            keys = {c: (-left[c], tiebreak[i]) for i, c in enumerate(left)}
            classes = sorted(left, key=keys.__getitem__)[: self.n]
            for c in classes:
                left[c] -= 1
            batches.append(classes)
        return batches

    def _groups(self, rng: np.random.Generator) -> dict[int, list[list[int]]]:
        groups = {}
        for c, indices in self.by_class.items():
            perm = [indices[i] for i in rng.permutation(len(indices))]
            short = -len(perm) % self.m
            if short:  # complete the last group with this class's images outside it (the only repeats)
                pool = perm[: len(perm) - (self.m - short)] or perm  # no full group: repeat its own images
                perm += [pool[i] for i in rng.choice(len(pool), size=short, replace=short > len(pool))]
            groups[c] = [perm[i:i + self.m] for i in range(0, len(perm), self.m)]
        return groups

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = self._groups(rng)
        per_rank = self.n // self.world_size
        for classes in self._schedule(rng):
            batch = [groups[c].pop() for c in classes]  # every rank pops every group: states stay in step
            yield [i for group in batch[self.rank * per_rank:(self.rank + 1) * per_rank] for i in group]
