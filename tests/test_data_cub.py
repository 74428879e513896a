"""CUB-200-2011 reader: a miniature dataset in the official layout is read back exactly."""
from pathlib import Path

import cv2
import numpy as np
import pytest

import wsolbench.data  # noqa: F401 - registers the datasets
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS

# (id, relative path, class id 1-based, is_train, image (h, w), boxes x y w h)
CUB_ROWS = [
    (1, "001.Black_footed_Albatross/Black_Footed_Albatross_0001.jpg", 1, 1, (40, 50), [(3.0, 4.0, 20.0, 11.0)]),
    (2, "001.Black_footed_Albatross/Black_Footed_Albatross_0002.jpg", 1, 1, (48, 36), [(0.0, 0.0, 35.0, 47.0)]),
    (3, "001.Black_footed_Albatross/Black_Footed_Albatross_0003.jpg", 1, 0, (32, 32), [(5.0, 6.0, 7.0, 8.0)]),
    (4, "002.Laysan_Albatross/Laysan_Albatross_0001.jpg", 2, 1, (40, 40), [(1.0, 2.0, 3.0, 4.0), (10.0, 12.0, 9.0, 6.0)]),
    (5, "002.Laysan_Albatross/Laysan_Albatross_0002.jpg", 2, 1, (36, 44), [(2.0, 2.0, 42.0, 34.0)]),  # touches both edges
    (6, "002.Laysan_Albatross/Laysan_Albatross_0003.png", 2, 0, (30, 34), [(0.0, 1.0, 2.0, 3.0)]),
    (7, "003.Sooty_Albatross/Sooty_Albatross_0001.jpg", 3, 1, (33, 47), [(4.0, 4.0, 4.0, 4.0)]),
    (8, "003.Sooty_Albatross/Sooty_Albatross_0002.jpg", 3, 1, (45, 39), [(6.0, 7.0, 8.0, 9.0)]),
    (9, "003.Sooty_Albatross/Sooty_Albatross_0003.jpg", 3, 0, (41, 41), [(1.0, 1.0, 1.0, 1.0)]),
]
CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]


def write_image(path: Path, size, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


def write_cub(root: Path, rows=CUB_ROWS, masks: bool = False) -> Path:
    """A real-layout CUB folder: images, the five txt files, optional segmentations/."""
    root.mkdir(parents=True, exist_ok=True)
    for iid, rel, _, _, size, _ in rows:
        write_image(root / "images" / rel, size, iid)
        if masks:
            mask = np.zeros(size, np.uint8)
            mask[2:10, 3:12] = 255
            (root / "segmentations" / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str((root / "segmentations" / rel).with_suffix(".png")), mask)
    (root / "images.txt").write_text("".join(f"{r[0]} {r[1]}\n" for r in rows))
    (root / "image_class_labels.txt").write_text("".join(f"{r[0]} {r[2]}\n" for r in rows))
    (root / "train_test_split.txt").write_text("".join(f"{r[0]} {r[3]}\n" for r in rows))
    (root / "bounding_boxes.txt").write_text("".join(f"{r[0]} {x} {y} {w} {h}\n" for r in rows for x, y, w, h in r[5]))
    (root / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    return root


def _expected(rows, root: Path):
    """x, y, w, h -> x, y, x + w, y + h; an edge at x + w == width is the last column, width - 1."""
    def box(x, y, w, h, size):
        return (x, y, min(x + w, size[1] - 1), min(y + h, size[0] - 1))

    return {str(r[0]): (root / "images" / r[1], r[2] - 1, tuple(box(*b, r[4]) for b in r[5]), r[4]) for r in rows}


def test_reads_every_field_back(tmp_path):
    root = write_cub(tmp_path / "CUB_200_2011", masks=True)
    ds = DATASETS.build("cub", root=tmp_path, val_fraction=0.0)  # the parent folder works too
    assert (ds.name, ds.num_classes, ds.class_names, ds.default_protocol) == ("cub", 3, CLASSES, "cub")
    expected = _expected(CUB_ROWS, root)
    got = {s.image_id: s for split in ("train", "val", "test") for s in ds.samples(split)}
    assert got.keys() == expected.keys()
    for iid, (path, label, boxes, size) in expected.items():
        s = got[iid]
        assert (s.path, s.label, s.boxes, s.size) == (path, label, boxes, size)
        assert s.mask_path == (root / "segmentations" / path.relative_to(root / "images")).with_suffix(".png")
    assert [s.image_id for s in ds.samples("test")] == ["3", "6", "9"]
    assert ds.samples("val") == []
    assert ds.check() == []


def test_seeded_holdout_is_per_class_and_reproducible(tmp_path):
    rows = [(i, f"{c:03d}.c/{i}.jpg", c, 1, (20, 20), [(1.0, 1.0, 5.0, 5.0)]) for c in (1, 2, 3) for i in range(c * 10, c * 10 + 10)]
    rows.append((99, "001.c/test.jpg", 1, 0, (20, 20), [(1.0, 1.0, 5.0, 5.0)]))
    write_cub(tmp_path, rows)
    a = DATASETS.build("cub", root=tmp_path, val_fraction=0.3, seed=1)
    b = DATASETS.build("cub", root=tmp_path, val_fraction=0.3, seed=1)
    c = DATASETS.build("cub", root=tmp_path, val_fraction=0.3, seed=2)
    val = [s.image_id for s in a.samples("val")]
    assert val == [s.image_id for s in b.samples("val")] and val != [s.image_id for s in c.samples("val")]
    assert [sum(s.label == k for s in a.samples("val")) for k in range(3)] == [3, 3, 3]  # round(0.3 * 10)
    train = {s.image_id for s in a.samples("train")}
    assert not train & set(val) and train | set(val) == {str(r[0]) for r in rows if r[3]}


def test_val_from_wsolevaluation_lists(tmp_path):
    root = write_cub(tmp_path / "cub")
    extra = "001.Black_footed_Albatross/fullsup_0001.jpg"
    write_image(root / "images" / extra, (30, 40))
    meta = tmp_path / "metadata" / "CUB" / "val"
    meta.mkdir(parents=True)
    (meta / "image_ids.txt").write_text(f"{extra}\n")
    (meta / "class_labels.txt").write_text(f"{extra},0\n")
    (meta / "image_sizes.txt").write_text(f"{extra},40,30\n")
    (meta / "localization.txt").write_text(f"{extra},1,2,30,25\n{extra},4,5,6,7\n")
    ds = DATASETS.build("cub", root=root, wsoleval_metadata=tmp_path / "metadata")
    (val,) = ds.samples("val")
    assert (val.path, val.label, val.boxes, val.size) == (root / "images" / extra, 0, ((1, 2, 30, 25), (4, 5, 6, 7)), (30, 40))
    assert len(ds.samples("train")) == 6  # the whole official train set when val comes from the lists
    assert ds.check() == []


def test_missing_root_or_file_is_a_clear_error(tmp_path):
    with pytest.raises(WsolbenchError, match="does not exist"):
        DATASETS.build("cub", root=tmp_path / "nope")
    write_cub(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(WsolbenchError, match="classes.txt: annotation file not found"):
        DATASETS.build("cub", root=tmp_path)
