"""The bootstrap over test images (wsolbench.stats) and the per-image rows it reads (protocols/accumulator.py).

- every metric recomputed on the full sample from the per-image file equals the reported one, under each policy;
- a row of several seeds on one test set: its interval (seeds and images) covers the population mean at least at
  the nominal rate where the image-only one under-covers; rows of k seeds share the seed draws by seed index
  (identical rows differ by exactly 0) and a one-seed row is its run's image-only interval;
- intervals of a Bernoulli set cover its rate at close to 95%; paired intervals are narrower than unpaired ones
  on positively correlated methods; a fixed seed gives the same interval;
- test-optimal re-takes its max on every resample (checked against resampling images one by one), a fixed
  threshold does not;
- per-image rows: merge concatenates in order; two gloo processes end with one process's rows, in split order.
"""
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from wsolbench import stats as S
from wsolbench.errors import WsolbenchError
from wsolbench.plugins import load_builtin
from wsolbench.registry import PROTOCOLS

load_builtin()


def random_batch(rng, n, classes=6, size=(40, 48)):
    maps = rng.random((n, 7, 7)) ** 3
    sizes = np.array([size] * n)
    boxes = [np.array([[rng.integers(0, 10), rng.integers(0, 10), rng.integers(20, 47), rng.integers(20, 39)]], float)
             for _ in range(n)]
    labels = rng.integers(0, classes, n)
    top5 = np.stack([rng.permutation(classes)[:5] for _ in range(n)])
    top5_maps = rng.random((n, 5, 7, 7)) ** 3
    return dict(maps=maps, image_sizes=sizes, boxes=boxes, labels=labels, top5=top5, top5_maps=top5_maps)


def filled(proto, rng, n, start=0):
    acc = proto.accumulator()
    batch = random_batch(rng, n)
    acc.update(**batch, indices=np.arange(start, start + n))
    return acc


def synthetic(hits, name="run", chosen=None, labeled=None, top1=None):
    """Records built directly: hits (N, T) at one IoU level (0.5)."""
    hits = np.asarray(hits, bool)
    n, t = hits.shape
    ones = np.ones(n, bool)
    return S.Records(source=name, image_ids=np.array([f"img{i}" for i in range(n)]), hits=hits[:, None, :],
                     labeled=ones if labeled is None else labeled, top1=ones if top1 is None else top1, top5=ones,
                     top5_hits=hits, thresholds=np.linspace(0, 1, t, endpoint=False), iou_thresholds=(0.5,),
                     protocol="cub", val_hits_sum=None, chosen=chosen)


@pytest.mark.parametrize("name,policy", [("wsoleval", "test-optimal"), ("wsoleval", "val"), ("cub", "val"),
                                         ("cub", "fixed:0.3"), ("cub", "test-optimal")])
def test_full_sample_from_the_file_equals_the_reported_numbers(tmp_path, name, policy):
    proto = PROTOCOLS.build(name, interval=0.05)
    rng = np.random.default_rng(1)
    test, val = filled(proto, rng, 24), filled(proto, rng, 12)
    reported = proto.summarize(test, val, policy=policy)
    path = tmp_path / S.records_name(name)
    S.write_records(path, proto, test, val, [f"t{i}" for i in range(24)], [f"v{i}" for i in range(12)])
    kind = "fixed" if policy.startswith("fixed") else policy
    rec = S.load_records(tmp_path, name, kind, reported["threshold"])
    assert rec.image_ids.tolist() == [f"t{i}" for i in range(24)]
    measures = [m for m in S.MEASURES if rec.has(m)]
    assert set(measures) >= {"gt_known_loc", "top1_loc", "top5_loc", "top1_cls", "top5_cls"}
    for m in measures:
        assert S.full_sample(rec, m) == pytest.approx(reported[m], abs=1e-9), m
    d = S.draws([rec], measures, b=300, seed=0)
    for m in measures:
        low, high = S.interval(d[m][0])
        assert 0 <= low <= high <= 100, m
        assert low < reported[m] < high or reported[m] in (0, 100), m


def test_bernoulli_interval_covers_the_rate_at_close_to_95_percent():
    rate, n, reps = 0.3, 200, 300
    rng = np.random.default_rng(7)
    covered = 0
    for r in range(reps):
        rec = synthetic(rng.random((n, 1)) < rate, chosen=(0,))
        low, high = S.interval(S.draws([rec], b=400, seed=r)["gt_known_loc"][0])
        covered += low <= 100 * rate <= high
    assert 0.91 <= covered / reps <= 0.98, covered / reps


def seeds_on_one_test_set(rng, k, n, mu, sd, shared=0.9):
    """k seeds scored on the same n test images: seed s's true rate p_s ~ mu + sd * N(0, 1) and image i is right
    when u < p_s, with u the image's own difficulty (shared by the seeds) for a fraction ``shared`` of the
    (seed, image) cells and a fresh uniform otherwise. Every cell is right with probability p_s, so the
    population mean over seeds and images is mu."""
    p = mu + sd * rng.standard_normal(k)
    difficulty = rng.random(n)
    u = np.where(rng.random((k, n)) < shared, difficulty, rng.random((k, n)))
    return [synthetic((u[s] < p[s])[:, None], f"seed{s}", chosen=(0,)) for s in range(k)]


@pytest.mark.parametrize("k", [3, 5])
def test_the_seed_and_image_interval_covers_the_population_mean(k):
    """Large spread between seeds (sd 5 points against an image-only half-width near 4): the row's interval
    (seeds and images) covers the population mean at least at the nominal rate, the image-only interval of the
    seeds' mean far less; a bootstrap that resamples the k seeds with replacement (percentile) under-covers."""
    mu, sd, n, b, reps = 0.6, 0.05, 400, 400, 250
    rng = np.random.default_rng(21)
    covered = {"row": 0, "images only": 0, "seeds resampled": 0}
    for r in range(reps):
        d = S.draws(seeds_on_one_test_set(rng, k, n, mu, sd), b=b, seed=r)["gt_known_loc"]
        weights = np.random.default_rng(r).multinomial(k, np.full(k, 1 / k), size=b).T / k
        for name, values in (("row", S.row_values(d, S.seed_level(k, b, r))), ("images only", d.mean(axis=0)),
                             ("seeds resampled", (weights * d).sum(axis=0))):
            low, high = S.interval(values)
            covered[name] += low <= 100 * mu <= high
    rate = {name: c / reps for name, c in covered.items()}
    # binomial sd of a 95% rate over 250 repetitions: 1.4 points; the t level is mildly conservative at k = 3
    assert 0.92 <= rate["row"] <= (1.0 if k == 3 else 0.99), rate
    assert rate["images only"] <= 0.88, rate
    assert rate["seeds resampled"] < rate["row"], rate


def test_the_seed_level_is_paired_by_seed_index_and_one_seed_is_its_run():
    rng = np.random.default_rng(4)
    runs = seeds_on_one_test_set(rng, 3, 120, 0.5, 0.05)
    other = seeds_on_one_test_set(rng, 3, 120, 0.4, 0.05)
    d = S.rows_draws([runs, list(runs), other, runs[:1]], ["gt_known_loc", "top1_cls"], b=300, seed=5)
    per_run = S.draws([*runs, *other], ["gt_known_loc"], b=300, seed=5)["gt_known_loc"]
    level = S.seed_level(3, 300, 5)
    assert np.array_equal(d["gt_known_loc"][0], S.row_values(per_run[:3], level))
    assert np.array_equal(d["gt_known_loc"][2], S.row_values(per_run[3:], level))  # the same seed draws
    assert np.array_equal(d["gt_known_loc"][0] - d["gt_known_loc"][1], np.zeros(300))  # identical rows: exactly 0
    assert S.interval(d["top1_cls"][0] - d["top1_cls"][1]) == (0.0, 0.0)
    assert np.array_equal(d["gt_known_loc"][3], per_run[0])  # one seed: its run's image-only draws
    diff = S.paired_difference(runs, other, b=300, seed=5)
    assert (diff.low, diff.high) == S.interval(d["gt_known_loc"][0] - d["gt_known_loc"][2])
    # other seed counts: independent seed draws; the seed level needs two seeds
    assert not np.array_equal(S.seed_level(2, 300, 5)[0][:, :2], level[0][:, :2])
    with pytest.raises(WsolbenchError, match="2 or more seeds"):
        S.seed_level(1, 10, 0)


def test_paired_intervals_are_narrower_than_unpaired_on_correlated_methods():
    rng = np.random.default_rng(3)
    a = rng.random((400, 1)) < 0.6
    b = a ^ (rng.random((400, 1)) < 0.08)  # the same images right, 8% flipped
    ra, rb = synthetic(a, "A", chosen=(0,)), synthetic(b, "B", chosen=(0,))
    paired = S.paired_difference([ra], [rb], b=1000, seed=0)
    unpaired = S.draws([ra], b=1000, seed=1)["gt_known_loc"][0] - S.draws([rb], b=1000, seed=2)["gt_known_loc"][0]
    low, high = S.interval(unpaired)
    assert paired.diff == pytest.approx(100 * (a.mean() - b.mean()))
    assert (paired.high - paired.low) < 0.5 * (high - low)
    assert paired.low <= paired.diff <= paired.high


def test_a_fixed_seed_gives_the_same_interval_and_another_seed_another():
    rec = synthetic(np.random.default_rng(0).random((300, 5)) < 0.5)
    one = S.draws([rec], S.MEASURES[:1], b=500, seed=11)["gt_known_loc"]
    assert np.array_equal(one, S.draws([rec], S.MEASURES[:1], b=500, seed=11)["gt_known_loc"])
    assert not np.array_equal(one, S.draws([rec], S.MEASURES[:1], b=500, seed=12)["gt_known_loc"])


def test_test_optimal_retakes_its_max_per_resample_and_a_fixed_threshold_stays():
    rng = np.random.default_rng(5)
    n, t, b = 60, 9, 200
    hits = rng.random((n, t)) < np.linspace(0.3, 0.6, t)
    top1 = rng.random(n) < 0.7
    optimal, fixed = synthetic(hits, top1=top1), synthetic(hits, chosen=(2,), top1=top1)
    d_opt = S.draws([optimal], ["gt_known_loc", "top1_loc"], b=b, seed=4)
    d_fix = S.draws([fixed], ["gt_known_loc", "top1_loc"], b=b, seed=4)
    # the same resamples drawn one image at a time
    draw = np.random.default_rng(4).integers(0, n, size=(b, n))  # one chunk: b <= CHUNK
    assert b <= S.CHUNK
    sums = hits[draw].sum(axis=1)  # (b, t)
    best = sums.argmax(axis=1)  # first best, as summarize
    assert np.allclose(d_opt["gt_known_loc"][0], 100 * sums.max(axis=1) / n)
    top1_at_best = (hits[draw] & top1[draw][..., None])[np.arange(b), :, best].sum(axis=1)
    assert np.allclose(d_opt["top1_loc"][0], 100 * top1_at_best / n)
    assert np.allclose(d_fix["gt_known_loc"][0], 100 * sums[:, 2] / n)
    assert (d_opt["gt_known_loc"] >= d_fix["gt_known_loc"]).all() and len(set(best)) > 1


def test_paired_difference_of_different_images_is_one_clear_error():
    a = synthetic(np.ones((10, 2)), "runs/a/per-image-cub.npz")
    b = synthetic(np.ones((11, 2)), "runs/b/per-image-cub.npz")
    with pytest.raises(WsolbenchError, match="hold different test images"):
        S.paired_difference([a], [b])


def test_per_image_rows_are_packed_bits():
    proto = PROTOCOLS.build("wsoleval")  # 1,000 thresholds x 3 IoUs
    acc = filled(proto, np.random.default_rng(0), 2)
    assert acc.img_hits.shape == (2, 3, 125) and acc.img_hits.dtype == torch.uint8
    assert acc.per_image()["hits"].sum(axis=0).tolist() == acc.gt_known.tolist()


def test_merge_concatenates_the_rows_in_order():
    proto = PROTOCOLS.build("cub", interval=0.1)
    batch = random_batch(np.random.default_rng(2), 5)
    part = lambda s: {k: (v[s] if not isinstance(v, list) else v[s]) for k, v in batch.items()}  # noqa: E731
    whole, first, second = proto.accumulator(), proto.accumulator(), proto.accumulator()
    whole.update(**batch, indices=np.arange(5))
    first.update(**part(slice(0, 3)), indices=np.arange(3))
    second.update(**part(slice(3, 5)), indices=np.arange(3, 5))
    merged = first.merge(second).per_image()
    for key, value in whole.per_image().items():
        assert np.array_equal(merged[key], value), key
    assert merged["index"].tolist() == [0, 1, 2, 3, 4]


def _rank(rank, world, port, batch, out):
    torch.set_num_threads(1)
    import torch.distributed as dist

    from wsolbench.engine import distributed as D

    load_builtin()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mine = D.shard(len(batch["maps"]), D.DistInfo(rank, world))  # strided: rank r has r, r + 2, ...
        pick = {k: [v[i] for i in mine] if isinstance(v, list) else v[mine] for k, v in batch.items()}
        for with_indices in (True, False):
            acc = PROTOCOLS.build("cub", interval=0.1).accumulator()
            acc.update(**pick, indices=np.array(mine) if with_indices else None)
            acc.sync()
            if rank == 0:
                torch.save(acc.state_dict(), out / f"rank0-{with_indices}.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_end_with_one_process_rows_in_split_order(tmp_path):
    batch = random_batch(np.random.default_rng(9), 7)
    mp.start_processes(_rank, args=(2, _free_port(), batch, tmp_path), nprocs=2, join=True, start_method="spawn")
    for with_indices in (True, False):  # indices given (evaluate_split) or not (the shards' deal order)
        one = PROTOCOLS.build("cub", interval=0.1).accumulator()
        one.update(**batch, indices=np.arange(7) if with_indices else None)
        synced = torch.load(tmp_path / f"rank0-{with_indices}.pt")
        for key, value in one.state_dict().items():
            assert torch.equal(synced[key], value), (key, with_indices)
