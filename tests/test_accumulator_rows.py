"""The accumulator's per-image rows at scale: the rows of N images are the per-batch rows one after another,
and adding a batch does not copy the rows already held (memory and time flat per image)."""
import numpy as np
import torch

from test_scoring import arrays
from wsolbench.plugins import load_builtin
from wsolbench.protocols.accumulator import STATE_REDUCTIONS
from wsolbench.registry import PROTOCOLS

load_builtin()


def _batches(n_batches=5, size=7):
    for b in range(n_batches):
        data = arrays(n=size, seed=b)
        yield {**data, "boxes": list(data["boxes"]), "masks": list(data["masks"]),
               "indices": np.arange(b * size, (b + 1) * size)}


def test_rows_at_n_images_are_the_per_batch_rows_in_order():
    proto = PROTOCOLS.build("wsoleval", interval=0.05)
    whole = proto.accumulator()
    per_batch = []
    for batch in _batches():
        whole.update(**batch)
        one = proto.accumulator()
        one.update(**batch)
        per_batch.append(one.states)
    for key, reduction in STATE_REDUCTIONS.items():
        parts = [s[key] for s in per_batch]
        expected = torch.cat(parts) if reduction == "cat" else sum(parts[1:], parts[0])
        assert whole.states[key].dtype == expected.dtype and torch.equal(whole.states[key], expected), key
    assert whole.states["img_index"].tolist() == list(range(35))


def test_adding_a_batch_does_not_copy_the_rows_held():
    proto = PROTOCOLS.build("wsoleval", interval=0.05)
    acc = proto.accumulator()
    batches = list(_batches(n_batches=3))
    acc.update(**batches[0])
    held = acc.states["img_hits"]  # concatenated once, on this look
    acc.update(**batches[1])
    acc.update(**batches[2])
    assert acc._states["img_hits"] is held  # the two new batches wait, uncopied, until the next look
    assert len(acc.states["img_hits"]) == 21 and acc.states["img_hits"].data_ptr() == acc.states["img_hits"].data_ptr()


def test_evaluation_gives_free_memory_back_every_so_many_images(tmp_path, monkeypatch):
    """A long evaluation returns the allocator's free pages every EVERY_IMAGES images (memory flat in N)."""
    from wsolbench.data.loading import ImageDataset, test_transform
    from wsolbench.data.synthetic import generate
    from wsolbench.engine import evaluate as E
    from wsolbench.methods.base import build_method
    from wsolbench.registry import DATASETS

    data = generate(tmp_path / "synth", classes=2, per_class=2, test_per_class=5, size=32)
    samples = DATASETS.build("synthetic", root=data).samples("test")
    calls = []
    monkeypatch.setattr(E, "EVERY_IMAGES", 4)
    monkeypatch.setattr(E, "release_free_memory", lambda: calls.append(1))
    method = build_method("center-box", None, 2)
    acc = E.evaluate_split(method, ImageDataset(samples, test_transform(32)), samples, PROTOCOLS.build("cub"),
                           torch.device("cpu"), batch_size=3, score_workers=1)
    assert int(acc.states["n_images"]) == len(samples) == 10 and len(calls) == 2  # past images 4 and 8
