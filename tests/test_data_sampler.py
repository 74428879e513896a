"""Class-paired batches: M images of each of N classes, no needless repeats, seeded, shardable."""
from collections import Counter

import pytest
import torch

from wsolbench.data.sampler import ClassPairedBatchSampler
from wsolbench.errors import WsolbenchError


def _labels(sizes):
    return [c for c, n in enumerate(sizes) for _ in range(n)]


def _assert_paired(batch, labels, n, m):
    counts = Counter(labels[i] for i in batch)
    assert len(counts) == n and set(counts.values()) == {m}, counts


def test_every_batch_is_n_classes_by_m_images():
    labels = _labels([6, 6, 6, 6, 6])  # 3 groups of 2 per class: 15 groups = 5 batches of 3 classes
    sampler = ClassPairedBatchSampler(labels, classes_per_batch=3, images_per_class=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        _assert_paired(batch, labels, 3, 2)
    seen = [i for b in batches for i in b]
    assert sorted(seen) == list(range(len(labels)))  # every image once: no repeats, none left out


def test_repeats_only_to_complete_a_class_group():
    labels = _labels([5, 4, 3, 6])  # odd classes need one repeat each to complete their last pair
    sampler = ClassPairedBatchSampler(labels, classes_per_batch=2, images_per_class=2, seed=1)
    batches = list(sampler)
    for batch in batches:
        _assert_paired(batch, labels, 2, 2)
        assert all(batch[k] != batch[k + 1] for k in range(0, len(batch), 2))  # no image paired with itself
    uses = Counter(i for b in batches for i in b)
    assert set(uses) == set(range(len(labels)))
    assert sum(uses.values()) - len(labels) == 2  # classes of 5 and 3 images: one repeat each
    assert all(v <= 2 for v in uses.values())


def test_same_seed_same_batches_and_epochs_differ():
    labels = _labels([8] * 6)
    a = ClassPairedBatchSampler(labels, 3, 2, seed=7)
    b = ClassPairedBatchSampler(labels, 3, 2, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(map(sorted, list(a))) != sorted(map(sorted, first))
    assert list(ClassPairedBatchSampler(labels, 3, 2, seed=8)) != first


def test_two_ranks_get_disjoint_paired_shards():
    labels = _labels([6, 4, 6, 8, 6, 2])
    world = [ClassPairedBatchSampler(labels, 4, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in world:
        s.set_epoch(2)
    single = ClassPairedBatchSampler(labels, 4, 2, seed=3)
    single.set_epoch(2)
    shards = [list(s) for s in world]
    assert len(shards[0]) == len(shards[1]) == len(world[0]) == len(single)
    for b0, b1, whole in zip(*shards, single):
        _assert_paired(b0, labels, 2, 2)
        _assert_paired(b1, labels, 2, 2)
        assert not set(b0) & set(b1) and b0 + b1 == whole  # the global batch, split by classes
    assert not {i for b in shards[0] for i in b} & {i for b in shards[1] for i in b}


def test_drives_a_dataloader():
    labels = _labels([4, 4, 4])
    data = torch.utils.data.TensorDataset(torch.tensor(labels))
    loader = torch.utils.data.DataLoader(data, batch_sampler=ClassPairedBatchSampler(labels, 3, 2))
    (batch,) = next(iter(loader))
    assert sorted(batch.tolist()) == [0, 0, 1, 1, 2, 2]


def test_bad_settings_are_clear_errors():
    with pytest.raises(WsolbenchError, match="only 2 classes"):
        ClassPairedBatchSampler(_labels([2, 2]), 3, 2)
    with pytest.raises(WsolbenchError, match="divide by world_size"):
        ClassPairedBatchSampler(_labels([2, 2, 2]), 3, 2, world_size=2)
