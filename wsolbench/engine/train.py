"""Train a method on a dataset, evaluate it under the dataset's protocol, write the run folder.

``train_and_evaluate(cfg)`` is what ``wsolbench run`` calls once per run. It works in one
process or under torchrun (DistributedDataParallel, rank 0 writes), resumes from the last
checkpoint (``resume=RUN_DIR``) to the same numbers as an uninterrupted run, and turns a
Ctrl-C into a saved checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from wsolbench.engine import distributed as D
from wsolbench.engine import rundir as R
from wsolbench.engine.atomic import save_torch, write_json, write_text
from wsolbench.engine.batches import RandomBatchSampler, SeededSamples
from wsolbench.engine.evaluate import autocast, evaluate_split
from wsolbench.engine.runconfig import RunConfig, coerce_settings
from wsolbench.errors import WsolbenchError
from wsolbench.stats import write_run_records


class _Collapsed(Exception):
    """The loss became non-finite: training stops with the weights of the last finite step."""


class Interrupted(Exception):
    """Ctrl-C during training; the checkpoint is saved and the run can be resumed."""

    def __init__(self, run_dir: Path):
        super().__init__(f"interrupted; checkpoint saved, continue with: wsolbench run --resume {run_dir}")
        self.run_dir = run_dir


class GridInterrupted(Interrupted):
    """Ctrl-C or a stop while cells ran as jobs or side by side; their checkpoints are kept."""

    def __init__(self, n: int):
        Exception.__init__(self, f"interrupted; {n} cell(s) stopped, their checkpoints kept: run the same command "
                                 f"again to continue")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WsolbenchError(f"--device {name}: CUDA is not available on this machine")
    return device


@dataclass
class Setup:
    """Everything built from a RunConfig before the first step."""

    cfg: RunConfig
    info: D.DistInfo
    device: torch.device
    dataset: object  # the reader
    splits: dict  # split -> list[Sample]
    method: torch.nn.Module
    protocol: object
    input_size: int
    skipped: int
    extra_protocols: list


def build(cfg: RunConfig, device: torch.device, info: D.DistInfo, log=print) -> Setup:
    from wsolbench.backbones import build_backbone
    from wsolbench.data.validate import ensure_valid
    from wsolbench.registry import DATASETS, METHODS, PROTOCOLS  # they import the built-in plugins on first lookup

    method_entry = METHODS.get(cfg.method)
    dataset_kwargs = {**cfg.dataset_options, **({"root": Path(cfg.data_root)} if cfg.data_root else {})}
    try:
        dataset = DATASETS.build(cfg.dataset, **dataset_kwargs)
    except TypeError as exc:  # an option the reader does not take
        raise WsolbenchError(f"dataset {cfg.dataset}: {exc} (--data-option key=value)") from None
    splits = ensure_valid(dataset, ("train", "val", "test"), skip_bad=cfg.skip_bad)  # bad data: error before training
    skipped = splits.skipped_count
    if skipped:
        log(splits.message())
    from wsolbench.protocols.presets import search_kwargs

    search = search_kwargs(cfg.box_search)  # --box-search: how boxes are found, never the numbers
    protocol = PROTOCOLS.build(cfg.protocol or dataset.default_protocol, **search)
    extra_protocols = [PROTOCOLS.build(name, **search) for name in cfg.extra_protocols if name != protocol.name]
    input_size = cfg.input_size or getattr(dataset, "default_input_size", None) or protocol.input_size

    settings = coerce_settings(method_entry.obj.Config, cfg.method_settings)
    from wsolbench.methods.base import lr_multipliers

    settings = {**lr_multipliers(bool(cfg.pretrained)), **settings}  # the run's rule; --set wins
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if cfg.epochs == 0 and cfg.pretrained and method_entry.obj.needs_backbone:  # zero-shot: the checkpoint's head
        from wsolbench.zeroshot import build_pretrained_classifier

        method = build_pretrained_classifier(method_entry, cfg, dataset.num_classes, settings, input_size).to(device)
    else:
        backbone = build_backbone(cfg.backbone, pretrained=cfg.pretrained, output_stride=cfg.output_stride,
                                  input_size=input_size) if method_entry.obj.needs_backbone else None
        method = method_entry.build(backbone, dataset.num_classes, **settings).to(device)
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    return Setup(cfg, info, device, dataset, splits, method, protocol, input_size, skipped, extra_protocols)


def _batch_sampler(setup: Setup):
    cfg, info = setup.cfg, setup.info
    labels = [s.label for s in setup.splits["train"]]
    if cfg.batch_size % info.world_size:
        raise WsolbenchError(f"--batch-size {cfg.batch_size} is not divisible by {info.world_size} processes")
    if setup.method.batch_shape == "class-paired":
        from wsolbench.data.sampler import ClassPairedBatchSampler

        if cfg.batch_size % cfg.images_per_class:
            raise WsolbenchError(
                f"--batch-size {cfg.batch_size} must be a multiple of images_per_class={cfg.images_per_class} "
                f"for {cfg.method}'s class-paired batches"
            )
        n_classes = cfg.batch_size // cfg.images_per_class
        if n_classes > setup.dataset.num_classes:
            raise WsolbenchError(
                f"--batch-size {cfg.batch_size} asks for {n_classes} classes x {cfg.images_per_class} images, "
                f"but dataset {cfg.dataset} has {setup.dataset.num_classes} classes"
            )
        return ClassPairedBatchSampler(labels, n_classes, cfg.images_per_class, seed=cfg.seed,
                                       rank=info.rank, world_size=info.world_size)
    return RandomBatchSampler(len(labels), cfg.batch_size, seed=cfg.seed, rank=info.rank, world_size=info.world_size)


def _workers(cfg: RunConfig, device: torch.device) -> int:
    """Loader processes: as asked; else on a GPU all cores but one, on the CPU none (in-process loading of
    the benchmark's images is tens of times faster than CPU training, and a worker would steal its core)."""
    from wsolbench.data.loading import default_num_workers

    if cfg.num_workers is not None:
        return cfg.num_workers
    return default_num_workers() if device.type == "cuda" else 0


def _set_lr(optimizer, cfg: RunConfig, step: int, total: int) -> float:
    factor = 1.0 if cfg.lr_schedule == "constant" else 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return cfg.lr * factor


def _checkpoint(method, optimizer, epoch, batches_done, global_step, run_id, scaler=None, rng_ranks=None) -> dict:
    ckpt = {
        "model": method.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "epoch": epoch, "batches_done": batches_done, "global_step": global_step, "run_id": run_id,
        "rng_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        ckpt["rng_cuda"] = torch.cuda.get_rng_state_all()
    if rng_ranks is not None:  # every rank's generator (they differ: dropout, seed draws); list index = rank
        ckpt["rng_ranks"] = rng_ranks
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    return ckpt


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(ckpt: dict, info: D.DistInfo, device: torch.device) -> None:
    ranks = ckpt.get("rng_ranks")
    if ranks is not None and len(ranks) == info.world_size:
        torch.set_rng_state(ranks[info.rank]["cpu"])
        if "cuda" in ranks[info.rank] and device.type == "cuda":
            torch.cuda.set_rng_state(ranks[info.rank]["cuda"], device)
        return
    # a checkpoint from Ctrl-C (rank 0's generator only) or from another number of processes
    torch.set_rng_state(ckpt["rng_cpu"])
    if "rng_cuda" in ckpt and torch.cuda.is_available() and not info.enabled:
        torch.cuda.set_rng_state_all(ckpt["rng_cuda"])


def load_checkpoint(path: Path) -> dict:
    """A checkpoint is data, not code: tensors and plain containers only."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WsolbenchError(f"{path}: checkpoint missing") from None
    except Exception as exc:  # noqa: BLE001 - corrupt or unsafe file, one line
        raise WsolbenchError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _trim_jsonl(path: Path, keep) -> None:
    """Keep the log lines ``keep(record)`` accepts; drop a torn last line. Atomic rewrite."""
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if keep(record):
            lines.append(line)
    write_text(path, "".join(line + "\n" for line in lines))


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def train_and_evaluate(cfg: RunConfig, resume: Path | None = None, console=None, show_progress: bool = True) -> Path:
    """Run ``cfg`` (or continue the run in ``resume``); returns the run folder.

    Under torchrun an error on any rank ends that process (see ``distributed.end_job_on_error``).
    """
    device = resolve_device(cfg.device)
    info = D.init(device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    with D.end_job_on_error(info, keep=(Interrupted,)):
        return _train_and_evaluate(cfg, resume, console, show_progress, device, info)


@dataclass
class Run:
    """One run's state from setup to the end: what the training loop's steps share."""

    cfg: RunConfig
    info: D.DistInfo
    device: torch.device
    console: object
    log: object
    run_id: str
    run_dir: Path
    setup: Setup
    t_start: float
    optimizer: torch.optim.Optimizer | None = None
    scaler: object = None
    model: torch.nn.Module | None = None  # the method, DDP-wrapped under torchrun
    train_set: object = None
    eval_sets: dict = dataclasses.field(default_factory=dict)
    sampler: object = None
    epochs: int = 0
    total_steps: int = 0
    eval_kw: dict = dataclasses.field(default_factory=dict)
    # where training stands: the next batch is (epoch, batch) and global_step steps are done
    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    train_images: int = 0
    collapse: str | None = None  # why training collapsed (flagged in metrics.json and the leaderboard), or None
    board: object = None  # --tensorboard on rank 0: engine.tensorboard.RunBoard; else None (nothing imported)

    @property
    def method(self) -> torch.nn.Module:
        return self.setup.method


def _train_and_evaluate(cfg: RunConfig, resume: Path | None, console, show_progress: bool, device: torch.device,
                        info: D.DistInfo) -> Path:
    """The loop, top to bottom: set up, resume or start fresh, train epoch by epoch, evaluate, finish."""
    run = _set_up(cfg, resume, console, device, info)
    if resume:
        _resume(run)
    else:
        _start_fresh(run)
    _prepare_training(run)
    if cfg.tensorboard and info.is_main and run.sampler is not None:  # something trains: RUN_DIR/tensorboard/
        from wsolbench.engine.tensorboard import RunBoard

        run.board = RunBoard(run.run_dir, purge_step=run.global_step + 1)  # resumed: steps after the checkpoint hidden
    t_train = time.perf_counter()
    try:
        for epoch in range(run.epoch, run.epochs):
            epoch_record = _train_epoch(run, epoch, show_progress)
            _validate_and_checkpoint(run, epoch, epoch_record)
    except _Collapsed as exc:  # kept and evaluated as it stands, flagged: a collapse is a result, not an error
        run.collapse = str(exc)
        run.log(f"[yellow]training collapsed: {exc}[/]")
        if info.is_main:  # the evaluated weights, so that `wsolbench eval` re-scores the same model
            save_torch(run.run_dir / R.CHECKPOINT, _checkpoint(run.method, run.optimizer, run.epoch, run.batch,
                                                               run.global_step, run.run_id, run.scaler))
    except KeyboardInterrupt:
        if info.is_main and run.optimizer is not None:
            save_torch(run.run_dir / R.CHECKPOINT, _checkpoint(run.method, run.optimizer, run.epoch, run.batch,
                                                               run.global_step, run.run_id, run.scaler))
        raise Interrupted(run.run_dir) from None
    finally:
        if run.board is not None:
            run.board.close()
    train_s = time.perf_counter() - t_train
    if (run.optimizer is None or not run.epochs) and info.is_main:  # nothing trained (a baseline, --epochs 0): a checkpoint for eval
        save_torch(run.run_dir / R.CHECKPOINT, _checkpoint(run.method, None, 0, 0, 0, run.run_id))
    t_eval = time.perf_counter()
    protocols, accs, results = _final_evaluation(run)
    _finish_run(run, protocols, accs, results, train_s=train_s, eval_s=time.perf_counter() - t_eval)
    D.barrier()
    return run.run_dir


def _set_up(cfg: RunConfig, resume: Path | None, console, device: torch.device, info: D.DistInfo) -> Run:
    """Run id and folder, the method, dataset and protocol (``build``), config.json, optimizer and scaler."""
    from rich.console import Console

    console = console or Console()
    log = console.print if info.is_main else (lambda *a, **k: None)
    run_id = cfg.run_id()
    # a grid decides per process whether a run is complete or resumable; the ranks must agree, and
    # rank 0 (the one that writes the run folder) decides whether to resume
    D.check_same(run_id, "the run to train")
    resume = D.broadcast_object(resume)
    run_dir = Path(resume) if resume else Path(cfg.out) / cfg.dataset / run_id
    t_start = time.perf_counter()
    setup = build(cfg, device, info, log=log)
    D.check_same(_fingerprint(setup.splits), "the samples of each split")  # e.g. nodes with different copies
    method = setup.method
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {**cfg.to_dict(), "run_id": run_id, "world_size": info.world_size,
                    # what the defaults resolved to, under their own keys: the RunConfig fields stay as given,
                    # so RunConfig.from_dict(config.json) has the same run id (what --resume relies on)
                    "resolved_input_size": setup.input_size, "resolved_protocol": setup.protocol.name,
                    "method_config": dataclasses.asdict(method.cfg), "batch_shape": method.batch_shape,
                    "batch_per_process": cfg.batch_size // info.world_size, "skipped_bad_samples": setup.skipped}
    run = Run(cfg, info, device, console, log, run_id, run_dir, setup, t_start)
    trainable = [p for p in method.parameters() if p.requires_grad]
    run.epochs = cfg.epochs if trainable else 0
    if trainable:
        groups = method.param_groups(cfg.lr, cfg.weight_decay)
        for g in groups:
            g["base_lr"] = g["lr"]
        run.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                        weight_decay=cfg.weight_decay)
    if info.is_main:
        # the rates each parameter group actually starts at (the schedule scales them all alike)
        resolved["lr_groups"] = [{"name": g.get("name", str(i)), "lr": g["base_lr"], "weight_decay": g["weight_decay"],
                                  "parameters": sum(p.numel() for p in g["params"])}
                                 for i, g in enumerate(run.optimizer.param_groups if run.optimizer else [])]
        if not resume:
            write_json(run_dir / R.CONFIG, resolved)
        write_json(run_dir / R.ENV, R.environment(device))
    run.scaler = torch.amp.GradScaler("cuda") if cfg.amp and device.type == "cuda" else None
    return run


def _resume(run: Run) -> None:
    """Model, optimizer, scaler, position and random state from the run folder's checkpoint; logs trimmed to it."""
    info, run_dir = run.info, run.run_dir
    # rank 0 reads, every rank gets it: the run folder need not be visible to other nodes
    ckpt = D.broadcast_object(load_checkpoint(run_dir / R.CHECKPOINT) if info.is_main else None)
    if ckpt.get("run_id") != run.run_id:
        raise WsolbenchError(f"{run_dir / R.CHECKPOINT}: belongs to run {ckpt.get('run_id')}, not {run.run_id}")
    run.method.load_state_dict(ckpt["model"])
    if run.optimizer is not None:
        run.optimizer.load_state_dict(ckpt["optimizer"])
    if run.scaler is not None and "scaler" in ckpt:
        run.scaler.load_state_dict(ckpt["scaler"])
    run.epoch, run.batch, run.global_step = ckpt["epoch"], ckpt["batches_done"], ckpt["global_step"]
    _restore_rng(ckpt, info, run.device)
    if info.is_main:
        _trim_jsonl(run_dir / R.STEPS, lambda r: r.get("global_step", 0) <= run.global_step)
        _trim_jsonl(run_dir / R.EPOCHS, lambda r: r.get("epoch", 0) < run.epoch)
    run.log(f"resuming {run.run_id} at epoch {run.epoch}, batch {run.batch}")


def _start_fresh(run: Run) -> None:
    torch.manual_seed(run.cfg.seed * 7919 + 1 + run.info.rank)  # dropout and seed sampling differ per rank
    if run.info.is_main:
        for name in (R.STEPS, R.EPOCHS, R.METRICS):
            (run.run_dir / name).unlink(missing_ok=True)


def _prepare_training(run: Run) -> None:
    """The (DDP-wrapped) model, the train and eval image sets, the batch sampler, the evaluation options."""
    from wsolbench.data.loading import ImageDataset, test_transform, train_transform

    cfg, setup, info = run.cfg, run.setup, run.info
    trainable = run.optimizer is not None
    run.model = D.wrap(run.method, run.device) if info.enabled and trainable else run.method
    resize = cfg.resize or round(setup.input_size * 256 / 224)
    run.train_set = SeededSamples(ImageDataset(setup.splits["train"], train_transform(setup.input_size, resize)), cfg.seed)
    run.eval_sets = {s: ImageDataset(setup.splits[s], test_transform(setup.input_size)) for s in ("val", "test")}
    run.sampler = _batch_sampler(setup) if trainable and run.epochs else None  # --epochs 0: no train split needed
    steps_per_epoch = len(run.sampler) if run.sampler is not None else 0
    if run.sampler is not None and steps_per_epoch == 0:
        raise WsolbenchError(f"dataset {cfg.dataset} train split is too small for one batch of {cfg.batch_size}")
    run.total_steps = run.epochs * steps_per_epoch
    # per process the same evaluation batch as `wsolbench eval` (maps can depend on the batch size in the last bits)
    run.eval_kw = dict(batch_size=max(cfg.batch_size, 1), num_workers=_workers(cfg, run.device), amp=cfg.amp,
                       channels_last=cfg.channels_last, info=info, score_workers=cfg.score_workers)


def _train_epoch(run: Run, epoch: int, show_progress: bool) -> dict:
    """One epoch of steps from ``run.batch``; appends steps.jsonl; returns the epoch's record (over all ranks)."""
    cfg, info, device, method = run.cfg, run.info, run.device, run.method
    method.set_epoch(epoch)
    run.sampler.set_epoch(epoch)
    run.train_set.set_epoch(epoch)
    start = run.batch if epoch == run.epoch else 0
    run.epoch, run.batch = epoch, start
    batches = list(run.sampler)[start:]
    # its own generator: a loader drawing its worker seed from the global RNG would shift the
    # model's random stream, and a resumed run would diverge from an uninterrupted one
    loader = torch.utils.data.DataLoader(run.train_set, batch_sampler=batches, num_workers=run.eval_kw["num_workers"],
                                         pin_memory=device.type == "cuda",
                                         generator=torch.Generator().manual_seed(cfg.seed + epoch))
    sums, n_seen, correct = {}, 0, 0
    t_epoch = time.perf_counter()
    progress = _progress(run.console, info.is_main and show_progress, f"{cfg.method} epoch {epoch + 1}/{run.epochs}",
                         len(batches))
    with progress:
        method.train()
        for images, labels, _ in loader:
            record, out, labels = _step(run, images, labels)
            for k in ("loss", *out.losses):
                sums[k] = sums.get(k, 0.0) + record[k] * images.shape[0]
            n_seen += images.shape[0]
            correct += int((out.logits.argmax(1) == labels).sum()) if out.logits is not None else 0
            if info.is_main:
                _append_jsonl(run.run_dir / R.STEPS, record)
                if run.board is not None:
                    run.board.step(record, run.optimizer)
                progress.advance(record)
    D.average_batchnorm_stats(method)  # one model on every rank: evaluated, checkpointed
    sums, n_seen, correct = _sum_over_ranks(sums, n_seen, correct)
    return {"epoch": epoch, "seconds": time.perf_counter() - t_epoch,
            **{f"train_{k}": v / max(n_seen, 1) for k, v in sums.items()},
            "train_top1_cls": 100.0 * correct / max(n_seen, 1)}


def _step(run: Run, images: torch.Tensor, labels: torch.Tensor):
    """One optimizer step; returns its steps.jsonl record, the method's output and the labels (on the device)."""
    cfg, device, optimizer, scaler = run.cfg, run.device, run.optimizer, run.scaler
    t0 = time.perf_counter()
    images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    lr = _set_lr(optimizer, cfg, run.global_step, run.total_steps)
    with autocast(device, cfg.amp):
        out = run.model(images, labels)
    terms = {k: v.float() for k, v in out.losses.items()}
    loss = sum(terms.values())
    bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0])
    if run.info.enabled:  # every rank stops at the same step (one small collective per step, under torchrun only)
        D.all_reduce_sum_(bad)
    if bad.item():  # checked before backward: the weights are still those of the last finite step
        values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
        raise _Collapsed(f"loss not finite at epoch {run.epoch + 1} step {run.batch + 1} ({values}); "
                         f"training stopped there")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    run.batch += 1
    run.global_step += 1
    n = images.shape[0] * run.info.world_size
    run.train_images += n
    record = {"epoch": run.epoch, "step": run.batch, "global_step": run.global_step, "lr": lr,
              "loss": loss.item(), **{k: v.item() for k, v in terms.items()},
              "images_per_s": n / max(time.perf_counter() - t0, 1e-9)}
    if out.logs:  # a method's diagnostics (e.g. I2C's feature norms): nested, so no reader takes them for losses
        record["diag"] = {k: float(v) for k, v in out.logs.items()}
    return record, out, labels


def _validate_and_checkpoint(run: Run, epoch: int, epoch_record: dict) -> None:
    """Val numbers at the test-optimal threshold into epochs.jsonl, then the end-of-epoch checkpoint."""
    setup, info = run.setup, run.info
    # scored in this process: a pool of scoring workers per epoch cost its start-up every time (3.5 s an epoch
    # against 0.4 s of scoring on the synthetic set's 128 val images), and the training already has the cores
    val_acc = evaluate_split(run.method, run.eval_sets["val"], setup.splits["val"], setup.protocol, run.device,
                             want_masks=False, **{**run.eval_kw, "score_workers": 1})
    val = setup.protocol.summarize(val_acc, None, policy="test-optimal")
    epoch_record["val"] = {k: v for k, v in val.items() if k != "curves"}
    rng_ranks = D.all_gather_object(_rng_state(run.device))  # after the val loader drew its seed
    if info.is_main:
        _append_jsonl(run.run_dir / R.EPOCHS, epoch_record)
        if run.board is not None:
            run.board.epoch(epoch_record, run)
        save_torch(run.run_dir / R.CHECKPOINT, _checkpoint(run.method, run.optimizer, epoch + 1, 0, run.global_step,
                                                           run.run_id, run.scaler, rng_ranks))
        run.log(_epoch_line(epoch_record))
    run.epoch, run.batch = epoch + 1, 0


def _final_evaluation(run: Run) -> tuple[list, dict, list[dict]]:
    """Val and test under every protocol (the maps computed once); the test numbers at the policy's threshold."""
    setup = run.setup
    protocols = [setup.protocol, *setup.extra_protocols]
    from wsolbench.engine.map_check import PositionalCheck

    checks = {"test": PositionalCheck()}  # flags maps that are one fixed pattern whatever the image
    accs = {s: evaluate_split(run.method, run.eval_sets[s], setup.splits[s], protocols, run.device,
                              map_check=checks.get(s), **run.eval_kw)
            for s in ("val", "test")}
    results = [{**p.summarize(accs["test"][i], accs["val"][i], policy=run.cfg.threshold_policy), **checks["test"].summary(),
                "cls_views": "one view"}  # the classes from the full view (``wsolbench eval --tencrop``: ten crops)
               for i, p in enumerate(protocols)]
    if run.collapse is None and run.optimizer is not None and run.epochs and run.info.is_main:
        from wsolbench.engine.collapse import fell, near_chance, val_top1_by_epoch

        run.collapse = near_chance(setup.protocol.summarize(accs["val"][0], None, policy="test-optimal").get("top1_cls"),
                                   setup.dataset.num_classes) or fell(val_top1_by_epoch(run.run_dir))
    message = checks["test"].warning()
    if message:
        run.log(f"[yellow]{message}[/]")
    return protocols, accs, results


def _finish_run(run: Run, protocols: list, accs: dict, results: list[dict], *, train_s: float, eval_s: float) -> None:
    """The end of a run (rank 0): times.json, eval-PROTOCOL.json per extra protocol, then metrics.json.

    metrics.json is written last: it marks the run complete. Files a run writes at its end go here,
    before it.
    """
    if not run.info.is_main:
        return
    cfg, setup, run_dir = run.cfg, run.setup, run.run_dir
    train_images = run.train_images
    times = {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - run.t_start,
             "train_images_per_s": train_images / train_s if train_s > 0 and train_images else None}
    write_json(run_dir / R.TIMES, times)
    about = dict(run_id=run.run_id, method=cfg.method, backbone=cfg.backbone, dataset=cfg.dataset, seed=cfg.seed,
                 epochs=cfg.epochs, commit=R.git_commit(), n_train=len(setup.splits["train"]),
                 n_val=len(setup.splits["val"]), n_test=len(setup.splits["test"]), world_size=run.info.world_size,
                 skipped_bad_samples=setup.skipped, collapse=run.collapse)
    for protocol, metrics in zip(protocols[1:], results[1:]):
        write_json(run_dir / f"eval-{protocol.name}.json", {**metrics, **about})
    write_run_records(run_dir, protocols, accs, setup.splits)  # per-image rows: the intervals (wsolbench.stats)
    from wsolbench.engine.sweep import write_val_figure  # the val figure that sweeps select on

    write_val_figure(run_dir, setup.protocol, accs["val"][0], run.run_id)
    write_json(run_dir / R.METRICS, {**results[0], **about})  # last: marks the run complete


def _fingerprint(splits: dict) -> dict:
    return {split: (len(samples), hashlib.sha1("\n".join(s.image_id for s in samples).encode()).hexdigest()[:12])
            for split, samples in splits.items()}


def _sum_over_ranks(sums: dict, n_seen: int, correct: int) -> tuple[dict, int, int]:
    """The epoch's loss sums and counts over every rank's images (as given without a process group)."""
    keys = sorted(sums)
    totals = D.all_reduce_sum_(torch.tensor([n_seen, correct, *(sums[k] for k in keys)], dtype=torch.float64))
    return dict(zip(keys, totals[2:].tolist())), int(totals[0]), int(totals[1])


def _epoch_line(record: dict) -> str:
    val = record.get("val", {})
    shown = ", ".join(f"{k} {val[k]:.1f}" for k in ("top1_cls", "gt_known_loc", "maxboxacc_v2") if k in val)
    return f"epoch {record['epoch'] + 1}: loss {record.get('train_loss', float('nan')):.4f}, val {shown}"


class _Progress:
    """A rich progress bar with the loss terms and images/s, or nothing."""

    def __init__(self, console, enabled, title, total):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                                transient=True)
            self.task = self.bar.add_task(title, total=total, info="")

    def __enter__(self):
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)

    def advance(self, record: dict) -> None:
        if self.enabled:
            skip = {"epoch", "step", "global_step", "lr", "images_per_s"}
            info = " ".join(f"{k} {v:.3f}" for k, v in record.items() if k not in skip and not isinstance(v, dict))
            self.bar.update(self.task, advance=1, info=f"{info} | {record['images_per_s']:.0f} img/s")


_progress = _Progress
