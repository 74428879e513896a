"""The synthetic WSOL set: reproducible bytes, masks that agree with boxes, a small discriminative part."""
import cv2
import numpy as np
import pytest

from wsolbench.data import loading, synthetic
from wsolbench.registry import DATASETS

TINY = dict(classes=3, per_class=3, test_per_class=2, size=48)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    a = _files(synthetic.generate(tmp_path / "a", seed=3, **TINY))
    b = _files(synthetic.generate(tmp_path / "b", seed=3, **TINY))
    c = _files(synthetic.generate(tmp_path / "c", seed=4, **TINY))
    assert a == b
    images = [k for k in a if k.suffix == ".jpg"]
    assert len(images) == 3 * (3 + 2) and all(a[k] != c[k] for k in images)


def test_masks_agree_with_boxes(tmp_path):
    ds = DATASETS.build("synthetic", root=synthetic.generate(tmp_path / "s", **TINY), val_fraction=0.0)
    assert ds.check(decode=True) == []
    samples = ds.samples("train") + ds.samples("test")
    assert len(samples) == 15 and [len(ds.samples("train")), len(ds.samples("test"))] == [9, 6]
    for s in samples:
        mask = loading.load_mask(s)
        assert mask.shape == s.size == (48, 48) and set(np.unique(mask)) == {0, 1}
        ys, xs = np.nonzero(mask)
        assert s.boxes == ((xs.min(), ys.min(), xs.max(), ys.max()),)  # tight, x1 inclusive


def _hue_distance(image, rgb):
    return np.abs(image.astype(np.int32) - np.array(rgb)).sum(-1)


def test_the_class_is_a_small_part_of_the_object():
    """The class colour sits inside the object and covers a small share of its box."""
    shares = []
    for label in range(8):
        for j in range(5):
            image, mask = synthetic.render(np.random.default_rng([9, label, j]), label, 8, 64)
            marker = _hue_distance(image, synthetic.COLORS[synthetic.class_marker(label)[1]]) < 60
            ys, xs = np.nonzero(mask)
            box_area = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
            assert marker.sum() > 10 and (marker & (mask == 1)).sum() >= 0.9 * marker.sum()
            shares.append(marker.sum() / box_area)
    assert 0.01 < np.mean(shares) < 0.15, np.mean(shares)


def test_background_holds_saturated_distractors():
    """Other classes' markers (saturated colours) appear outside the object box in most images."""
    found = 0
    for j in range(20):
        image, mask = synthetic.render(np.random.default_rng([5, j]), j % 8, 8, 64)
        ys, xs = np.nonzero(mask)
        outside = np.ones(mask.shape, bool)
        outside[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = False
        saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1]
        found += (saturation[outside] > 150).sum() >= 8
    assert found >= 14


def test_cached_generation_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("WSOLBENCH_CACHE", str(tmp_path))
    stale = tmp_path / ".synthetic-v1-seed0-c3-n3-t2-px48.tmp-deadbeef"  # what a killed generation leaves
    stale.mkdir()
    ds = DATASETS.build("synthetic", root=None, **TINY)
    folder = tmp_path / f"synthetic-v{synthetic.VERSION}-seed0-c3-n3-t2-px48"
    assert ds.root == folder and (folder / "synthetic.json").is_file()
    stamp = (folder / "images.txt").stat().st_mtime_ns
    again = DATASETS.build("synthetic", **TINY)
    assert (folder / "images.txt").stat().st_mtime_ns == stamp
    assert [s.image_id for s in again.samples("val")] == [s.image_id for s in ds.samples("val")]
    assert ds.default_protocol == "cub" and ds.num_classes == 3


def test_synth_command(tmp_path, run_cli):
    out = tmp_path / "set"
    code, stdout, err = run_cli("data", "synth", "--out", out, "--seed", "1", "--classes", "2", "--per-class", "2", "--size", "32")
    assert code == 0, err
    assert "6 images of 2 classes" in stdout and (out / "bounding_boxes.txt").is_file()
    assert run_cli("data", "synth", "--out", out, "--seed", "1", "--classes", "2", "--per-class", "2", "--size", "32")[0] == 0
    code, _, err = run_cli("data", "synth", "--out", out, "--seed", "2", "--classes", "2", "--per-class", "2", "--size", "32")
    assert code == 2 and "is not this synthetic set" in err
    code, _, err = run_cli("data", "synth", "--out", tmp_path / "x", "--classes", "1")
    assert code == 2 and "classes must be" in err


@pytest.mark.parametrize("root", ["missing", "empty"])
def test_root_that_is_not_a_generated_set(tmp_path, root):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="wsolbench data synth --out"):
        DATASETS.build("synthetic", root=tmp_path / root)
