"""ILSVRC reader: WNID train folders, val boxes from PASCAL-VOC XML or LOC_val_solution.csv."""
import pytest

from test_data_cub import write_image
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS

WNIDS = ["n01440764", "n01443537", "n01484850"]  # sorted; the devkit order below is another
DEVKIT = ["n01484850", "n01440764", "n01443537"]
NAMES = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus", "n01484850": "great white shark"}
# val image -> (size (h, w), boxes as (wnid, x0, y0, x1, y1))
VAL = {
    "ILSVRC2012_val_00000001": ((40, 60), [("n01484850", 2, 3, 30, 20), ("n01484850", 10, 12, 50, 38)]),
    "ILSVRC2012_val_00000002": ((50, 30), [("n01440764", 0, 0, 29, 49)]),
    "ILSVRC2012_val_00000003": ((36, 36), [("n01443537", 5, 6, 7, 8)]),
}
TRAIN_BOXES = {"n01440764_2": ((30, 40), [("n01440764", 1, 2, 3, 4)]), "n01484850_0": ((30, 40), [("n01484850", 4, 3, 2 + 20, 1 + 20)])}


def voc_xml(size, boxes) -> str:
    objects = "".join(
        f"<object><name>{w}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for w, x0, y0, x1, y1 in boxes)
    return f"<annotation><size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>{objects}</annotation>"


def write_ilsvrc(root, kaggle: bool):
    images = root / "ILSVRC" / "Data" / "CLS-LOC" if kaggle else root
    notes = root / "ILSVRC" / "Annotations" / "CLS-LOC" if kaggle else root
    for c, wnid in enumerate(WNIDS):
        for j in range(3):
            name = f"{wnid}_{j}"
            write_image(images / "train" / wnid / f"{name}.JPEG", TRAIN_BOXES.get(name, ((30, 40),))[0], c * 10 + j)
            if name in TRAIN_BOXES:
                (notes / "train" / wnid).mkdir(parents=True, exist_ok=True)
                (notes / "train" / wnid / f"{name}.xml").write_text(voc_xml(*TRAIN_BOXES[name]))
    for i, (name, (size, boxes)) in enumerate(VAL.items()):
        write_image(images / "val" / f"{name}.JPEG", size, 100 + i)
        if not kaggle:
            (notes / "val" / f"{name}.xml").write_text(voc_xml(size, boxes))
    if kaggle:
        rows = [f"{n}," + " ".join(f"{w} {x0} {y0} {x1} {y1}" for w, x0, y0, x1, y1 in b) for n, (_, b) in VAL.items()]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {NAMES[w]}\n" for w in WNIDS))
    (root / "devkit_wnids.txt").write_text("".join(f"{i + 1} {w}\n" for i, w in enumerate(DEVKIT)))
    return root


@pytest.mark.parametrize("kaggle", [False, True], ids=["flat-xml", "kaggle-csv"])
@pytest.mark.parametrize("order", ["wnid", "devkit"])
def test_reads_boxes_and_classes(tmp_path, kaggle, order):
    root = write_ilsvrc(tmp_path, kaggle)
    ds = DATASETS.build("ilsvrc", root=root, class_order=order, val_per_class=1)
    classes = WNIDS if order == "wnid" else DEVKIT
    assert ds.wnids == classes and ds.default_protocol == "ilsvrc"
    assert ds.class_names == ([NAMES[w] for w in classes] if kaggle else classes)
    test = {s.image_id: s for s in ds.samples("test")}
    assert test.keys() == VAL.keys()
    for name, (size, boxes) in VAL.items():
        s = test[name]
        assert s.label == classes.index(boxes[0][0]) and s.size == size
        assert s.boxes == tuple(tuple(float(v) for v in b[1:]) for b in boxes)  # every box counts
    # held-out val: the train images that have boxes (1 per class at most); the rest is train
    val = {s.image_id: s for s in ds.samples("val")}
    assert val.keys() == TRAIN_BOXES.keys()
    assert val["n01440764_2"].boxes == ((1.0, 2.0, 3.0, 4.0),) and val["n01440764_2"].label == classes.index("n01440764")
    assert len(ds.samples("train")) == 9 - 2 and not {s.image_id for s in ds.samples("train")} & val.keys()
    assert ds.check(decode=True) == []


def test_devkit_order_needs_its_list(tmp_path):
    root = write_ilsvrc(tmp_path, kaggle=False)
    (root / "devkit_wnids.txt").unlink()
    with pytest.raises(WsolbenchError, match="devkit_wnids.txt"):
        DATASETS.build("ilsvrc", root=root, class_order="devkit")
    with pytest.raises(WsolbenchError, match="class_order"):
        DATASETS.build("ilsvrc", root=root, class_order="alphabetical")


def test_bad_annotations_are_problems(tmp_path):
    root = write_ilsvrc(tmp_path, kaggle=True)
    csv = root / "LOC_val_solution.csv"
    lines = csv.read_text().splitlines()
    lines[2] = "ILSVRC2012_val_00000002,n01440764 0 0 29"  # 4 numbers: not a box
    lines[3] = "ILSVRC2012_val_00000003,n01443537 5 6 70 8"  # outside the 36 px wide image
    csv.write_text("\n".join(lines) + "\n")
    problems = [str(p) for p in DATASETS.build("ilsvrc", root=root).check()]
    assert f"{csv}:3: PredictionString must be groups of 'wnid x0 y0 x1 y1': 'n01440764 0 0 29'" in problems
    assert f"{csv}:4: box (5, 6, 70, 8) is outside the 36x36 image" in problems
