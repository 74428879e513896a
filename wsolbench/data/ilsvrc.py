"""ILSVRC 2012 reader: train images in WNID folders, validation boxes from XML or CSV.

Layouts (``root`` is either):
- flat: ``train/<wnid>/*.JPEG``, ``val/*.JPEG`` with the bbox XML files beside them or in ``val_xml/``;
- Kaggle: ``ILSVRC/Data/CLS-LOC/{train,val}``, ``ILSVRC/Annotations/CLS-LOC/{train,val}`` (PASCAL-VOC XML).
Either may hold ``LOC_val_solution.csv`` (``ImageId,PredictionString`` = ``wnid x0 y0 x1 y1 ...``;
preferred over XML when present), ``LOC_train_solution.csv`` and ``LOC_synset_mapping.txt``
(``<wnid> <name>``). Every box of an image counts; coordinates are kept as written.

A folder with only ``val/`` images, their boxes and ``LOC_synset_mapping.txt`` is enough (the
zero-shot case, docs/zero-shot.md): the class list comes from the mapping, ``train`` and ``val`` are empty.

Splits: ``test`` is the official validation set (the test set of WSOL papers); ``train`` the
train folders; ``val`` a seeded hold-out of ``val_per_class`` train images per class among those
with boxes (train XML files or ``LOC_train_solution.csv``), removed from ``train``; empty when
the data has no train boxes.

Class index order (``class_order``):
- ``"wnid"`` (default): sorted WNIDs, as torchvision's ImageFolder and LOC_synset_mapping.txt, and the
  class index of ImageNet-1k checkpoints (timm, torchvision): sorted here whatever the file's line order;
- ``"devkit"``: ILSVRC2012_ID - 1 of the devkit's meta.mat, the order of the I2C reference lists.
  It needs ``devkit_wnids``: a text file (default ``<root>/devkit_wnids.txt``) with the 1000
  WNIDs in ILSVRC2012_ID order, one per line (extra fields after the WNID are ignored).

    DATASETS.build("ilsvrc", root=PATH, class_order="wnid", val_per_class=5, seed=0)
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np

from wsolbench.data.base import Problem, Sample, WsolDataset, existing_dir, image_size, make_sample, read_lines
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
BoxList = list  # [((x0, y0, x1, y1), wnid, (file, line))]


def read_xml(path: Path, problems: list[Problem]) -> tuple[BoxList, tuple[int, int] | None]:
    """Boxes (with WNIDs) and (height, width) of one PASCAL-VOC XML file."""
    try:
        tree = ET.parse(path).getroot()
        size = tree.find("size")
        hw = (int(size.findtext("height")), int(size.findtext("width"))) if size is not None else None
        boxes = []
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            box = tuple(float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((box, obj.findtext("name", "").strip(), (str(path), None)))
        return boxes, hw
    except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        problems.append(Problem(str(path), None, f"bad PASCAL-VOC XML ({type(exc).__name__}: {exc})", path.stem))
        return [], None


def read_solution_csv(path: Path, problems: list[Problem]) -> dict[str, BoxList]:
    """LOC_*_solution.csv -> {image id: boxes}."""
    out: dict[str, BoxList] = defaultdict(list)
    for no, text in read_lines(path):
        if no == 1 and text.lower().startswith("imageid"):
            continue
        image_id, _, pred = text.partition(",")
        fields = pred.split()
        if not fields or len(fields) % 5:
            problems.append(Problem(str(path), no, f"PredictionString must be groups of 'wnid x0 y0 x1 y1': '{pred}'", image_id))
            continue
        try:
            for i in range(0, len(fields), 5):
                out[image_id].append((tuple(float(v) for v in fields[i + 1:i + 5]), fields[i], (str(path), no)))
        except ValueError:
            problems.append(Problem(str(path), no, f"box values are not numbers: '{pred}'", image_id))
            out.pop(image_id, None)
    return out


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


@DATASETS.register("ilsvrc", description="ILSVRC 2012 (WNID folders; val boxes from XML or LOC_val_solution.csv)")
class ILSVRC(WsolDataset):
    name = "ilsvrc"
    default_protocol = "ilsvrc"

    def __init__(self, root=None, class_order: str = "wnid", val_per_class: int = 5, seed: int = 0, devkit_wnids=None):
        super().__init__()
        root = existing_dir(root, self.name)
        kaggle = (root / "ILSVRC" / "Data" / "CLS-LOC").is_dir()
        img_dir = root / "ILSVRC" / "Data" / "CLS-LOC" if kaggle else root
        ann_dir = root / "ILSVRC" / "Annotations" / "CLS-LOC" if kaggle else root
        mapping = root / "LOC_synset_mapping.txt"
        if not (img_dir / "train").is_dir() and not mapping.is_file():
            raise WsolbenchError(f"ilsvrc: no train/ folder of WNID folders under {img_dir} and no {mapping.name} "
                                 f"in {root} (a val-only folder needs the class list)")
        p = self.parse_problems
        train_dir = img_dir / "train"
        wnids = sorted(d.name for d in train_dir.iterdir() if d.is_dir()) if train_dir.is_dir() else []
        names = {w: w for w in wnids}
        if mapping.is_file():  # "<wnid> <name>": all 1000 classes even where a train folder is missing
            names = {w: n for _, line in read_lines(mapping) for w, _, n in [line.partition(" ")]}
            wnids = sorted(names)
        if class_order == "devkit":
            wnids = self._devkit_order(Path(devkit_wnids) if devkit_wnids else root / "devkit_wnids.txt", set(wnids))
        elif class_order != "wnid":
            raise WsolbenchError(f"ilsvrc: class_order must be 'wnid' or 'devkit', got '{class_order}'")
        index = {w: i for i, w in enumerate(wnids)}
        self.class_names = [names.get(w, w) for w in wnids]
        self.wnids = wnids
        self.label_file = str(img_dir / "train")

        # official validation set = test split
        csv = root / "LOC_val_solution.csv"
        val_boxes = read_solution_csv(csv, p) if csv.is_file() else None
        xml_dirs = [ann_dir / "val", root / "val_xml"]
        test = []
        for path in _images(img_dir / "val"):
            if val_boxes is not None:
                boxes, hw = val_boxes.get(path.stem, []), None
                origin = boxes[0][2] if boxes else (str(csv), None)
            else:
                xml = next((d / f"{path.stem}.xml" for d in xml_dirs if (d / f"{path.stem}.xml").is_file()), None)
                boxes, hw = read_xml(xml, p) if xml else ([], None)
                origin = (str(xml or path), None)
            label = self._label(boxes, index, origin, path.stem)
            if label is not None:
                test.append(self._sample(path, label, boxes, hw, origin))
        self._splits["test"] = test

        # train folders; images with boxes are candidates for the held-out val split
        csv = root / "LOC_train_solution.csv"
        train_boxes = read_solution_csv(csv, p) if csv.is_file() else {}
        train, candidates = [], defaultdict(list)
        for wnid in wnids:
            for path in _images(img_dir / "train" / wnid):
                boxes, hw = train_boxes.get(path.stem, []), None
                xml = ann_dir / "train" / wnid / f"{path.stem}.xml"
                if not boxes and xml.is_file():
                    boxes, hw = read_xml(xml, p)
                train.append(self._sample(path, index[wnid], boxes, hw, (str(path.parent), None)))
                if boxes:
                    candidates[index[wnid]].append(len(train) - 1)
        rng = np.random.default_rng(seed)
        held = {c[i] for label in sorted(candidates) for c in [candidates[label]]
                for i in rng.permutation(len(c))[:val_per_class]}
        self._splits["val"] = [s for i, s in enumerate(train) if i in held]
        self._splits["train"] = [s for i, s in enumerate(train) if i not in held]

    def check(self, splits=("train", "val", "test"), decode: bool = False):
        # a val-only folder (zero-shot scoring) has no train split to count; training on it fails on its own
        # ("train split is too small for one batch")
        if not self._splits["train"]:
            splits = tuple(s for s in splits if s != "train")
        return super().check(splits, decode=decode)

    def _label(self, boxes: BoxList, index: dict[str, int], origin, image_id: str) -> int | None:
        classes = {w for _, w, _ in boxes}
        if len(classes) != 1 or not classes <= index.keys():
            what = "has no box" if not classes else f"boxes name classes {sorted(classes)} (need one known WNID)"
            self.parse_problems.append(Problem(origin[0], origin[1], f"validation image {image_id} {what}", image_id))
            return None
        return index[classes.pop()]

    @staticmethod
    def _sample(path: Path, label: int, boxes: BoxList, hw, origin) -> Sample:
        return make_sample(path.stem, path, label, [(b, o) for b, _, o in boxes], hw or image_size(path), None, origin)

    @staticmethod
    def _devkit_order(path: Path, known: set[str]) -> list[str]:
        if not path.is_file():
            raise WsolbenchError(f"ilsvrc: class_order='devkit' needs {path}: the WNIDs in ILSVRC2012_ID order, one per line "
                                 "(from the devkit's data/meta.mat), or pass devkit_wnids=PATH")
        order = [line.split()[0] if not line.split()[0].isdigit() else line.split()[1] for _, line in read_lines(path)]
        if set(order) != known or len(order) != len(known):
            raise WsolbenchError(f"{path}: lists {len(order)} WNIDs; they must be exactly the {len(known)} classes of the dataset")
        return order
