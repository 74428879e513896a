"""Reader of the wsolevaluation metadata layout (Choe et al., CVPR 2020), to reuse prepared splits.

    <metadata>/<name>/<split>/image_ids.txt     <path>                       one image per line
                             class_labels.txt   <path>,<class index>         0-based
                             image_sizes.txt    <path>,<width>,<height>
                             localization.txt   <path>,<x0>,<y0>,<x1>,<y1>   one line per box (all count)
                                            or  <path>,<mask path>[,<ignore path>]   (OpenImages masks)

Splits ``train``, ``val`` (wsolevaluation's train-fullsup) and ``test``; a missing split folder is
an empty split. Image and mask paths are relative to ``root``. Class names: the parent folder
of the class's training images when all agree (``001.Black_footed_Albatross``), else the index.

    DATASETS.build("wsoleval", root=IMAGES_ROOT, metadata=METADATA_ROOT, name="CUB")
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from wsolbench.data.base import SPLITS, Problem, Sample, WsolDataset, existing_dir, make_sample, read_lines
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS


def _csv(path: Path, problems: list[Problem], counts: tuple[int, ...]):
    """Yield (lineno, fields) of comma-separated lines with a field count in ``counts``."""
    if not path.is_file():
        return
    for no, text in read_lines(path):
        fields = [f.strip() for f in text.split(",")]
        if len(fields) not in counts:
            problems.append(Problem(str(path), no, f"expected {' or '.join(map(str, counts))} comma-separated fields, "
                                    f"found {len(fields)}: '{text}'", fields[0]))
            continue
        yield no, fields


def read_split(folder: Path, root: Path, problems: list[Problem]) -> list[Sample]:
    """Samples of one wsolevaluation split folder; bad lines become ``problems``."""
    ids = folder / "image_ids.txt"
    order = {}
    for no, path in read_lines(ids):
        if path in order:
            problems.append(Problem(str(ids), no, f"duplicate image id {path} (first on line {order[path]})", path))
        else:
            order[path] = no
    labels, sizes = {}, {}
    boxes, masks = defaultdict(list), {}
    for name, table, n in (("class_labels", labels, (2,)), ("image_sizes", sizes, (3,))):
        file = folder / f"{name}.txt"
        if not file.is_file():
            raise WsolbenchError(f"{file}: annotation file not found")
        for no, fields in _csv(file, problems, n):
            try:
                table[fields[0]] = ([int(v) for v in fields[1:]], no)
            except ValueError:
                problems.append(Problem(str(file), no, f"not an integer: {','.join(fields[1:])}", fields[0]))
    loc = folder / "localization.txt"
    for no, fields in _csv(loc, problems, (2, 3, 5)):
        if len(fields) < 5:
            masks[fields[0]] = root / fields[1]
            continue
        try:
            boxes[fields[0]].append((tuple(float(v) for v in fields[1:]), (str(loc), no)))
        except ValueError:
            problems.append(Problem(str(loc), no, f"box values are not numbers: {','.join(fields[1:])}", fields[0]))
    samples = []
    for path, no in order.items():
        missing = [f for f, table in (("class_labels.txt", labels), ("image_sizes.txt", sizes)) if path not in table]
        if missing:
            problems.append(Problem(str(ids), no, f"image {path} has no line in {', '.join(missing)}", path))
            continue
        (label,), _ = labels[path]
        (w, h), _ = sizes[path]
        samples.append(make_sample(path, root / path, label, boxes.get(path, []), (h, w), masks.get(path), (str(ids), no)))
    return samples


@DATASETS.register("wsoleval", description="wsolevaluation metadata (image_ids, class_labels, image_sizes, localization)")
class WsolEval(WsolDataset):
    default_protocol = "wsoleval"

    def __init__(self, root=None, metadata=None, name: str = "CUB"):
        super().__init__()
        self.root = existing_dir(root, "wsoleval")
        base = existing_dir(metadata, "wsoleval metadata") / name
        if not base.is_dir():
            raise WsolbenchError(f"wsoleval: no metadata folder {base} (expected <metadata>/{name}/<split>/image_ids.txt)")
        self.name = f"wsoleval-{name}"
        for split in SPLITS:
            if (base / split).is_dir():
                self._splits[split] = read_split(base / split, self.root, self.parse_problems)
        self.label_file = str(base / "train" / "class_labels.txt")
        all_samples = [s for split in SPLITS for s in self._splits[split]]
        if not all_samples:
            raise WsolbenchError(f"wsoleval: {base} has no train/, val/ or test/ split with images")
        self.class_names = _class_names(self._splits["train"], 1 + max(s.label for s in all_samples))


def _class_names(train: list[Sample], num_classes: int) -> list[str]:
    folders = defaultdict(set)
    for s in train:
        folders[s.label].add(Path(s.image_id).parent.name)
    return [next(iter(folders[c])) if len(folders[c]) == 1 and next(iter(folders[c])) else str(c) for c in range(num_classes)]
