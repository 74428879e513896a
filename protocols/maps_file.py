"""What ``wsolbench score`` reads, streamed: an ``.npz`` of maps, or a folder of per-image ``.npy`` maps.

The ``.npz`` keys: ``maps`` N x h x w float (the true class's map, any resolution, covering the whole image),
``image_sizes`` N x 2 (height, width), ``boxes`` N x B x 4 (x0 y0 x1 y1, original pixels, inclusive; rows of
-1 pad), optional ``masks`` N x h x w uint8 (1 object, 0 background, 255 ignored) with ``mask_sizes`` N x 2
when the masks differ in size (each mask is the top-left ``mask_sizes[i]`` of its row, the rest 255),
``labels`` N, ``top5`` N x 5 (predicted classes, best first), ``top5_maps`` N x 5 x h x w, and ``image_ids``
N strings (which image each row is; informational, as ``wsolbench eval --save-maps`` writes it).

The folder: wsolevaluation's scoremap layout, ``<folder>/<image_id>.npy`` for every image id of a
wsolevaluation metadata split (``image_ids.txt``, ``image_sizes.txt``, ``localization.txt``), which gives the
sizes, boxes and (OpenImages) masks. All maps of a folder share one shape (wsolevaluation's are 224 x 224).

Streaming: the large arrays (``maps``, ``top5_maps``, ``masks``) are never read whole. A member stored
uncompressed (``np.savez``) is read by rows at its offset inside the zip, by the worker that scores them; a
compressed one (``np.savez_compressed``) is decompressed in order, a batch at a time; a folder's maps are
read a batch at a time by the workers. Memory is a few batches of maps, whatever N.
"""
from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from wsolbench.errors import WsolbenchError
from wsolbench.protocols.box_scores import bad_boxes, box_problem

REQUIRED = ("maps", "image_sizes", "boxes")
OPTIONAL = ("masks", "mask_sizes", "labels", "top5", "top5_maps", "image_ids")
STREAMED = ("maps", "top5_maps", "masks")  # read by rows; the other keys are small and read whole
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error)


# --- the checks ---------------------------------------------------------------------------------
def check_layout(small: dict, shapes: dict, where: str) -> None:
    """Keys, shapes and the small arrays' values; ``shapes``: key -> (shape, dtype) of every array."""
    def fail(msg: str):
        raise WsolbenchError(f"{where}: {msg}")

    missing = [k for k in REQUIRED if k not in shapes]
    if missing:
        fail(f"missing key(s) {', '.join(missing)} (needs maps, image_sizes, boxes)")
    unknown = sorted(set(shapes) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        fail(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    (maps_shape, maps_dtype) = shapes["maps"]
    if len(maps_shape) != 3 or maps_shape[1] < 1 or maps_shape[2] < 1:
        fail(f"'maps' must be N x h x w, got shape {maps_shape}")
    if not np.issubdtype(maps_dtype, np.number):
        fail(f"'maps' must be numbers, got {maps_dtype}")
    n = maps_shape[0]
    sizes = small["image_sizes"]
    if sizes.shape != (n, 2):
        fail(f"'image_sizes' must be {n} x 2 (height, width), got shape {sizes.shape}")
    if (sizes < 1).any() or (sizes != np.round(sizes)).any():
        fail(f"'image_sizes'[{int(np.flatnonzero((sizes < 1).any(axis=1) | (sizes != np.round(sizes)).any(axis=1))[0])}] is not a positive whole size")
    boxes = small["boxes"]
    if boxes.ndim != 3 or boxes.shape[0] != n or boxes.shape[2] != 4:
        fail(f"'boxes' must be {n} x B x 4 (x0 y0 x1 y1, rows of -1 as padding), got shape {boxes.shape}")
    real = ~(boxes == -1).all(axis=2)  # N x B: rows that are not padding
    bad = real & bad_boxes(boxes, sizes[:, :1], sizes[:, 1:])
    problem = bad.any(axis=1) | ~real.any(axis=1)
    if problem.any():  # the first image with a problem, and its first bad box in box_problem's words
        i = int(problem.argmax())
        if not real[i].any():
            fail(f"image {i} has no box (all rows are -1 padding)")
        fail(f"image {i}: {box_problem(boxes[i, bad[i].argmax()], int(sizes[i, 0]), int(sizes[i, 1]))}")
    if "masks" in shapes:
        mshape = shapes["masks"][0]
        if len(mshape) != 3 or mshape[0] != n:
            fail(f"'masks' must be {n} x h x w, got shape {mshape}")
    if "mask_sizes" in small:
        ms = small["mask_sizes"]
        if "masks" not in shapes or ms.shape != (n, 2):
            fail(f"'mask_sizes' must be {n} x 2 (height, width) and come with 'masks', got shape {ms.shape}")
        if (ms < 1).any() or (ms[:, 0] > mshape[1]).any() or (ms[:, 1] > mshape[2]).any():
            fail(f"'mask_sizes' must lie within the masks' {mshape[1]} x {mshape[2]}")
    if ("labels" in small) != ("top5" in small):
        fail("'labels' and 'top5' go together (Top-1/Top-5 Loc need both)")
    if "labels" in small and small["labels"].shape != (n,):
        fail(f"'labels' must have shape ({n},), got {small['labels'].shape}")
    if "top5" in small and (small["top5"].ndim != 2 or small["top5"].shape[0] != n or small["top5"].shape[1] < 1):
        fail(f"'top5' must be {n} x 5, got shape {small['top5'].shape}")
    if "top5_maps" in shapes:
        if "top5" not in small:
            fail("'top5_maps' needs 'top5' and 'labels'")
        t5 = shapes["top5_maps"][0]
        if len(t5) != 4 or t5[:2] != small["top5"].shape:
            fail(f"'top5_maps' must be {n} x {small['top5'].shape[1]} x h x w, got shape {t5}")
    if "image_ids" in small and (small["image_ids"].shape != (n,) or small["image_ids"].dtype.kind not in "US"):
        fail(f"'image_ids' must be {n} strings, got shape {small['image_ids'].shape} of {small['image_ids'].dtype}")


def check_rows(rows: dict, start: int, where: str) -> None:
    """The values of a batch of streamed rows (image ``start`` first)."""
    for key in ("maps", "top5_maps"):
        if key in rows:
            finite = np.isfinite(rows[key].reshape(len(rows[key]), -1)).all(axis=1)
            if not finite.all():
                raise WsolbenchError(f"{where}: '{key}'[{start + int(np.flatnonzero(~finite)[0])}] holds NaN or infinity")
    if "masks" in rows:
        values = set(np.unique(rows["masks"]).tolist())
        if not values <= {0, 1, 255}:
            raise WsolbenchError(f"{where}: 'masks' may hold only 0 (background), 1 (object), 255 (ignored); "
                                 f"found {sorted(values - {0, 1, 255})[:5]}")


def check_arrays(data: dict, where: str) -> None:
    """All the checks of in-memory arrays."""
    check_layout(data, {k: (np.shape(v), np.asarray(v).dtype) for k, v in data.items()}, where)
    check_rows({k: data[k] for k in STREAMED if k in data}, 0, where)


def update_args(rows: dict, small: dict, start: int) -> dict:
    """``LocalizationAccumulator.update``'s arguments for a batch: streamed ``rows`` and ``small`` sliced alike."""
    n = len(rows["maps"])
    masks = None
    if "masks" in rows:
        masks = list(rows["masks"])
        if "mask_sizes" in small:
            masks = [m[: int(h), : int(w)] for m, (h, w) in zip(masks, small["mask_sizes"])]
    return dict(maps=rows["maps"], image_sizes=small["image_sizes"], boxes=list(small["boxes"]),
                labels=small.get("labels"), top5=small.get("top5"), top5_maps=rows.get("top5_maps"),
                masks=masks, indices=np.arange(start, start + n))


def _sliced(small: dict, start: int, stop: int) -> dict:
    return {k: v[start:stop] for k, v in small.items() if k != "image_ids"}


# --- an .npz, member by member ------------------------------------------------------------------
class StoredRows:
    """Rows [start, stop) of uncompressed ``.npz`` members, read at their offsets (picklable: a worker reads them)."""

    def __init__(self, path: str, members: dict, small: dict, start: int, stop: int):
        self.path, self.members, self.small, self.start, self.stop = path, members, small, start, stop

    def read(self) -> dict:
        rows = {}
        try:
            with open(self.path, "rb") as f:
                for key, (offset, shape, dtype) in self.members.items():
                    per_row = int(np.prod(shape[1:]))
                    f.seek(offset + self.start * per_row * dtype.itemsize)
                    count = (self.stop - self.start) * per_row
                    values = np.fromfile(f, dtype, count=count)
                    if values.size != count:
                        raise WsolbenchError(f"{self.path}: '{key}' is truncated (rows {self.start}-{self.stop - 1} "
                                             f"of {shape[0]} end past the file)")
                    rows[key] = values.reshape((self.stop - self.start, *shape[1:]))
        except READ_ERRORS as exc:
            raise WsolbenchError(f"{self.path}: not a readable .npz file ({exc})") from None
        return rows

    def __call__(self) -> dict:
        rows = self.read()
        check_rows(rows, self.start, self.path)
        return update_args(rows, self.small, self.start)


def _local_data_offset(f, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes begin: after its local header (whose extra field may differ from the
    central directory's)."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _npy_header(f) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


class NpzSource:
    """An ``.npz`` opened for streaming: headers read, small keys loaded, the big members left on disk.

    ``stored``: key -> (data offset, shape, dtype) of uncompressed big members; ``compressed``: key -> (zip
    entry, header length, shape, dtype); ``whole``: big members in column-major order (rare), read whole.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not Path(path).is_file():
            raise WsolbenchError(f"{path}: no such file")
        self.small, self.shapes, self.stored, self.compressed, self.whole = {}, {}, {}, {}, {}
        try:
            with zipfile.ZipFile(self.path) as zf, open(self.path, "rb") as raw:
                for info in zf.infolist():
                    key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                    with zf.open(info) as f:
                        shape, fortran, dtype = _npy_header(f)
                        header_len = f.tell()
                    if dtype.hasobject:
                        raise WsolbenchError(f"{self.path}: '{key}' holds Python objects (pickled); save plain arrays")
                    self.shapes[key] = (shape, dtype)
                    if key not in STREAMED:
                        with zf.open(info) as f:
                            self.small[key] = np.load(f, allow_pickle=False)
                    elif fortran:
                        self.whole[key] = info
                    elif info.compress_type == zipfile.ZIP_STORED:
                        self.stored[key] = (_local_data_offset(raw, info) + header_len, shape, dtype)
                    else:
                        self.compressed[key] = (info, header_len, shape, dtype)
        except WsolbenchError:
            raise
        except READ_ERRORS as exc:
            raise WsolbenchError(f"{self.path}: not a readable .npz file ({exc})") from None
        check_layout(self.small, self.shapes, self.path)
        self.n = self.shapes["maps"][0][0]

    def batches(self, size: int):
        """One item per batch of rows, in order: a ``StoredRows`` that a worker reads, or rows read here."""
        if not self.compressed and not self.whole:
            for start in range(0, self.n, size):
                stop = min(self.n, start + size)
                yield StoredRows(self.path, self.stored, _sliced(self.small, start, stop), start, stop)
            return
        try:
            yield from self._read_here(size)
        except WsolbenchError:
            raise
        except READ_ERRORS as exc:
            raise WsolbenchError(f"{self.path}: not a readable .npz file ({exc})") from None

    def _read_here(self, size: int):
        """Compressed members decompressed in order, a batch at a time (the workers get the rows)."""
        with zipfile.ZipFile(self.path) as zf:
            whole = {}
            for key, info in self.whole.items():
                with zf.open(info) as f:
                    whole[key] = np.load(f, allow_pickle=False)
            streams = {key: zf.open(info) for key, (info, *_) in self.compressed.items()}
            try:
                for key, (_, header_len, _, _) in self.compressed.items():
                    streams[key].read(header_len)
                for start in range(0, self.n, size):
                    stop = min(self.n, start + size)
                    rows = StoredRows(self.path, self.stored, {}, start, stop).read()
                    for key, (_, _, shape, dtype) in self.compressed.items():
                        buf = bytearray((stop - start) * int(np.prod(shape[1:])) * dtype.itemsize)
                        if streams[key].readinto(buf) != len(buf):
                            raise WsolbenchError(f"{self.path}: '{key}' is truncated (ends before row {stop - 1})")
                        rows[key] = np.frombuffer(buf, dtype).reshape((stop - start, *shape[1:]))
                    rows.update({key: array[start:stop] for key, array in whole.items()})
                    check_rows(rows, start, self.path)
                    yield update_args(rows, _sliced(self.small, start, stop), start)
                for stream in streams.values():
                    stream.read(1)  # reaching the end checks the member's CRC (bytes changed inside it)
            finally:
                for stream in streams.values():
                    stream.close()


def accumulate(protocol, data, batch: int = 64, workers: int | None = 1):
    """An accumulator of ``protocol`` fed with ``data``: in-memory arrays (a dict), or a source
    (``open_maps``), scored on ``workers`` processes (``parallel.Scorer``; None: the usable cores)."""
    from wsolbench.protocols.parallel import Scorer

    if isinstance(data, dict):
        check_arrays(data, "maps")
        small = {k: v for k, v in data.items() if k not in STREAMED and k != "image_ids"}
        n = len(data["maps"])
        items = (update_args({k: data[k][s:s + batch] for k in STREAMED if k in data},
                             _sliced(small, s, s + batch), s) for s in range(0, n, batch))
    else:
        items = data.batches(batch)
    with Scorer([protocol], workers) as scorer:
        for item in items:
            scorer.submit(item)
        return scorer.results()[0]
