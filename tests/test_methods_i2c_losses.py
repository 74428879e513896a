"""I2C's pure functions on tiny tensors whose answers are worked out here."""
import math

import pytest
import torch

from wsolbench.methods import i2c_losses as L


def test_constant_map_normalises_to_zeros_and_gives_no_seeds():
    maps = torch.stack([torch.full((3, 3), 5.0), torch.arange(9.0).view(3, 3)])
    norm = L.normalize_maps(maps)
    assert torch.equal(norm[0], torch.zeros(3, 3))
    assert torch.allclose(norm[1], torch.arange(9.0).view(3, 3) / 8)
    positions, valid = L.select_seeds(maps, k=3, delta=0.0)
    assert valid.tolist() == [False, True]
    assert positions.shape == (2, 3)


def above_sets(maps, delta):
    """Independent reference: flat positions whose min-max normalised value is > delta."""
    sets = []
    for m in maps:
        values = m.flatten().tolist()
        lo, hi = min(values), max(values)
        sets.append([i for i, v in enumerate(values) if hi > lo and (v - lo) / (hi - lo) > delta])
    return sets


def test_random_seeds_come_only_from_above_delta_and_cover_them():
    torch.manual_seed(0)
    maps = torch.rand(4, 5, 5)
    allowed = above_sets(maps, 0.7)
    assert min(map(len, allowed)) >= 3
    seen = [set() for _ in allowed]
    for _ in range(300):
        positions, valid = L.select_seeds(maps, k=3, delta=0.7)
        assert valid.all()
        for b, row in enumerate(positions.tolist()):
            assert set(row) <= set(allowed[b])
            assert len(set(row)) == 3  # without replacement
            seen[b].update(row)
    assert [sorted(s) for s in seen] == [sorted(a) for a in allowed]  # every candidate gets drawn


def test_raster_order_takes_the_first_k_above_delta():
    torch.manual_seed(1)
    maps = torch.rand(3, 6, 6)
    positions, valid = L.select_seeds(maps, k=3, delta=0.5, order="raster")
    expected = [a[:3] for a in above_sets(maps, 0.5)]
    assert valid.all()
    assert positions.tolist() == expected


def test_fewer_than_k_above_delta():
    maps = torch.zeros(1, 4, 4)
    maps[0, 1, 2] = 1.0  # flat 6
    maps[0, 3, 0] = 0.9  # flat 12
    # random: with replacement from the two that are above 0.7
    for _ in range(50):
        positions, valid = L.select_seeds(maps, k=5, delta=0.7)
        assert valid.tolist() == [True]
        assert set(positions[0].tolist()) <= {6, 12}
    # raster: cycles through them in order
    positions, _ = L.select_seeds(maps, k=5, delta=0.7, order="raster")
    assert positions[0].tolist() == [6, 12, 6, 12, 6]


def test_gather_seeds_reads_the_feature_vectors_at_the_positions():
    features = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).view(2, 3, 2, 2)
    positions = torch.tensor([[3, 0], [1, 1]])
    seeds = L.gather_seeds(features, positions)
    assert seeds.shape == (2, 2, 3)
    assert seeds[0, 0].tolist() == features[0, :, 1, 1].tolist()
    assert seeds[0, 1].tolist() == features[0, :, 0, 0].tolist()
    assert seeds[1, 1].tolist() == features[1, :, 0, 1].tolist()


SEEDS = torch.tensor(
    [
        [[0.0, 0.0], [1.0, 0.0]],  # image 0, class 0
        [[3.0, 4.0], [1.0, 1.0]],  # image 1, class 0
        [[2.0, 2.0], [0.0, 2.0]],  # image 2, class 1
        [[2.0, 0.0], [0.0, 0.0]],  # image 3, class 1
        [[9.0, 9.0], [9.0, 9.0]],  # image 4, class 2 (alone)
    ]
)
LABELS = torch.tensor([0, 0, 1, 1, 2])


def test_sc_loss_squared_and_euclidean():
    valid = torch.ones(5, dtype=torch.bool)
    # pair (0, 1): seed distances 5 and 1; pair (2, 3): 2 and 2; class 2 has no pair
    squared = (25 + 1) / 2, (4 + 4) / 2
    euclid = (5 + 1) / 2, (2 + 2) / 2
    assert L.sc_loss(SEEDS, LABELS, valid, "squared").item() == pytest.approx(sum(squared) / 2)
    assert L.sc_loss(SEEDS, LABELS, valid, "euclidean").item() == pytest.approx(sum(euclid) / 2, abs=1e-5)


def test_sc_loss_pairs_of_three_and_invalid_images():
    labels = torch.tensor([0, 0, 0, 1, 1])
    valid = torch.tensor([True, True, True, True, False])
    s = SEEDS[:, :1]  # K = 1: vectors (0,0), (3,4), (2,2)
    expected = (25 + 8 + (1 + 4)) / 3  # pairs (0,1), (0,2), (1,2); image 4 has no seeds
    assert L.sc_loss(s, labels, valid).item() == pytest.approx(expected)


def test_sc_loss_without_pairs_is_an_attached_zero():
    seeds = SEEDS.clone().requires_grad_()
    loss = L.sc_loss(seeds, torch.tensor([0, 1, 2, 3, 4]), torch.ones(5, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(seeds.grad, torch.zeros_like(seeds))


def test_class_means_and_gc_loss():
    valid = torch.tensor([True, True, True, False, True])  # image 3's seeds do not count
    sums, counts = L.class_seed_sums(SEEDS, LABELS, valid, num_classes=4)
    assert counts.tolist() == [4, 2, 2, 0]
    means = L.class_means(sums, counts)
    assert means.tolist() == [[5 / 4, 5 / 4], [1.0, 2.0], [9.0, 9.0], [0.0, 0.0]]
    centers = torch.tensor([[1.25, 0.25], [1.0, 0.0], [6.0, 5.0], [7.0, 7.0]])
    present = counts > 0
    # class distances to the centers: (0, 1), (0, 2), (3, 4); class 3 absent
    assert L.gc_loss(means, centers, present, "squared").item() == pytest.approx((1 + 4 + 25) / 3)
    assert L.gc_loss(means, centers, present, "euclidean").item() == pytest.approx((1 + 2 + 5) / 3, abs=1e-5)
    assert L.gc_loss(means, centers, torch.zeros(4, dtype=torch.bool)).item() == 0.0


def test_momentum_update_over_two_steps():
    alpha = 0.3
    centers = torch.full((3, 2), 7.0)
    updates = torch.zeros(3, dtype=torch.long)
    first = torch.tensor([[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]])
    L.momentum_update(centers, updates, first, torch.tensor([True, False, True]), alpha)
    # first visit: eta = exp(0) = 1, the center becomes the class mean; class 1 untouched
    assert centers.tolist() == [[1.0, 2.0], [7.0, 7.0], [5.0, 5.0]]
    assert updates.tolist() == [1, 0, 1]
    second = torch.tensor([[3.0, 0.0], [4.0, 4.0], [0.0, 0.0]])
    L.momentum_update(centers, updates, second, torch.tensor([True, True, False]), alpha)
    eta = math.exp(-alpha)
    assert centers[0].tolist() == pytest.approx([(1 - eta) * 1 + eta * 3, (1 - eta) * 2 + eta * 0])
    assert centers[1].tolist() == [4.0, 4.0]  # class 1's first visit
    assert centers[2].tolist() == [5.0, 5.0]
    assert updates.tolist() == [2, 1, 1]
