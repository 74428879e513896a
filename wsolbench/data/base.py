"""The dataset reader contract shared by every dataset (CUB, ILSVRC, wsolevaluation, synthetic).

A reader parses its annotation files once, at construction. Lines it cannot use become
``Problem`` records (file, line, message) instead of exceptions, so ``check()`` can list every
problem of a dataset at once; a missing root or annotation file is a ``WsolbenchError`` at once.

Conventions (one for all readers):
- ``Sample.boxes``: ``(x0, y0, x1, y1)`` floats in original image pixels, x1/y1 inclusive (the last
  pixel column/row of the object), as in CUB and wsolevaluation: CUB ``x, y, w, h`` -> ``x, y, x+w, y+h``.
  Valid boxes are whole pixels with ``0 <= x0 <= x1 <= width - 1`` (what the protocols score); an
  edge written as ``x1 == width`` (CUB's ``x + w`` for objects touching the border) is read as ``width - 1``.
- ``Sample.size``: ``(height, width)``; ``(0, 0)`` when the image could not be read (``check`` says so).
- ``Sample.label``: class index ``0 .. num_classes - 1``.
- Splits: ``train``; ``val`` (held out, for thresholds and hyper-parameters); ``test``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from wsolbench.errors import WsolbenchError

SPLITS = ("train", "val", "test")
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Sample:
    image_id: str
    path: Path
    label: int
    boxes: tuple[Box, ...]
    size: tuple[int, int]  # (height, width)
    mask_path: Path | None = None
    origin: tuple = field(default=("?", None), compare=False, repr=False)  # where the image is listed
    box_origins: tuple = field(default=(), compare=False, repr=False)  # where each box is written


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str
    image_id: str | None = None  # the sample it makes unusable (None: a dataset-wide problem)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text annotation file with their 1-based numbers."""
    if not path.is_file():
        raise WsolbenchError(f"{path}: annotation file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WsolbenchError(f"{path}: cannot read annotation file ({exc})") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header; (0, 0) when missing or unreadable."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception:  # noqa: BLE001 - check() reports why
        return 0, 0


def image_problem(path: Path, size: tuple[int, int], decode: bool) -> str | None:
    """Why the image cannot be used as annotated (``size``), or None. ``decode`` reads all pixels."""
    if not path.is_file():
        return f"missing image {path}"
    try:
        with Image.open(path) as im:
            if decode:
                im.load()
            actual = (im.height, im.width)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means unusable
        return f"unreadable image {path} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if actual != tuple(size):
        return f"image {path} is {actual[1]}x{actual[0]}, annotated as {size[1]}x{size[0]}"
    return None


def box_problem(box: Box, size: tuple[int, int]) -> str | None:
    x0, y0, x1, y1 = box
    h, w = size
    if x1 < x0 or y1 < y0:
        return f"box {_fmt(box)} has x1 < x0 or y1 < y0"
    if x0 < 0 or y0 < 0 or x1 > w - 1 or y1 > h - 1:
        return f"box {_fmt(box)} is outside the {w}x{h} image"
    if any(v != round(v) for v in box):
        return f"box {_fmt(box)} is not in whole pixels"
    return None


def make_sample(image_id: str, path: Path, label: int, boxes: list, size: tuple[int, int],
                mask_path: Path | None, origin: tuple) -> Sample:
    """A Sample from ``boxes`` = [(box, (file, line))]; an edge at x1 == width is read as width - 1."""
    h, w = size
    fitted = tuple((x0, y0, w - 1 if x1 == w else x1, h - 1 if y1 == h else y1) for (x0, y0, x1, y1), _ in boxes)
    return Sample(image_id, path, label, fitted, size, mask_path, origin, tuple(o for _, o in boxes))


def _fmt(box: Box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


class WsolDataset:
    """Base reader. Subclasses fill ``class_names``, ``_splits`` and ``parse_problems`` in ``__init__``."""

    name: str = "dataset"
    default_protocol: str = "cub"
    boxes_required = ("val", "test")  # splits where every image must have a box

    def __init__(self) -> None:
        self.class_names: list[str] = []
        self._splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
        self.parse_problems: list[Problem] = []
        self.label_file: str = "?"  # the file that assigns classes (named by class-size problems)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def samples(self, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise WsolbenchError(f"unknown split '{split}' (splits: {', '.join(SPLITS)})")
        return list(self._splits[split])

    def check(self, splits=SPLITS, decode: bool = False) -> list[Problem]:
        """Every problem of the given splits; ``decode`` fully decodes each image (slower)."""
        problems = list(self.parse_problems)
        seen: dict[str, str] = {}
        for split in splits:
            for s in self.samples(split):
                file, line = s.origin
                if s.image_id in seen:
                    problems.append(Problem(file, line, f"duplicate image id {s.image_id} (also in {seen[s.image_id]})", s.image_id))
                seen.setdefault(s.image_id, split)
                if not 0 <= s.label < self.num_classes:
                    problems.append(Problem(file, line, f"class index {s.label} out of range 0..{self.num_classes - 1}", s.image_id))
                bad_image = image_problem(s.path, s.size, decode)
                if bad_image:
                    problems.append(Problem(file, line, bad_image, s.image_id))
                    continue
                if split in self.boxes_required and not s.boxes:
                    problems.append(Problem(file, line, f"image {s.image_id} has no box", s.image_id))
                origins = s.box_origins or ((file, line),) * len(s.boxes)
                for box, (bfile, bline) in zip(s.boxes, origins):
                    bad_box = box_problem(box, s.size)
                    if bad_box:
                        problems.append(Problem(bfile, bline, bad_box, s.image_id))
                if s.mask_path is not None and not s.mask_path.is_file():
                    problems.append(Problem(file, line, f"missing mask {s.mask_path}", s.image_id))
        if "train" in splits:
            counts = Counter(s.label for s in self.samples("train"))
            for c, name in enumerate(self.class_names):
                if counts[c] < 2:
                    problems.append(Problem(self.label_file, None, f"class {c} ({name}) has {counts[c]} training images (need at least 2)"))
        return problems

    def summary(self) -> dict[str, Counter]:
        """Images per class for each split."""
        return {split: Counter(s.label for s in self.samples(split)) for split in SPLITS}


def existing_dir(root, what: str) -> Path:
    if root is None:
        raise WsolbenchError(f"{what}: give the dataset folder (root)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise WsolbenchError(f"{what}: dataset folder {root} does not exist")
    return root
