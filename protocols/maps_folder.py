"""A folder of per-image maps in wsolevaluation's scoremap layout, scored against its metadata split.

    <folder>/<image_id>.npy          one h x w map per image id, as wsolevaluation saves them
                                     (np.save(ospj(scoremap_root, image_id), cam): image ids keep their
                                     sub-folders, e.g. test/001.Black_footed_Albatross/x.jpg.npy)
    <metadata>/image_ids.txt, image_sizes.txt, localization.txt[, class_labels.txt]   (one split)

Sizes and boxes come from the metadata (``wsolbench.data.wsoleval.read_split``); masks too where
``localization.txt`` lists mask paths (OpenImages; read under ``data_root``). Every listed map must
exist and all share the first map's shape. Maps are read a batch at a time by the scoring workers.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from wsolbench.errors import WsolbenchError
from wsolbench.protocols.maps_file import check_layout, update_args

READ_ERRORS = (OSError, ValueError, EOFError)


def map_path(folder: Path, image_id: str) -> Path:
    return Path(folder) / f"{image_id}.npy"


def read_map(path: Path, shape: tuple | None = None) -> np.ndarray:
    """One map file, checked: readable, 2-D numbers, of ``shape`` when given."""
    try:
        m = np.load(path, allow_pickle=False)
    except READ_ERRORS as exc:
        raise WsolbenchError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.number):
        raise WsolbenchError(f"{path}: a map must be an h x w array of numbers, got shape {m.shape} of {m.dtype}")
    if shape is not None and m.shape != shape:
        raise WsolbenchError(f"{path}: map of shape {m.shape}, but the folder's maps are {shape} (the first map's)")
    if not np.isfinite(m).all():
        raise WsolbenchError(f"{path}: the map holds NaN or infinity")
    return m


class FolderRows:
    """Images [start, start + len(ids)) of a folder source (picklable: a worker reads them)."""

    def __init__(self, folder: str, ids: list[str], small: dict, mask_paths: list | None, shape: tuple, start: int):
        self.folder, self.ids, self.small, self.mask_paths, self.shape, self.start = folder, ids, small, mask_paths, shape, start

    def __call__(self) -> dict:
        from wsolbench.data.loading import load_mask  # the datasets' rule: grey >= 128 is object

        rows = {"maps": np.stack([read_map(map_path(self.folder, i), self.shape) for i in self.ids])}
        if self.mask_paths is not None:
            rows["masks"] = [load_mask(SimpleNamespace(image_id=i, mask_path=Path(p))) for i, p in zip(self.ids, self.mask_paths)]
        return update_args(rows, self.small, self.start)


class FolderSource:
    def __init__(self, folder: str | Path, metadata: str | Path, data_root: str | Path | None = None):
        from wsolbench.data.wsoleval import read_split

        folder, metadata = Path(folder), Path(metadata)
        if not (metadata / "image_ids.txt").is_file():
            raise WsolbenchError(f"{metadata}: not a wsolevaluation metadata split (no image_ids.txt); "
                                 f"--metadata takes e.g. metadata/CUB/test")
        problems: list = []
        samples = read_split(metadata, Path(data_root or metadata), problems)
        if problems:
            p = problems[0]
            raise WsolbenchError(f"{p.file}:{p.line}: {p.message}")
        if not samples:
            raise WsolbenchError(f"{metadata}/image_ids.txt: no image listed")
        missing = [s.image_id for s in samples if not map_path(folder, s.image_id).is_file()]
        if missing:
            raise WsolbenchError(f"{map_path(folder, missing[0])}: missing map of image {missing[0]} "
                                 f"(listed in {metadata / 'image_ids.txt'}; {len(missing)} of {len(samples)} missing)")
        self.path, self.folder, self.ids = str(folder), str(folder), [s.image_id for s in samples]
        self.n = len(samples)
        self.shape = read_map(map_path(folder, samples[0].image_id)).shape
        width = max(len(s.boxes) for s in samples) or 1
        boxes = -np.ones((self.n, width, 4))
        for i, s in enumerate(samples):
            boxes[i, : len(s.boxes)] = np.asarray(s.boxes, np.float64).reshape(-1, 4)
        self.small = {"image_sizes": np.array([s.size for s in samples], np.int64), "boxes": boxes}
        check_layout(self.small, {"maps": ((self.n, *self.shape), np.dtype(np.float32)),
                                  **{k: (v.shape, v.dtype) for k, v in self.small.items()}}, str(metadata))
        with_masks = all(s.mask_path is not None for s in samples)
        self.mask_paths = [str(s.mask_path) for s in samples] if with_masks else None

    def batches(self, size: int):
        for start in range(0, self.n, size):
            stop = min(self.n, start + size)
            yield FolderRows(self.folder, self.ids[start:stop], {k: v[start:stop] for k, v in self.small.items()},
                             None if self.mask_paths is None else self.mask_paths[start:stop], self.shape, start)


def open_maps(path: str | Path, metadata: str | Path | None = None, data_root: str | Path | None = None):
    """A source for ``maps_file.accumulate``: an ``.npz`` file, or a folder of maps with its metadata split."""
    from wsolbench.protocols.maps_file import NpzSource

    if Path(path).is_dir():
        if metadata is None:
            raise WsolbenchError(f"{path}: a folder of maps needs --metadata, the wsolevaluation split it "
                                 f"follows (e.g. metadata/CUB/test)")
        return FolderSource(path, metadata, data_root)
    if metadata is not None:
        raise WsolbenchError(f"{path}: --metadata goes with a folder of per-image .npy maps, not a file")
    return NpzSource(path)
