"""Accumulators and summaries: Top-1 / Top-5 / GT-known logic, PxAP, threshold policies, merging."""
import numpy as np
import pytest
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.plugins import load_builtin
from wsolbench.registry import PROTOCOLS

load_builtin()  # registers the presets


def square_map(size, x0, y0, x1, y1, value=1.0):
    m = np.zeros((size, size), np.float32)
    m[y0 : y1 + 1, x0 : x1 + 1] = value
    return m


# maps at the image size: the cub protocol scores them as they are (no resize)
RIGHT = square_map(40, 10, 10, 19, 19)
GT = np.array([[10, 10, 19, 19]])
WRONG = square_map(40, 25, 25, 35, 35)


def test_top1_top5_gt_known_on_constructed_cases():
    proto = PROTOCOLS.build("cub", interval=0.1)
    acc = proto.accumulator()
    maps = np.stack([WRONG, RIGHT, RIGHT])
    labels = np.array([3, 3, 3])
    top5 = np.array([
        [3, 1, 2, 4, 5],  # right class, wrong box
        [1, 2, 4, 5, 6],  # wrong class (not even in the five), right box
        [1, 3, 2, 4, 5],  # second of five right, right box
    ])
    acc.update(maps, [[40, 40]] * 3, [GT] * 3, labels=labels, top5=top5)
    m = proto.summarize(acc, policy="test-optimal")
    assert m["gt_known_loc"] == pytest.approx(200 / 3)  # images 2 and 3
    assert m["top1_cls"] == pytest.approx(100 / 3)
    assert m["top5_cls"] == pytest.approx(200 / 3)
    assert m["top1_loc"] == 0.0  # the right class had the wrong box, the right boxes the wrong class
    assert m["top5_loc"] == pytest.approx(100 / 3)  # image 3 only
    assert m["policy"] == "test-optimal" and m["box_rule"] == "largest" and m["n_images"] == 3


def test_top5_uses_the_map_of_the_matching_class():
    proto = PROTOCOLS.build("cub", interval=0.1)
    acc = proto.accumulator()
    top5_maps = np.stack([WRONG, RIGHT, WRONG, WRONG, WRONG])[None]  # class 3 (second) has the right box
    acc.update(WRONG[None], [[40, 40]], [GT], labels=[3], top5=[[1, 3, 2, 4, 5]], top5_maps=top5_maps)
    m = proto.summarize(acc, policy="test-optimal")
    assert m["top5_loc"] == 100.0 and m["gt_known_loc"] == 0.0
    acc.reset()
    acc.update(RIGHT[None], [[40, 40]], [GT], labels=[3], top5=[[1, 3, 2, 4, 5]], top5_maps=np.stack([RIGHT, WRONG, RIGHT, RIGHT, RIGHT])[None])
    assert proto.summarize(acc, policy="test-optimal")["top5_loc"] == 0.0


def test_any_ground_truth_box_counts():
    proto = PROTOCOLS.build("cub", interval=0.1)
    acc = proto.accumulator()
    acc.update(RIGHT[None], [[40, 40]], [np.array([[0, 0, 5, 5], [10, 10, 19, 19]])])
    assert proto.summarize(acc, policy="test-optimal")["gt_known_loc"] == 100.0


def halo_map():
    """Value 1 on x, y in 10..19, 0.5 on 5..24: the box is the inner square from t = 0.5 on, the halo below."""
    m = square_map(40, 5, 5, 24, 24, 0.5)
    m[10:20, 10:20] = 1.0
    return m


def test_val_policy_picks_the_threshold_on_val_and_reports_test_there():
    proto = PROTOCOLS.build("cub", interval=0.1)
    val, test = proto.accumulator(), proto.accumulator()
    val.update(halo_map()[None], [[40, 40]], [np.array([[5, 5, 24, 24]])])  # right only below t = 0.5
    test.update(halo_map()[None], [[40, 40]], [GT])  # right only from t = 0.5
    thresholds = proto.thresholds
    val_curve = val.gt_known[0].numpy() * 100.0
    test_curve = test.gt_known[0].numpy() * 100.0
    chosen = int(np.argmax(val_curve))
    m = proto.summarize(test, val, policy="val")
    assert m["threshold"] == pytest.approx(thresholds[chosen]) and m["threshold"] < 0.5
    assert m["gt_known_loc"] == test_curve[chosen] == 0.0
    assert m["curves"]["gt_known_loc"]["val"] == val_curve.tolist()
    best = proto.summarize(test, val, policy="test-optimal")
    assert best["gt_known_loc"] == 100.0 and best["threshold"] >= 0.5 and best["policy"] == "test-optimal"
    fixed = proto.summarize(test, val, policy="fixed:0.7")
    assert fixed["threshold"] == pytest.approx(0.7) and fixed["gt_known_loc"] == 100.0 and fixed["policy"] == "fixed"


def test_val_policy_without_val_is_a_clear_error():
    proto = PROTOCOLS.build("cub")
    acc = proto.accumulator()
    acc.update(RIGHT[None], [[40, 40]], [GT])
    with pytest.raises(WsolbenchError, match="val accumulator"):
        proto.summarize(acc)
    with pytest.raises(WsolbenchError, match="unknown threshold policy"):
        proto.summarize(acc, policy="best")


def test_pxap_on_a_known_ranking():
    # object pixels score 1.0 and 0.5, background 0.75 and 0; the rest ignored (255)
    # ranking P N P N: AP = 1 * 1/2 + 2/3 * 1/2 = 5/6
    proto = PROTOCOLS.build("wsoleval")
    scoremap = np.zeros((224, 224), np.float32)
    mask = np.full((224, 224), 255, np.uint8)
    for (y, x), value, label in zip([(0, 0), (0, 1), (0, 2), (0, 3)], [1.0, 0.75, 0.5, 0.0], [1, 0, 1, 0]):
        scoremap[y, x], mask[y, x] = value, label
    acc = proto.accumulator()
    acc.update(scoremap[None], [[224, 224]], [np.array([[0, 0, 10, 10]])], masks=[mask])
    assert proto.summarize(acc, policy="test-optimal")["pxap"] == pytest.approx(500 / 6)


def test_pxap_histograms_count_as_np_histogram_does():
    # values on the edges (as float32), just below them, at 0, 1 and 3, outside the edges and NaN; masks of
    # object, background and ignored pixels; regular and odd intervals
    from wsolbench.protocols._histogram import mask_histograms

    rng = np.random.default_rng(7)
    for interval in (0.001, 0.01, 0.37):
        edges = PROTOCOLS.build("wsoleval", interval=interval).edges
        for _ in range(40):
            h, w = (int(v) for v in rng.integers(1, 40, 2))
            x = rng.random((h, w)).astype(np.float32)
            on_edge = edges[rng.integers(0, len(edges), (h, w))].astype(np.float32)
            special = rng.choice(np.array([0.0, 1.0, 3.0, -0.5, 3.5, np.nan], np.float32), (h, w))
            pick = rng.random((h, w))
            x = np.where(pick < 0.3, on_edge, np.where(pick < 0.4, np.nextafter(on_edge, np.float32(-1)), x))
            x = np.where(pick > 0.95, special, x)
            mask = rng.choice(np.array([0, 1, 255], np.uint8), (h, w))
            pos, neg = mask_histograms(x, mask, edges)
            assert np.array_equal(pos, np.histogram(x[mask == 1], bins=edges)[0])
            assert np.array_equal(neg, np.histogram(x[mask == 0], bins=edges)[0])


def test_normalised_and_uint8_maps_equal_wsolevaluations_numpy_lines_bit_for_bit():
    from wsolbench.protocols.scoremaps import normalize_minmax, to_uint8

    def numpy_lines(scoremap):  # wsolevaluation's normalize_scoremap, then (map * 255).astype(uint8)
        m = np.array(scoremap, dtype=np.float32)
        if np.isnan(m).any() or m.min() == m.max():
            m = np.zeros_like(m)
        else:
            m -= m.min()
            m /= m.max()
        return m, (m * 255).astype(np.uint8)

    rng = np.random.default_rng(3)
    for k in range(300):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        x = rng.standard_normal((h, w)) * rng.choice([1e-6, 1.0, 1e6, 1e30])
        x = x.astype(np.float32 if k % 2 else np.float64)
        if k % 5 == 1:
            x[:] = x[0, 0]  # constant
        if k % 5 == 2:
            x[h // 2, w // 2] = np.nan
        if k % 5 == 3:
            x = np.round(x * 4) / 4  # ties
        if k % 5 == 4:
            x = x[:, ::2]  # not contiguous
        expected, expected_u8 = numpy_lines(x)
        got = normalize_minmax(x)
        assert got.dtype == np.float32 and np.array_equal(got, expected)
        assert np.array_equal(to_uint8(got), expected_u8)


def test_wsoleval_rescales_boxes_to_224_by_truncation():
    proto = PROTOCOLS.build("wsoleval")
    gt = proto.check_boxes(np.array([[10, 20, 299, 199]]), 200, 300, 0)
    assert gt.tolist() == [[int(10 * 224 / 300), int(20 * 224 / 200), int(299 * 224 / 300), int(199 * 224 / 200)]]


def test_maxboxacc_v2_averages_the_best_threshold_per_iou():
    proto = PROTOCOLS.build("wsoleval", interval=0.05)
    acc = proto.accumulator()
    rng = np.random.default_rng(0)
    for _ in range(3):
        acc.update(rng.random((2, 7, 7)), [[100, 120]] * 2, [np.array([[10, 10, 60, 80]])] * 2)
    curves = acc.gt_known.numpy() * 100.0 / 6
    m = proto.summarize(acc, policy="test-optimal")
    assert m["maxboxacc_v2"] == pytest.approx(curves.max(axis=1).mean())
    assert m["maxboxacc"] == pytest.approx(curves[1].max())


def test_merge_state_dict_and_torch_inputs():
    proto = PROTOCOLS.build("cub", interval=0.1)
    one, two, both = proto.accumulator(), proto.accumulator(), proto.accumulator()
    one.update(torch.from_numpy(RIGHT[None]), torch.tensor([[40, 40]]), [GT], labels=torch.tensor([3]), top5=torch.tensor([[3, 1, 2, 4, 5]]))
    two.update(WRONG[None], [[40, 40]], [GT], labels=[3], top5=[[1, 2, 4, 5, 6]])
    both.update(np.stack([RIGHT, WRONG]), [[40, 40]] * 2, [GT, GT], labels=[3, 3], top5=[[3, 1, 2, 4, 5], [1, 2, 4, 5, 6]])
    restored = proto.accumulator()
    restored.load_state_dict(one.state_dict())
    restored.merge(two)
    for key, value in both.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    restored.sync()  # torch.distributed not initialized: no-op
    assert proto.summarize(restored, policy="test-optimal") == proto.summarize(both, policy="test-optimal")
    with pytest.raises(WsolbenchError, match="different protocol"):
        restored.merge(PROTOCOLS.build("cub", interval=0.2).accumulator())


def test_bad_update_inputs_are_clear_errors():
    acc = PROTOCOLS.build("cub").accumulator()
    with pytest.raises(WsolbenchError, match=r"image 0: box \[0, 0, 45, 10\] is outside the 40x40 image"):
        acc.update(RIGHT[None], [[40, 40]], [np.array([[0, 0, 45, 10]])])
    with pytest.raises(WsolbenchError, match="B x h x w"):
        acc.update(RIGHT, [[40, 40]], [GT])
    with pytest.raises(WsolbenchError, match="largest-region"):
        PROTOCOLS.build("cub", multi_contour=True)


def test_a_box_one_pixel_over_the_border_is_clipped():
    proto = PROTOCOLS.build("cub", interval=0.1)
    assert proto.check_boxes(np.array([[0.0, 5.0, 40.0, 39.0]]), 40, 40, 0).tolist() == [[0, 5, 39, 39]]
    wsoleval = PROTOCOLS.build("wsoleval")
    assert wsoleval.check_boxes(np.array([[10.5, 0, 40, 20]]), 40, 40, 0).tolist() == [[int(10.5 * 224 / 40), 0, int(39 * 224 / 40), int(20 * 224 / 40)]]


def test_the_batch_box_check_rejects_exactly_the_boxes_box_problem_rejects():
    from wsolbench.protocols.box_scores import bad_boxes, box_problem

    rng = np.random.default_rng(0)
    boxes = rng.integers(-3, 45, (400, 4)).astype(float)
    boxes[rng.random((400, 4)) < 0.02] = np.nan
    boxes[rng.random((400, 4)) < 0.02] = np.inf
    boxes[::7, 2] = 40  # one past the border: accepted
    sizes = rng.integers(30, 42, (400, 2))
    want = [box_problem(b, h, w) is not None for b, (h, w) in zip(boxes, sizes)]
    assert bad_boxes(boxes, sizes[:, 0], sizes[:, 1]).tolist() == want
    assert 0 < sum(want) < 400


def test_sync_sums_over_an_initialized_process_group(tmp_path):
    import torch.distributed as dist

    proto = PROTOCOLS.build("cub", interval=0.1)
    acc = proto.accumulator()
    acc.update(RIGHT[None], [[40, 40]], [GT])
    before = acc.state_dict()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        acc.sync()  # one process: the sum is the state itself
    finally:
        dist.destroy_process_group()
    for key, value in before.items():
        assert torch.equal(acc.state_dict()[key], value), key
    assert acc.gt_known.shape == (1, len(proto.thresholds))  # counters: the size never grows with images
