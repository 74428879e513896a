"""``wsolbench score`` at scale: the box-search setting, workers, streamed inputs (npz and a wsolevaluation
scoremap folder) and one clear line for each bad input."""
import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from test_data_wsoleval import SPLITS, write_wsoleval
from wsolbench.plugins import load_builtin
from wsolbench.protocols.maps_file import NpzSource, accumulate
from wsolbench.registry import PROTOCOLS

load_builtin()


def cam_like(n, size=14, seed=0):
    """Smooth maps with one to three blobs and a little noise, as a CAM looks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    maps = 0.05 * rng.random((n, size, size))
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0, size, 2)
            maps[i] += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(1, 3) ** 2))
    return maps.astype(np.float32)


def arrays(n=12, seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.stack([rng.integers(40, 90, n), rng.integers(40, 90, n)], 1)
    boxes = -np.ones((n, 2, 4))
    for i, (h, w) in enumerate(sizes):
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        boxes[i, 0] = [x0, y0, x0 + w // 3, y0 + h // 3]
    masks = (rng.random((n, 20, 20)) < 0.3).astype(np.uint8)
    return dict(maps=cam_like(n, seed=seed), image_sizes=sizes, boxes=boxes, masks=masks,
                labels=np.arange(n) % 3, top5=np.stack([np.roll(np.arange(5), i) for i in range(n)]))


def score_json(run_cli, *args):
    code, out, err = run_cli("score", *map(str, args), "--json")
    assert code == 0, out + err
    return json.loads(out)


# --- the box-search setting ------------------------------------------------------------------------
def test_reference_box_search_gives_the_same_numbers_and_is_recorded(tmp_path, run_cli):
    path = tmp_path / "maps.npz"
    np.savez_compressed(path, **arrays())
    for rule in ("--multi-contour", "--largest"):
        fast = score_json(run_cli, path, "--interval", "0.01", rule, "--box-search", "fast", "--workers", "1")
        ref = score_json(run_cli, path, "--interval", "0.01", rule, "--box-search", "reference", "--workers", "1")
        assert (fast["config"].pop("box_search"), ref["config"].pop("box_search")) == ("fast", "reference")
        assert fast == ref and 0 < fast["maxboxacc_v2"] < 100  # same numbers, curves and settings otherwise
    code, _, err = run_cli("score", path, "--box-search", "exhaustive")
    assert code == 2 and "--box-search must be one of fast, reference" in err


# --- workers -----------------------------------------------------------------------------------------
def test_one_and_two_workers_give_the_same_bytes(tmp_path, run_cli):
    data = arrays(n=23)
    proto = PROTOCOLS.build("wsoleval", interval=0.01)
    one = accumulate(proto, data, batch=4, workers=1)  # six shards, the last one short
    two = accumulate(proto, data, batch=4, workers=2)
    for key, value in one.states.items():
        other = two.states[key]
        assert value.dtype == other.dtype and value.shape == other.shape and torch.equal(value, other), key
    assert one.states["img_index"].tolist() == list(range(23))  # per-image rows in file order
    path = tmp_path / "maps.npz"
    np.savez(path, **data)
    outs = [run_cli("score", path, "--workers", w, "--json")[1] for w in ("1", "2")]
    assert outs[0] == outs[1] and json.loads(outs[0])["n_images"] == 23


# --- streaming ---------------------------------------------------------------------------------------
def write_sparse_npz(path: Path, n: int, size: int, height: int = 8, width: int = 8) -> None:
    """An uncompressed .npz whose ``maps`` (n x size x size float32, all zero) is a hole in a sparse file:
    nominally n * size * size * 4 bytes, a few kilobytes on disk."""
    small = {"image_sizes": np.tile([height, width], (n, 1)), "boxes": np.tile([[[1, 1, 5, 5]]], (n, 1, 1))}
    entries, offset = [], 0

    def npy_bytes(array):
        import io

        buf = io.BytesIO()
        np.lib.format.write_array(buf, array)
        return buf.getvalue()

    header = np.lib.format.header_data_from_array_1_0(np.zeros((0,), np.float32))
    header["shape"] = (n, size, size)
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, header)
    maps_head, maps_bytes = head.getvalue(), n * size * size * 4
    crc = zlib.crc32(maps_head)
    zeros = bytes(1 << 24)
    for start in range(0, maps_bytes, len(zeros)):
        crc = zlib.crc32(zeros[: min(len(zeros), maps_bytes - start)], crc)
    with open(path, "wb") as f:
        def local(name, crc, length):
            f.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, length, length, len(name), 0))
            f.write(name)

        for name, payload in [(b"maps.npy", None)] + [(f"{k}.npy".encode(), npy_bytes(v)) for k, v in small.items()]:
            offset = f.tell()
            if payload is None:
                local(name, crc, len(maps_head) + maps_bytes)
                f.write(maps_head)
                f.seek(maps_bytes, 1)  # the hole
                entries.append((name, crc, len(maps_head) + maps_bytes, offset))
            else:
                local(name, zlib.crc32(payload), len(payload))
                f.write(payload)
                entries.append((name, zlib.crc32(payload), len(payload), offset))
        directory = f.tell()
        for name, crc, length, offset in entries:
            f.write(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, length, length, len(name),
                                0, 0, 0, 0, 0, offset))
            f.write(name)
        end = f.tell()
        f.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries), end - directory, directory, 0))


def test_a_2_gb_maps_file_is_streamed_not_loaded(tmp_path, run_cli):
    path = tmp_path / "big.npz"
    n, size = 2_000, 500  # 2,000 maps of 500 x 500 float32: 2.0 GB nominally (as 10,000 maps of 224 x 224)
    write_sparse_npz(path, n, size)
    assert path.stat().st_size > 2e9 and path.stat().st_blocks * 512 < 50e6  # sparse: nominally big, small on disk
    source = NpzSource(path)
    assert source.n == n and "maps" in source.stored and "maps" not in source.small
    proto = PROTOCOLS.build("cub")
    tracemalloc.start()  # numpy's buffers are traced
    try:
        acc = accumulate(proto, source, batch=32, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert int(acc.states["n_images"]) == n
    assert peak < 150e6, peak / 1e6  # a few batches of 32 MB, not the 2 GB a whole load takes
    code, out, err = run_cli("score", path, "--protocol", "cub", "--workers", "2", "--json")  # the workers read it
    assert code == 0 and json.loads(out)["n_images"] == n, err


def write_folder(tmp_path, maps_by_id):
    folder = tmp_path / "scoremaps"
    for image_id, m in maps_by_id.items():
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(folder / image_id, m)  # wsolevaluation: np.save(ospj(scoremap_root, image_id), cam) adds .npy
    return folder


@pytest.fixture
def wsoleval_layout(tmp_path):
    write_wsoleval(tmp_path / "images", tmp_path / "metadata")
    ids = [p for p, *_ in SPLITS["test"]]
    maps = dict(zip(ids, cam_like(len(ids), size=224, seed=3)))
    return tmp_path / "metadata" / "CUB" / "test", write_folder(tmp_path, maps), maps


def test_a_wsolevaluation_scoremap_folder_scores_as_the_same_maps_in_a_file(tmp_path, run_cli, wsoleval_layout):
    metadata, folder, maps = wsoleval_layout
    assert (folder / "test" / "001.Black_footed_Albatross" / "e.jpg.npy").is_file()
    rows = SPLITS["test"]
    boxes = -np.ones((len(rows), 2, 4))
    for i, (*_, b) in enumerate(rows):
        boxes[i, : len(b)] = b
    path = tmp_path / "same.npz"
    np.savez(path, maps=np.stack(list(maps.values())), image_sizes=np.array([(h, w) for _, _, (w, h), _ in rows]), boxes=boxes)
    from_folder = score_json(run_cli, folder, "--metadata", metadata, "--interval", "0.01")
    from_file = score_json(run_cli, path, "--interval", "0.01")
    assert from_folder.pop("maps_file") != from_file.pop("maps_file")
    assert from_folder == from_file and from_folder["n_images"] == 2


# --- bad input: one line naming the file ---------------------------------------------------------------
def one_line_error(run_cli, *args):
    code, out, err = run_cli("score", *map(str, args))
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_folder_with_a_missing_or_misshaped_or_non_finite_map(run_cli, wsoleval_layout):
    metadata, folder, maps = wsoleval_layout
    first, second = (folder / f"{i}.npy" for i in maps)
    saved = np.load(second)
    second.unlink()
    err = one_line_error(run_cli, folder, "--metadata", metadata)
    assert str(second) in err and "missing map of image" in err and "1 of 2 missing" in err
    np.save(second, saved[None])  # 1 x 224 x 224: wrong ndim
    err = one_line_error(run_cli, folder, "--metadata", metadata, "--workers", "2")
    assert str(second) in err and "must be an h x w array" in err and "(1, 224, 224)" in err
    np.save(second, saved[:100])  # 100 x 224: not the folder's shape
    err = one_line_error(run_cli, folder, "--metadata", metadata)
    assert str(second) in err and "(100, 224)" in err and "(224, 224)" in err
    saved[5, 5] = np.inf
    np.save(second, saved)
    err = one_line_error(run_cli, folder, "--metadata", metadata)
    assert str(second) in err and "NaN or infinity" in err
    second.write_bytes(b"not a numpy file")
    assert str(second) in one_line_error(run_cli, folder, "--metadata", metadata)
    assert "needs --metadata" in one_line_error(run_cli, folder)


def test_truncated_or_corrupt_npz_and_non_finite_map(tmp_path, run_cli):
    data = arrays(n=8)
    good = tmp_path / "good.npz"
    np.savez_compressed(good, **data)
    blob = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(blob[: len(blob) // 2])
    err = one_line_error(run_cli, cut)
    assert str(cut) in err and "not a readable .npz file" in err
    # a stored (uncompressed) file cut inside the maps: its directory is gone too
    stored = tmp_path / "stored.npz"
    np.savez(stored, **data)
    stored.write_bytes(stored.read_bytes()[:-200])
    assert str(stored) in one_line_error(run_cli, stored)
    # bytes changed inside the compressed maps: the decompression or its checksum fails
    with np.load(good) as npz:
        assert "maps" in npz.files
    start = blob.index(b"maps.npy") + 200
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(blob[:start] + bytes(b ^ 0x5A for b in blob[start:start + 64]) + blob[start + 64:])
    err = one_line_error(run_cli, corrupt)
    assert str(corrupt) in err and "not a readable .npz file" in err
    data["maps"][5, 2, 2] = np.inf
    for save in (np.savez, np.savez_compressed):
        bad = tmp_path / f"inf-{save.__name__}.npz"
        save(bad, **data)
        err = one_line_error(run_cli, bad, "--workers", "2")
        assert str(bad) in err and "'maps'[5] holds NaN or infinity" in err


def test_workers_start_after_the_parent_used_opencvs_threads(tmp_path):
    """A process that ran OpenCV's thread pool (the eval loop resizes maps) then forks workers: they must
    not hang (a child forked while the pool runs hangs in cv2.setNumThreads)."""
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import cv2, numpy as np\n"
        "from wsolbench.plugins import load_builtin\n"
        "from wsolbench.protocols.maps_file import accumulate\n"
        "from wsolbench.registry import PROTOCOLS\n"
        "load_builtin()\n"
        "cv2.setNumThreads(2)\n"
        "for _ in range(3):\n"
        "    cv2.resize(np.random.rand(8, 8).astype(np.float32), (500, 375))  # large enough to run on the pool\n"
        "maps = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)\n"
        "data = {'maps': maps, 'image_sizes': np.array([[40, 50]] * 4), 'boxes': np.array([[[1, 2, 20, 30]]] * 4)}\n"
        "acc = accumulate(PROTOCOLS.build('cub'), data, batch=2, workers=2)\n"
        "print(int(acc.states['n_images']), cv2.getNumThreads())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a hung run is ended whole
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("scoring on 2 workers hung after the parent used OpenCV's thread pool")
    assert proc.returncode == 0, err
    assert out.split() == ["4", "2"]  # all scored; the parent's OpenCV setting restored
