"""`wsolbench data check` and `ensure_valid` report every problem by file and line."""
import pytest

from test_data_cub import CUB_ROWS, write_cub
from wsolbench.data.validate import ensure_valid
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS


def _broken_cub(root):
    """CUB_ROWS with: image 2 corrupt, image 5 missing, image 7's box outside, image 8's box with x1 < x0."""
    rows = [list(r) for r in CUB_ROWS]
    rows[6][5] = [(40.0, 4.0, 20.0, 4.0)]  # image 7 is 47 wide: x1 = 60
    rows[7][5] = [(6.0, 7.0, -3.0, 9.0)]
    write_cub(root, [tuple(r) for r in rows])
    (root / "images" / CUB_ROWS[1][1]).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (root / "images" / CUB_ROWS[4][1]).unlink()
    return root


def _expected_lines(root):
    images, boxes = root / "images.txt", root / "bounding_boxes.txt"
    # bounding_boxes.txt has one line per box; image 4 has two, so image 7's box is on line 8
    return [
        f"{images}:2: unreadable image {root / 'images' / CUB_ROWS[1][1]}",
        f"{images}:5: missing image {root / 'images' / CUB_ROWS[4][1]}",
        f"{boxes}:8: box (40, 4, 60, 8) is outside the 47x33 image",
        f"{boxes}:9: box (6, 7, 3, 16) has x1 < x0",
    ]


def test_check_reports_each_problem_by_file_and_line(tmp_path, run_cli):
    root = _broken_cub(tmp_path / "cub")
    code, out, err = run_cli("data", "check", "--dataset", "cub", "--root", root, "--set", "val_fraction=0")
    assert code == 1, (out, err)
    for line in _expected_lines(root):
        assert line in out, line
    assert "4 problems found" in err and "Traceback" not in out + err
    assert "train" in out and "images/class" in out  # the summary comes first


def test_annotation_problems_name_their_line(tmp_path, run_cli):
    root = write_cub(tmp_path / "cub")
    labels = root / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("9 3\n", "9 7\n"))  # class out of range
    images = root / "images.txt"
    images.write_text(images.read_text() + f"3 {CUB_ROWS[0][1]}\n")  # duplicate id on line 10
    split = root / "train_test_split.txt"
    split.write_text(split.read_text().replace("8 1\n", "8 0\n"))  # class 3 keeps one training image
    boxes = root / "bounding_boxes.txt"
    boxes.write_text(boxes.read_text().replace("1 3.0 4.0", "1 3.5 4.0"))  # the protocols score whole pixels
    code, out, err = run_cli("data", "check", "--dataset", "cub", "--root", root, "--set", "val_fraction=0")
    assert code == 1
    assert f"{labels}:9: class index 7 out of range 1..3 (classes.txt)" in out
    assert f"{images}:10: duplicate image id 3 (first on line 3)" in out
    assert f"{boxes}:1: box (3.5, 4, 23.5, 15) is not in whole pixels" in out
    assert f"{labels}: class 2 (003.Sooty_Albatross) has 1 training images (need at least 2)" in out
    assert "Traceback" not in out + err


def test_ensure_valid_raises_or_skips(tmp_path):
    root = _broken_cub(tmp_path / "cub")
    ds = DATASETS.build("cub", root=root, val_fraction=0.0)
    with pytest.raises(WsolbenchError) as info:
        ensure_valid(ds, ("train", "val", "test"))
    message = str(info.value)
    assert "4 problems" in message and all(line in message for line in _expected_lines(root))
    splits = ensure_valid(ds, ("train", "val", "test"), skip_bad=True)
    assert splits.skipped_count == 4 and splits.message().startswith("skipped 4 bad samples: ")
    assert sorted(s.image_id for s in splits["train"]) == ["1", "4"]
    assert sorted(s.image_id for v in splits.skipped.values() for s in v) == ["2", "5", "7", "8"]
    assert [s.image_id for s in splits["test"]] == ["3", "6", "9"]


def test_skip_cannot_cure_a_dataset_wide_problem(tmp_path):
    root = write_cub(tmp_path / "cub")
    split = root / "train_test_split.txt"
    split.write_text(split.read_text().replace("8 1\n", "8 0\n"))
    ds = DATASETS.build("cub", root=root, val_fraction=0.0)
    with pytest.raises(WsolbenchError, match="class 2 .* has 1 training images"):
        ensure_valid(ds, ("train", "test"), skip_bad=True)
    assert ensure_valid(ds, ("test",)) == {"test": ds.samples("test")}


def test_truncated_jpeg_needs_decoding(tmp_path):
    root = write_cub(tmp_path / "cub")
    path = root / "images" / CUB_ROWS[0][1]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the header survives, the last pixels do not
    ds = DATASETS.build("cub", root=root, val_fraction=0.0)
    assert ds.check(decode=False) == []
    (problem,) = ds.check(decode=True)
    assert str(problem).startswith(f"{root / 'images.txt'}:1: unreadable image {path}")


def test_unknown_root_is_one_line_exit_2(tmp_path, run_cli):
    code, out, err = run_cli("data", "check", "--dataset", "cub", "--root", tmp_path / "missing")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
