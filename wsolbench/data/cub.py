"""CUB-200-2011 reader on the official files.

Layout (``root`` is the folder holding ``images.txt``, or its parent holding ``CUB_200_2011/``):

    images.txt              <image_id> <path under images/>
    image_class_labels.txt  <image_id> <class_id, 1-based>
    train_test_split.txt    <image_id> <1 train | 0 test>
    bounding_boxes.txt      <image_id> <x> <y> <w> <h>   floats; -> box (x, y, x + w, y + h); several lines = several boxes
    classes.txt             <class_id> <name>
    segmentations/          optional masks <path under images/ with .png>, here or beside root (official release)

Splits: ``test`` is the official test set. ``val`` is, when ``wsoleval_metadata`` is given, the
wsolevaluation train-fullsup list (``<metadata>/CUB/val`` or a folder holding its ``image_ids.txt``;
its paths are read under ``images/``) and ``train`` is the whole official train set; otherwise
``val`` is a seeded hold-out of ``round(val_fraction * n)`` images of each class from the official
train set (``numpy.random.default_rng(seed)`` permutes each class's ids in file order), and
``train`` is the rest.

    DATASETS.build("cub", root=PATH, val_fraction=0.1, seed=0, wsoleval_metadata=None)
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from wsolbench.data.base import Problem, Sample, WsolDataset, existing_dir, image_size, make_sample, read_lines
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS


def _split_fields(path: Path, lines, count: int, problems: list[Problem], image_ids: bool = True):
    """Yield (lineno, fields) of lines with exactly ``count`` whitespace-separated fields.

    A bad line is reported; when ``image_ids`` its first field names the image it makes unusable."""
    for no, text in lines:
        fields = text.split(maxsplit=count - 1) if count == 2 else text.split()
        if len(fields) != count:
            problems.append(Problem(str(path), no, f"expected {count} fields, found {len(fields)}: '{text}'",
                                    fields[0] if fields and image_ids else None))
            continue
        yield no, fields


def holdout(ids_by_class: dict[int, list[str]], fraction: float, seed: int) -> set[str]:
    """Seeded per-class hold-out: round(fraction * n) ids of each class."""
    if not 0 <= fraction < 1:
        raise WsolbenchError(f"val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for label in sorted(ids_by_class):
        ids = ids_by_class[label]
        k = int(round(fraction * len(ids)))
        held.update(ids[i] for i in rng.permutation(len(ids))[:k])
    return held


@DATASETS.register("cub", description="CUB-200-2011 (official txt files; val: wsolevaluation list or seeded hold-out)")
class CUB(WsolDataset):
    name = "cub"
    default_protocol = "cub"

    def __init__(self, root=None, val_fraction: float = 0.1, seed: int = 0, wsoleval_metadata=None):
        super().__init__()
        root = existing_dir(root, self.name)
        if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
            root = root / "CUB_200_2011"
        self.root = root
        p = self.parse_problems
        files = {n: root / f"{n}.txt" for n in ("images", "image_class_labels", "train_test_split", "bounding_boxes", "classes")}
        self.label_file = str(files["image_class_labels"])

        class_ids: dict[str, int] = {}
        for no, (cid, cname) in _split_fields(files["classes"], read_lines(files["classes"]), 2, p, image_ids=False):
            class_ids[cid] = len(self.class_names)
            self.class_names.append(cname)

        paths: dict[str, tuple[str, int]] = {}
        for no, (iid, rel) in _split_fields(files["images"], read_lines(files["images"]), 2, p):
            if iid in paths:
                p.append(Problem(str(files["images"]), no, f"duplicate image id {iid} (first on line {paths[iid][1]})", iid))
                continue
            paths[iid] = (rel, no)

        labels = self._per_id(files["image_class_labels"], paths, p)
        is_train = self._per_id(files["train_test_split"], paths, p)
        boxes: dict[str, list] = defaultdict(list)
        for no, (iid, *xywh) in _split_fields(files["bounding_boxes"], read_lines(files["bounding_boxes"]), 5, p):
            try:
                x, y, w, h = map(float, xywh)
            except ValueError:
                p.append(Problem(str(files["bounding_boxes"]), no, f"box values are not numbers: {' '.join(xywh)}", iid))
                continue
            boxes[iid].append(((x, y, x + w, y + h), (str(files["bounding_boxes"]), no)))

        seg_dir = next((d for d in (root / "segmentations", root.parent / "segmentations") if d.is_dir()), None)
        by_split: dict[str, list[Sample]] = {"train": [], "test": []}
        for iid, (rel, no) in paths.items():
            if iid not in labels or iid not in is_train:
                continue  # already reported as a problem
            (cid, lno), (flag, fno) = labels[iid], is_train[iid]
            if cid not in class_ids:
                p.append(Problem(str(files["image_class_labels"]), lno,
                                 f"class index {cid} out of range 1..{len(class_ids)} (classes.txt)", iid))
                continue
            if flag not in ("0", "1"):
                p.append(Problem(str(files["train_test_split"]), fno, f"split flag must be 0 or 1, found '{flag}'", iid))
                continue
            path = root / "images" / rel
            mask = seg_dir / Path(rel).with_suffix(".png") if seg_dir else None
            sample = make_sample(iid, path, class_ids[cid], boxes.get(iid, []), image_size(path), mask, (str(files["images"]), no))
            by_split["train" if flag == "1" else "test"].append(sample)
        for iid in boxes.keys() - paths.keys():
            p.append(Problem(str(files["bounding_boxes"]), boxes[iid][0][1][1], f"box for unknown image id {iid}"))

        self._splits["test"] = by_split["test"]
        if wsoleval_metadata is not None:
            from wsolbench.data.wsoleval import read_split

            self._splits["train"] = by_split["train"]
            self._splits["val"] = read_split(_fullsup_dir(Path(wsoleval_metadata)), root / "images", p)
        else:
            ids_by_class: dict[int, list[str]] = defaultdict(list)
            for s in by_split["train"]:
                ids_by_class[s.label].append(s.image_id)
            held = holdout(ids_by_class, val_fraction, seed)
            self._splits["train"] = [s for s in by_split["train"] if s.image_id not in held]
            self._splits["val"] = [s for s in by_split["train"] if s.image_id in held]

    @staticmethod
    def _per_id(path: Path, known: dict, problems: list[Problem]) -> dict[str, tuple[str, int]]:
        """``<image_id> <value>`` lines -> {id: (value, line)}; reports duplicates and unknown ids."""
        out: dict[str, tuple[str, int]] = {}
        for no, (iid, value) in _split_fields(path, read_lines(path), 2, problems):
            if iid in out:
                problems.append(Problem(str(path), no, f"duplicate image id {iid} (first on line {out[iid][1]})", iid))
            elif iid not in known:
                problems.append(Problem(str(path), no, f"unknown image id {iid} (not in images.txt)"))
            else:
                out[iid] = (value, no)
        for iid, (_, no) in known.items():
            if iid not in out:
                problems.append(Problem(str(path), None, f"image id {iid} (images.txt line {no}) is not listed", iid))
        return out


def _fullsup_dir(metadata: Path) -> Path:
    for d in (metadata, metadata / "val", metadata / "CUB" / "val"):
        if (d / "image_ids.txt").is_file():
            return d
    raise WsolbenchError(f"{metadata}: no wsolevaluation train-fullsup list (image_ids.txt) here, in val/ or in CUB/val/")
