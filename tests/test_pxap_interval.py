"""PxAP's bootstrap interval: per-image object / background histograms kept by the accumulator (where masks
exist), written with the per-image rows, resampled like the other metrics.

- the rows sum to the dataset-wide histograms, and the full sample gives the reported PxAP exactly;
- no masks: no rows (zero width) and no interval; a maskless shard merged with a masked one gets zero rows;
- uint16 while the counts fit, int32 once a map has a bin above 65,535 pixels;
- on a population of maps with a known PxAP, the 95% interval covers it at close to the nominal rate;
- a fixed seed gives the same interval.
"""
import numpy as np
import pytest
import torch

from wsolbench import stats as S
from wsolbench.plugins import load_builtin
from wsolbench.protocols.summary import pxap
from wsolbench.registry import PROTOCOLS

load_builtin()


def masked_batch(rng, n, size=(40, 48)):
    """Maps that follow their masks more or less (image quality varies), with boxes around the masks."""
    h, w = size
    masks, maps, boxes = [], [], []
    for _ in range(n):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        y1, x1 = y0 + rng.integers(5, h // 2), x0 + rng.integers(5, w // 2)
        mask = np.zeros(size, np.uint8)
        mask[y0:y1, x0:x1] = 1
        quality = rng.random()
        maps.append(quality * mask + rng.random(size))
        masks.append(mask)
        boxes.append(np.array([[x0, y0, x1 - 1, y1 - 1]], float))
    return dict(maps=np.stack(maps), image_sizes=np.array([size] * n), boxes=boxes, masks=masks)


def test_rows_sum_to_the_histograms_and_the_full_sample_is_the_reported_pxap(tmp_path):
    proto = PROTOCOLS.build("wsoleval", interval=0.01)
    rng = np.random.default_rng(0)
    test, val = proto.accumulator(), proto.accumulator()
    test.update(**masked_batch(rng, 30), indices=np.arange(30))
    val.update(**masked_batch(rng, 6), indices=np.arange(6))
    rows = test.img_mask_hist
    assert rows.dtype == torch.uint16 and tuple(rows.shape) == (30, 2, len(proto.thresholds) + 2)
    assert np.array_equal(rows[:, 0].sum(0).numpy(), test.mask_pos_hist.numpy())
    assert np.array_equal(rows[:, 1].sum(0).numpy(), test.mask_neg_hist.numpy())
    reported = proto.summarize(test, val, policy="val")
    S.write_records(tmp_path / S.records_name("wsoleval"), proto, test, val, [f"t{i}" for i in range(30)],
                    [f"v{i}" for i in range(6)])
    rec = S.load_records(tmp_path, "wsoleval", "val")
    assert rec.has("pxap") and S.full_sample(rec, "pxap") == pytest.approx(reported["pxap"], abs=1e-9)
    low, high = S.interval(S.draws([rec], ["pxap"], b=300, seed=0)["pxap"][0])
    assert low < reported["pxap"] < high


def test_vectorised_pxap_equals_the_protocol_pxap_row_by_row():
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 50, (20, 12)).astype(float), rng.integers(0, 50, (20, 12)).astype(float)
    pos[:, 5:7] = 0  # empty bins: NaN precisions left out, as the protocol does
    neg[:, 5:7] = 0
    rows = S.pxap_rows(pos, neg)
    assert rows == pytest.approx([pxap(p, q) for p, q in zip(pos, neg)], abs=1e-9)
    assert np.isnan(S.pxap_rows(np.zeros((1, 12)), neg[:1])).all()  # no object pixel: no PxAP


def test_without_masks_there_are_no_rows_and_no_interval_and_merge_pads_zeros(tmp_path):
    proto = PROTOCOLS.build("cub", interval=0.05)
    rng = np.random.default_rng(1)
    plain, masked = proto.accumulator(), proto.accumulator()
    batch = masked_batch(rng, 4)
    plain.update(**{k: v for k, v in batch.items() if k != "masks"}, indices=np.arange(4))
    assert tuple(plain.img_mask_hist.shape) == (4, 2, 0)
    S.write_records(tmp_path / S.records_name("cub"), proto, plain, None, list("abcd"), None)
    rec = S.load_records(tmp_path, "cub", "test-optimal")
    assert rec.mask_hist is None and not rec.has("pxap")
    assert np.isnan(S.draws([rec], ["pxap"], b=50)["pxap"]).all()
    masked.update(**masked_batch(rng, 3), indices=np.arange(4, 7))
    merged = plain.merge(masked)
    assert tuple(merged.img_mask_hist.shape) == (7, 2, len(proto.thresholds) + 2)
    assert not merged.img_mask_hist[:4].any() and merged.img_mask_hist[4:].sum() == 3 * 40 * 48
    restored = proto.accumulator()
    restored.load_state_dict(merged.state_dict())
    assert torch.equal(restored.img_mask_hist, merged.img_mask_hist)


def test_counts_above_uint16_widen_the_rows():
    proto = PROTOCOLS.build("cub", interval=0.1)
    acc = proto.accumulator()
    size = (300, 300)  # 90,000 pixels, most of them at the map's minimum: one bin above 65,535
    mask = np.zeros(size, np.uint8)
    mask[:10, :10] = 1
    raw = np.zeros(size)
    raw[:10, :10] = 1.0
    acc.update(maps=raw[None], image_sizes=np.array([size]), boxes=[np.array([[0.0, 0, 9, 9]])], masks=[mask])
    assert acc.img_mask_hist.dtype == torch.int32
    assert int(acc.img_mask_hist[0, 1].max()) == 300 * 300 - 100


def _image_hist(rng, edges, quality):
    """One image's object / background histograms: object values pulled up by its quality."""
    n_obj = rng.integers(20, 200)
    obj = rng.random(n_obj) ** (1.0 / (1.0 + 3.0 * quality))
    bg = rng.random(400 - n_obj)
    return np.histogram(obj, edges)[0], np.histogram(bg, edges)[0]


def _records(rng, n, edges):
    rows = np.array([_image_hist(rng, edges, rng.random()) for _ in range(n)], np.uint16)
    t = len(edges) - 3
    return S.Records(source="pop", image_ids=np.array([f"i{i}" for i in range(n)]), hits=np.zeros((n, 1, t), bool),
                     labeled=np.zeros(n, bool), top1=np.zeros(n, bool), top5=np.zeros(n, bool),
                     top5_hits=np.zeros((n, t), bool), thresholds=edges[:t], iou_thresholds=(0.5,), protocol="cub",
                     val_hits_sum=None, mask_hist=rows)


def test_interval_covers_a_known_pxap_at_close_to_95_percent():
    edges = np.append(np.arange(0, 1, 0.02), [1.0, 2.0, 3.0])
    rng = np.random.default_rng(0)
    population = _records(rng, 40_000, edges).mask_hist.astype(np.float64).sum(0)
    truth = pxap(population[0], population[1])  # the population's PxAP, from a sample 200 times a test set
    covered = 0
    reps = 120
    for r in range(reps):
        rec = _records(rng, 200, edges)
        low, high = S.interval(S.draws([rec], ["pxap"], b=400, seed=r)["pxap"][0])
        covered += low <= truth <= high
    assert 0.88 <= covered / reps <= 1.0, covered


def test_a_fixed_seed_gives_the_same_pxap_interval():
    edges = np.append(np.arange(0, 1, 0.02), [1.0, 2.0, 3.0])
    rec = _records(np.random.default_rng(5), 100, edges)
    first, again, other = (S.interval(S.draws([rec], ["pxap"], b=300, seed=s)["pxap"][0]) for s in (7, 7, 8))
    assert first == again and first != other
