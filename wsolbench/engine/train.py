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


class Interrupted(Exception):
    """Ctrl-C during training; the checkpoint is saved and the run can be resumed."""

    def __init__(self, run_dir: Path):
        super().__init__(f"interrupted; checkpoint saved, continue with: wsolbench run --resume {run_dir}")
        self.run_dir = run_dir


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
    protocol = PROTOCOLS.build(cfg.protocol or dataset.default_protocol)
    extra_protocols = [PROTOCOLS.build(name) for name in cfg.extra_protocols if name != protocol.name]
    input_size = cfg.input_size or getattr(dataset, "default_input_size", None) or protocol.input_size

    settings = coerce_settings(method_entry.obj.Config, cfg.method_settings)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if cfg.epochs == 0 and cfg.pretrained and method_entry.obj.needs_backbone:  # zero-shot: the checkpoint's head
        from wsolbench.zeroshot import build_pretrained_classifier

        method = build_pretrained_classifier(method_entry, cfg, dataset.num_classes, settings).to(device)
    else:
        backbone = build_backbone(cfg.backbone, pretrained=cfg.pretrained, output_stride=cfg.output_stride) if method_entry.obj.needs_backbone else None
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


def _train_and_evaluate(cfg: RunConfig, resume: Path | None, console, show_progress: bool, device: torch.device,
                        info: D.DistInfo) -> Path:
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
        if not resume:
            write_json(run_dir / R.CONFIG, resolved)
        write_json(run_dir / R.ENV, R.environment(device))

    trainable = [p for p in method.parameters() if p.requires_grad]
    epochs = cfg.epochs if trainable else 0
    optimizer = None
    if trainable:
        groups = method.param_groups(cfg.lr, cfg.weight_decay)
        for g in groups:
            g["base_lr"] = g["lr"]
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and device.type == "cuda" else None

    start_epoch, start_batch, global_step = 0, 0, 0
    if resume:
        # rank 0 reads, every rank gets it: the run folder need not be visible to other nodes
        ckpt = D.broadcast_object(load_checkpoint(run_dir / R.CHECKPOINT) if info.is_main else None)
        if ckpt.get("run_id") != run_id:
            raise WsolbenchError(f"{run_dir / R.CHECKPOINT}: belongs to run {ckpt.get('run_id')}, not {run_id}")
        method.load_state_dict(ckpt["model"])
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, start_batch, global_step = ckpt["epoch"], ckpt["batches_done"], ckpt["global_step"]
        _restore_rng(ckpt, info, device)
        if info.is_main:
            _trim_jsonl(run_dir / R.STEPS, lambda r: r.get("global_step", 0) <= global_step)
            _trim_jsonl(run_dir / R.EPOCHS, lambda r: r.get("epoch", 0) < start_epoch)
        log(f"resuming {run_id} at epoch {start_epoch}, batch {start_batch}")
    else:
        torch.manual_seed(cfg.seed * 7919 + 1 + info.rank)  # dropout and seed sampling differ per rank
        if info.is_main:
            for name in (R.STEPS, R.EPOCHS, R.METRICS):
                (run_dir / name).unlink(missing_ok=True)

    model = D.wrap(method, device) if info.enabled and trainable else method

    from wsolbench.data.loading import ImageDataset, test_transform, train_transform

    train_set = SeededSamples(ImageDataset(setup.splits["train"], train_transform(setup.input_size, cfg.resize or round(setup.input_size * 256 / 224))), cfg.seed)
    eval_sets = {s: ImageDataset(setup.splits[s], test_transform(setup.input_size)) for s in ("val", "test")}
    sampler = _batch_sampler(setup) if trainable and epochs else None  # --epochs 0: no train split needed
    steps_per_epoch = len(sampler) if sampler is not None else 0
    if sampler is not None and steps_per_epoch == 0:
        raise WsolbenchError(f"dataset {cfg.dataset} train split is too small for one batch of {cfg.batch_size}")
    total_steps = epochs * steps_per_epoch
    # per process the same evaluation batch as `wsolbench eval` (maps can depend on the batch size in the last bits)
    workers = _workers(cfg, device)
    eval_kw = dict(batch_size=max(cfg.batch_size, 1), num_workers=workers, amp=cfg.amp,
                   channels_last=cfg.channels_last, info=info)
    t_train = time.perf_counter()
    train_images = 0

    epoch, batch_i = start_epoch, start_batch
    try:
        for epoch in range(start_epoch, epochs):
            method.set_epoch(epoch)
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            batches = list(sampler)[start_batch if epoch == start_epoch else 0:]
            # its own generator: a loader drawing its worker seed from the global RNG would shift the
            # model's random stream, and a resumed run would diverge from an uninterrupted one
            loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches, num_workers=workers,
                                                 pin_memory=device.type == "cuda",
                                                 generator=torch.Generator().manual_seed(cfg.seed + epoch))
            sums, n_seen, correct = {}, 0, 0
            t_epoch = time.perf_counter()
            progress = _progress(console, info.is_main and show_progress, f"{cfg.method} epoch {epoch + 1}/{epochs}",
                                 len(batches))
            with progress:
                method.train()
                batch_i = start_batch if epoch == start_epoch else 0
                for images, labels, _ in loader:
                    t0 = time.perf_counter()
                    images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                    if cfg.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    lr = _set_lr(optimizer, cfg, global_step, total_steps)
                    with autocast(device, cfg.amp):
                        out = model(images, labels)
                    terms = {k: v.float() for k, v in out.losses.items()}
                    loss = sum(terms.values())
                    if not torch.isfinite(loss):
                        values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                        raise WsolbenchError(f"loss is not finite at epoch {epoch} step {batch_i} ({values}); "
                                             f"lower --lr or check the data")
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                    batch_i += 1
                    global_step += 1
                    n = images.shape[0] * info.world_size
                    train_images += n
                    record = {"epoch": epoch, "step": batch_i, "global_step": global_step, "lr": lr,
                              "loss": loss.item(), **{k: v.item() for k, v in terms.items()},
                              "images_per_s": n / max(time.perf_counter() - t0, 1e-9)}
                    for k in ("loss", *terms):
                        sums[k] = sums.get(k, 0.0) + record[k] * images.shape[0]
                    n_seen += images.shape[0]
                    correct += int((out.logits.argmax(1) == labels).sum()) if out.logits is not None else 0
                    if info.is_main:
                        _append_jsonl(run_dir / R.STEPS, record)
                        progress.advance(record)
            D.average_batchnorm_stats(method)  # one model on every rank: evaluated, checkpointed
            sums, n_seen, correct = _sum_over_ranks(sums, n_seen, correct)
            epoch_record = {"epoch": epoch, "seconds": time.perf_counter() - t_epoch,
                            **{f"train_{k}": v / max(n_seen, 1) for k, v in sums.items()},
                            "train_top1_cls": 100.0 * correct / max(n_seen, 1)}
            val_acc = evaluate_split(method, eval_sets["val"], setup.splits["val"], setup.protocol, device,
                                     want_masks=False, **eval_kw)
            val = setup.protocol.summarize(val_acc, None, policy="test-optimal")
            epoch_record["val"] = {k: v for k, v in val.items() if k != "curves"}
            rng_ranks = D.all_gather_object(_rng_state(device))  # after the val loader drew its seed
            if info.is_main:
                _append_jsonl(run_dir / R.EPOCHS, epoch_record)
                save_torch(run_dir / R.CHECKPOINT,
                           _checkpoint(method, optimizer, epoch + 1, 0, global_step, run_id, scaler, rng_ranks))
                log(_epoch_line(epoch_record))
            start_batch = 0
    except KeyboardInterrupt:
        if info.is_main and optimizer is not None:
            save_torch(run_dir / R.CHECKPOINT, _checkpoint(method, optimizer, epoch, batch_i, global_step, run_id, scaler))
        raise Interrupted(run_dir) from None
    train_s = time.perf_counter() - t_train

    if (not trainable or not epochs) and info.is_main:
        save_torch(run_dir / R.CHECKPOINT, _checkpoint(method, None, 0, 0, 0, run_id))
    t_eval = time.perf_counter()
    protocols = [setup.protocol, *setup.extra_protocols]
    accs = {s: evaluate_split(method, eval_sets[s], setup.splits[s], protocols, device, **eval_kw)
            for s in ("val", "test")}
    results = [p.summarize(accs["test"][i], accs["val"][i], policy=cfg.threshold_policy)
               for i, p in enumerate(protocols)]
    eval_s = time.perf_counter() - t_eval
    if info.is_main:
        times = {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t_start,
                 "train_images_per_s": train_images / train_s if train_s > 0 and train_images else None}
        write_json(run_dir / R.TIMES, times)
        about = dict(run_id=run_id, method=cfg.method, backbone=cfg.backbone, dataset=cfg.dataset, seed=cfg.seed,
                     epochs=cfg.epochs, commit=R.git_commit(), n_train=len(setup.splits["train"]),
                     n_val=len(setup.splits["val"]), n_test=len(setup.splits["test"]), world_size=info.world_size,
                     skipped_bad_samples=setup.skipped)
        for protocol, metrics in zip(protocols[1:], results[1:]):
            write_json(run_dir / f"eval-{protocol.name}.json", {**metrics, **about})
        write_json(run_dir / R.METRICS, {**results[0], **about})  # last: marks the run complete
    D.barrier()
    return run_dir


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
            info = " ".join(f"{k} {v:.3f}" for k, v in record.items() if k not in skip)
            self.bar.update(self.task, advance=1, info=f"{info} | {record['images_per_s']:.0f} img/s")


_progress = _Progress
