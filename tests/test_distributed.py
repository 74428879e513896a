"""Distributed training and evaluation on CPU (gloo): the real launcher, ``torchrun --standalone
--nproc_per_node=2 -m wsolbench run``, and the same run in two processes started by torch.multiprocessing
that crash after epoch 1 and resume (to read each rank's model).

- I2C's GC bank and counters are identical on both ranks, and the first step's update equals the
  one computed in one process from the union of both ranks' seeds;
- every rank ends with the same model (BatchNorm statistics included), the one rank 0 checkpoints;
  a run resumed after a crash ends exactly where the uninterrupted torchrun run ends;
- the torchrun run's metrics equal a single-process ``wsolbench eval`` of its checkpoint exactly, and so do a
  two-process re-evaluation's metrics and saved maps (every image once, gathered on rank 0);
- only rank 0 writes; an error on one rank (a corrupt checkpoint only rank 0 reads) ends the job.
"""
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from wsolbench.engine import rundir as R
from wsolbench.engine.runconfig import RunConfig

# raster seeds and no dropout: each rank's seeds are a function of its batch and the weights alone
SETTINGS = {"head_width": 16, "loss_start_epoch": 0, "seed_order": "raster", "dropout": 0.0}
BATCH, IMAGES_PER_CLASS, WORLD, EPOCHS = 8, 2, 2, 2
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Crash(Exception):
    pass


def _worker(rank: int, port: int, cfg: RunConfig, results: Path, resume: Path | None) -> None:
    """One rank: the real train_and_evaluate, with the method captured to read its bank afterwards.

    Without ``resume`` it crashes when epoch 2 begins (after epoch 1's checkpoint)."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    from wsolbench.engine import train
    from wsolbench.methods.i2c import I2C

    if resume is None:
        def crashing_set_epoch(self, epoch):
            if epoch == 1:
                torch.save({"first_step": seen["first_step"]}, results / f"crashed{rank}.pt")
                raise Crash("a crash after epoch 1")
            self.epoch = epoch

        I2C.set_epoch = crashing_set_epoch

    seen = {"first_step": None}
    build = train.build

    def capturing_build(*args, **kwargs):
        setup = build(*args, **kwargs)
        seen["method"] = setup.method

        def after_forward(module, inputs, output):  # the bank is updated inside the training forward
            if module.training and seen["first_step"] is None:
                seen["first_step"] = (module.centers.clone(), module.center_updates.clone())

        setup.method.register_forward_hook(after_forward)
        return setup

    train.build = capturing_build
    run_dir = train.train_and_evaluate(cfg, resume=resume, show_progress=False)
    torch.save({"state": seen["method"].state_dict(), "run_dir": str(run_dir)}, results / f"rank{rank}.pt")
    train.build = build
    from wsolbench.engine.reeval import reevaluate

    reevaluate(run_dir, device="cpu", save_maps=True)  # sharded; rank 0 writes eval-cub.json and every rank's maps


@pytest.fixture(scope="module")
def spawned(torchrun_run, tmp_path_factory):
    """The torchrun run's resolved config again, in 2 spawned processes: crash after epoch 1, then resume."""
    tmp = tmp_path_factory.mktemp("spawned")
    saved = json.loads((torchrun_run[1] / R.CONFIG).read_text())
    # config.json holds the resolved protocol; the command line left it to the dataset (None), part of the run id
    cfg = dataclasses.replace(RunConfig.from_dict(saved), out=str(tmp / "runs"), protocol=None)
    assert cfg.run_id() == saved["run_id"]
    with pytest.raises(mp.ProcessExitedException):
        mp.spawn(_worker, args=(_free_port(), cfg, tmp, None), nprocs=WORLD, join=True)
    run_dir = tmp / "runs" / cfg.dataset / cfg.run_id()
    assert not (run_dir / R.METRICS).exists()
    mp.spawn(_worker, args=(_free_port(), cfg, tmp, run_dir), nprocs=WORLD, join=True)
    ranks = [{**torch.load(tmp / f"crashed{r}.pt"), **torch.load(tmp / f"rank{r}.pt")} for r in range(WORLD)]
    return cfg, ranks


def _first_batch_seeds(cfg: RunConfig, rank: int, method, train_samples):
    """This rank's first class-paired batch, its raster seeds (B x K x D) and labels, in one process."""
    from wsolbench.data.loading import ImageDataset, train_transform
    from wsolbench.data.sampler import ClassPairedBatchSampler
    from wsolbench.engine.batches import SeededSamples
    from wsolbench.methods import i2c_losses as L

    labels = [s.label for s in train_samples]
    sampler = ClassPairedBatchSampler(labels, BATCH // IMAGES_PER_CLASS, IMAGES_PER_CLASS, seed=cfg.seed,
                                      rank=rank, world_size=WORLD)
    sampler.set_epoch(0)
    batch = next(iter(sampler))
    transform = train_transform(cfg.input_size, round(cfg.input_size * 256 / 224))  # as the engine resizes
    data = SeededSamples(ImageDataset(train_samples, transform), cfg.seed)
    images = torch.stack([data[i][0] for i in batch])
    y = torch.tensor([labels[i] for i in batch])
    with torch.no_grad():
        out = method(images, y)
        positions, valid = L.select_seeds(out.cams[torch.arange(len(y)), y], method.cfg.k, method.cfg.delta, "raster")
        seeds = L.gather_seeds(out.features, positions)
    assert valid.all()
    return seeds, y


def test_gc_bank_is_identical_on_every_rank_and_uses_every_ranks_seeds(spawned):
    from wsolbench.engine import distributed as D
    from wsolbench.engine.train import build, load_checkpoint

    cfg, ranks = spawned
    first0, first1 = ranks[0]["first_step"], ranks[1]["first_step"]
    assert torch.equal(first0[0], first1[0]) and torch.equal(first0[1], first1[1])

    # one process, the same initial weights (same seed), each rank's first batch
    setup = build(cfg, torch.device("cpu"), D.DistInfo(), log=lambda *a: None)
    setup.method.train()
    per_rank = [_first_batch_seeds(cfg, r, setup.method, setup.splits["train"]) for r in range(WORLD)]
    rank_classes = [set(y.tolist()) for _, y in per_rank]
    assert not rank_classes[0] & rank_classes[1]  # whole class pairs per rank: each rank alone sees half the classes
    seeds = torch.cat([s for s, _ in per_rank])  # the union of both ranks' seeds
    labels = torch.cat([y for _, y in per_rank])
    num_classes = setup.dataset.num_classes
    expected = torch.zeros(num_classes, seeds.shape[-1])
    for c in labels.unique():
        expected[c] = seeds[labels == c].reshape(-1, seeds.shape[-1]).mean(0)  # first visit: eta = exp(0) = 1
    expected_counts = torch.zeros(num_classes, dtype=torch.long)
    expected_counts[labels.unique()] = 1
    torch.testing.assert_close(first0[0], expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(first0[1], expected_counts)

    # after training: every rank holds the same model (bank, counters, BatchNorm statistics), the one checkpointed
    state0, state1 = ranks[0]["state"], ranks[1]["state"]
    assert state0.keys() == state1.keys()
    assert [k for k in state0 if not torch.equal(state0[k], state1[k])] == []
    steps = len((Path(ranks[0]["run_dir"]) / R.STEPS).read_text().splitlines())
    assert torch.equal(state0["center_updates"], torch.full((num_classes,), steps))  # every class in every batch
    saved = load_checkpoint(Path(ranks[0]["run_dir"]) / R.CHECKPOINT)["model"]
    assert all(torch.equal(saved[k], state0[k]) for k in state0)


def test_a_run_resumed_after_a_crash_ends_where_the_uninterrupted_run_ends(spawned, torchrun_run):
    from wsolbench.engine.train import load_checkpoint

    _, ranks = spawned
    resumed, straight = Path(ranks[0]["run_dir"]), torchrun_run[1]
    assert _numbers(resumed / R.METRICS) == _numbers(straight / R.METRICS)
    losses = lambda d: [json.loads(line)["loss"] for line in (d / R.STEPS).read_text().splitlines()]  # noqa: E731
    assert losses(resumed) == losses(straight)
    a, b = load_checkpoint(resumed / R.CHECKPOINT)["model"], load_checkpoint(straight / R.CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _run_args(synth, out) -> list[str]:
    return ["run", "--method", "i2c", "--backbone", "test_resnet", "--dataset", "synthetic", "--data-root", str(synth),
            "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--lr", "0.01", "--input-size", "32",
            "--output-stride", "8", *(a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")),
            "--out", str(out), "--device", "cpu", "--no-progress"]


def _torchrun(*args, timeout=180):
    """``torchrun --standalone --nproc_per_node=2 -m wsolbench ARGS`` as a subprocess (its group killed on timeout)."""
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={WORLD}", "-m", "wsolbench", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WSOLBENCH_DIST_TIMEOUT_MIN": "2"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"torchrun did not end within {timeout} s (a hang)")
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="module")
def torchrun_run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun") / "runs"
    code, stdout, stderr = _torchrun(*_run_args(synth, out))
    assert code == 0, stderr[-3000:]
    (run_dir,) = (out / "synthetic").iterdir()
    return out, run_dir


def test_torchrun_trains_and_only_rank_0_writes(torchrun_run):
    out, run_dir = torchrun_run
    assert [p.name for p in out.iterdir()] == ["synthetic"]
    config = json.loads((run_dir / R.CONFIG).read_text())
    extra = [f"eval-{name}.json" for name in config["extra_protocols"]]  # the synthetic set's defaults add wsoleval
    files = sorted(p.name for p in run_dir.iterdir())  # and no temp files
    records = [f"per-image-{name}.npz" for name in (config["resolved_protocol"], *config["extra_protocols"])]
    assert files == sorted([R.CONFIG, R.ENV, R.STEPS, R.EPOCHS, R.CHECKPOINT, R.METRICS, R.TIMES, "val.json",
                            *extra, *records])
    assert (config["world_size"], config["batch_size"], config["batch_per_process"]) == (WORLD, BATCH, BATCH // WORLD)
    # 24 train images = 4 classes x 3 pairs -> 12 pairs, 4 per global batch -> 3 steps an epoch, each logged once
    steps = [json.loads(line) for line in (run_dir / R.STEPS).read_text().splitlines()]
    assert [s["global_step"] for s in steps] == list(range(1, 3 * EPOCHS + 1))
    assert len((run_dir / R.EPOCHS).read_text().splitlines()) == EPOCHS
    metrics = json.loads((run_dir / R.METRICS).read_text())
    assert metrics["world_size"] == WORLD and metrics["n_images"] == metrics["n_test"]  # every test image once


def _numbers(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "commit"}


def _maps_by_image(path: Path) -> dict:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    order = np.argsort(arrays["image_ids"])
    return {k: v[order] for k, v in arrays.items()}


def test_torchrun_metrics_equal_single_process_eval_exactly(torchrun_run, tmp_path):
    from wsolbench.engine.reeval import reevaluate

    run_dir = Path(shutil.copytree(torchrun_run[1], tmp_path / "run"))  # eval writes into the run folder
    distributed = {"cub": _numbers(run_dir / R.METRICS), "wsoleval": _numbers(run_dir / "eval-wsoleval.json")}
    for protocol, numbers in distributed.items():
        with np.load(run_dir / f"per-image-{protocol}.npz") as z:  # the per-image rows gathered on rank 0
            rows = {k: z[k] for k in z.files}
        name = reevaluate(run_dir, protocol=protocol, device="cpu")  # one process, the same checkpoint
        single = _numbers(run_dir / name)
        assert {"pxap", "curves", "threshold", "n_images", "protocol"} <= set(single)
        assert single == {k: numbers[k] for k in single}, protocol  # metrics.json adds the run's facts
        with np.load(run_dir / f"per-image-{protocol}.npz") as z:  # the same rows, in split order
            assert rows.keys() == set(z.files) and all(np.array_equal(rows[k], z[k]) for k in rows), protocol
        assert len(rows["test_image_ids"]) == numbers["n_images"] and "" not in rows["test_image_ids"]


def test_sharded_reevaluation_with_maps_equals_one_process(spawned):
    from wsolbench.engine.reeval import reevaluate

    run_dir = Path(spawned[1][0]["run_dir"])  # the two processes re-evaluated it with --save-maps
    distributed = _numbers(run_dir / "eval-cub.json")
    distributed_maps = {split: _maps_by_image(run_dir / f"maps-{split}.npz") for split in ("val", "test")}
    name = reevaluate(run_dir, device="cpu", save_maps=True)  # overwrites them, from one process
    assert _numbers(run_dir / name) == distributed
    metrics = json.loads((run_dir / R.METRICS).read_text())
    for split, maps in distributed_maps.items():
        assert sorted(maps["image_ids"].tolist()) == sorted(set(maps["image_ids"].tolist()))  # no duplicates
        assert len(maps["image_ids"]) == metrics[f"n_{split}"]  # every image of the split
        one = _maps_by_image(run_dir / f"maps-{split}.npz")
        assert one.keys() == maps.keys() and all(np.array_equal(one[k], maps[k]) for k in one), split


def test_an_error_on_one_rank_ends_the_job(synth, torchrun_run, tmp_path):
    # the run left without its metrics and with a corrupt checkpoint: the grid resumes it, and only rank 0
    # reads the checkpoint; rank 0 must end the job rather than report the run failed and go on to seed 1
    out = tmp_path / "runs"
    shutil.copytree(torchrun_run[0], out)
    (run_dir,) = (out / "synthetic").iterdir()
    (run_dir / R.METRICS).unlink()
    (run_dir / R.CHECKPOINT).write_bytes(b"not a checkpoint")
    code, stdout, stderr = _torchrun(*_run_args(synth, out), "--seeds", "0", "1", timeout=120)
    assert code != 0
    assert "[rank 0] error:" in stderr and "checkpoint.pt: not a loadable checkpoint" in stderr
    assert [p.name for p in (out / "synthetic").iterdir()] == [run_dir.name]  # seed 1 never started
