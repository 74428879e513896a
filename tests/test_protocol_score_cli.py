"""``wsolbench score``: the numbers of the Python API, and one clear line for each bad input."""
import json

import numpy as np
import pytest

from wsolbench.plugins import load_builtin
from wsolbench.protocols.maps_file import accumulate
from wsolbench.registry import PROTOCOLS

load_builtin()


def make_arrays(n=4, seed=0):
    rng = np.random.default_rng(seed)
    maps = rng.random((n, 7, 7)).astype(np.float32)
    sizes = np.array([[60 + 5 * i, 80 - 3 * i] for i in range(n)])
    boxes = -np.ones((n, 2, 4), np.int64)
    for i, (h, w) in enumerate(sizes):
        boxes[i, 0] = [5, 8, w - 10, h - 6]
    boxes[0, 1] = [0, 0, 10, 10]
    labels = np.arange(n) % 3
    top5 = np.stack([np.roll(np.arange(5), i) for i in range(n)])
    masks = (rng.random((n, 30, 30)) < 0.3).astype(np.uint8)
    masks[:, 0, 0] = 255
    return dict(maps=maps, image_sizes=sizes, boxes=boxes, labels=labels, top5=top5, masks=masks)


def save(tmp_path, name="maps.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_score_json_equals_the_python_api(tmp_path, run_cli):
    arrays = make_arrays()
    path = save(tmp_path, **arrays)
    code, out, err = run_cli("score", path, "--protocol", "wsoleval", "--interval", "0.05", "--json")
    assert code == 0, err
    got = json.loads(out)
    proto = PROTOCOLS.build("wsoleval", interval=0.05)
    want = proto.summarize(accumulate(proto, arrays), policy="test-optimal")
    for key in ("maxboxacc", "maxboxacc_v2", "gt_known_loc", "top1_loc", "top5_loc", "top1_cls", "pxap", "threshold"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["policy"] == "test-optimal" and got["box_rule"] == "multi-contour"


def test_score_table_largest_rule_and_val_file(tmp_path, run_cli):
    path = save(tmp_path, **make_arrays())
    val = save(tmp_path, "val.npz", **make_arrays(seed=1))
    code, out, err = run_cli("score", path, "--protocol", "wsoleval", "--interval", "0.1", "--largest", "--val", val)
    assert code == 0, err
    assert "MaxBoxAccV2" in out and "largest" in out and "(val)" in out
    code, out, err = run_cli("score", path, "--protocol", "cub", "--json")
    assert code == 0 and json.loads(out)["protocol"] == "cub" and "top5_loc" in json.loads(out)


def bad_cases():
    a = make_arrays()
    nan = dict(a, maps=a["maps"].copy())
    nan["maps"][2, 3, 3] = np.nan
    outside = dict(a, boxes=a["boxes"].copy())
    outside["boxes"][1, 0] = [0, 0, 500, 10]
    no_box = dict(a, boxes=a["boxes"].copy())
    no_box["boxes"][2] = -1
    no_box["boxes"][3, 0] = [0, 0, 500, 10]  # a later image's problem: the first image's is the one named
    nan_box = dict(a, boxes=a["boxes"].astype(float))
    nan_box["boxes"][1, 0, 0] = np.nan
    return {
        "wrong shape": (dict(a, maps=a["maps"][0]), "'maps' must be N x h x w"),
        "no box": (no_box, "image 2 has no box"),
        "nan box": (nan_box, "image 1: box [nan, "),  # bracketed text kept (not read as markup)
        "nan": (nan, "'maps'[2] holds NaN"),
        "outside": (outside, "image 1: box [0, 0, 500, 10] is outside"),
        "missing": ({k: v for k, v in a.items() if k != "image_sizes"}, "missing key(s) image_sizes"),
        "sizes shape": (dict(a, image_sizes=a["image_sizes"][:2]), "'image_sizes' must be 4 x 2"),
        "mask values": (dict(a, masks=a["masks"] * 3), "'masks' may hold only"),
    }


@pytest.mark.parametrize("case", list(bad_cases()))
def test_bad_input_is_one_clear_line(tmp_path, run_cli, case):
    arrays, message = bad_cases()[case]
    path = save(tmp_path, **arrays)
    code, out, err = run_cli("score", path, "--protocol", "cub")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err and message in err


def test_missing_file_and_unknown_protocol(tmp_path, run_cli):
    code, _, err = run_cli("score", tmp_path / "nope.npz")
    assert code == 2 and "no such file" in err
    path = save(tmp_path, **make_arrays())
    code, _, err = run_cli("score", path, "--protocol", "cubb")
    assert code == 2 and "unknown protocol 'cubb'" in err and "cub" in err
