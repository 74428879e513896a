"""torch.distributed glue: started by torchrun (env:// rendezvous), NCCL on GPUs, gloo on CPU.

One process per device. Rank 0 alone writes files; evaluation is sharded without padding
(rank r takes items r, r + W, r + 2W, ...), and accumulators are summed across ranks.
Without torchrun (WORLD_SIZE unset or 1) every helper here is a no-op.
"""
from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from wsolbench.errors import WsolbenchError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process).

    On CUDA the process's current device becomes ``cuda:LOCAL_RANK`` first, so NCCL and any
    ``torch.device("cuda")`` of this process use its own GPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    if not launched_by_torchrun():
        return DistInfo()
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise WsolbenchError(f"process {local_rank} of this node has no GPU: {torch.cuda.device_count()} visible; "
                                 f"start at most that many processes per node (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(minutes=float(os.environ.get("WSOLBENCH_DIST_TIMEOUT_MIN", "30")))
    dist.init_process_group(backend=backend, timeout=timeout)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def shard(n: int, info: DistInfo) -> list[int]:
    """Indices of ``n`` items this rank evaluates: disjoint across ranks, together all of them, no padding."""
    return list(range(info.rank, n, info.world_size))


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel that leaves buffers alone in forward.

    DDP's default re-broadcasts rank 0's buffers before every forward, which would discard the
    other ranks' BatchNorm statistics and method state; we keep them per rank instead (methods
    all-reduce their own state, ``average_batchnorm_stats`` merges BatchNorm at epoch ends).
    """
    kwargs: dict[str, Any] = {"device_ids": [device.index] if device.type == "cuda" else None}
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    # newer torch deprecates broadcast_buffers for forward_sync_buffers (which still syncs once at init: harmless,
    # every rank built the same model from the same seed)
    kwargs["forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"] = False
    return torch.nn.parallel.DistributedDataParallel(module, **kwargs)


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all ranks (no-op without a process group)."""
    if not _active():
        return tensor
    if dist.get_backend() == "nccl" and not tensor.is_cuda:  # NCCL reduces CUDA tensors only
        reduced = tensor.cuda()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return tensor.copy_(reduced.cpu())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@torch.no_grad()
def average_batchnorm_stats(module: torch.nn.Module) -> None:
    """Replace every BatchNorm running mean and variance by its mean over the ranks.

    Each rank's statistics come from its own batches; averaging them makes every rank's model
    (and rank 0's checkpoint) the same network, so sharded evaluation scores one model.
    """
    if not _active():
        return
    world = dist.get_world_size()
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for stat in (m.running_mean, m.running_var):
                dist.all_reduce(stat, op=dist.ReduceOp.SUM)
                stat.div_(world)


def all_gather_object(obj: Any) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` without a process group)."""
    if not _active():
        return [obj]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_object(obj: Any) -> list | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank 0, None elsewhere (``[obj]`` without a process group)."""
    if not _active():
        return [obj]
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (pickled; fine for configs and checkpoints)."""
    if _active():
        holder = [obj]
        dist.broadcast_object_list(holder, src=src)
        return holder[0]
    return obj


def check_same(value: Any, what: str) -> None:
    """Raise on every rank when the ranks disagree on ``value`` (they would run different collectives)."""
    values = all_gather_object(value)
    if any(v != values[0] for v in values):
        shown = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise WsolbenchError(f"the processes disagree on {what} ({shown}); every node must see the same "
                             f"--out folder and data")


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def end_job_on_error(info: DistInfo, keep: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Under torchrun, an error on one rank ends this process (exit 2 for a user error, else 1).

    Without it a caller that reports the error and goes on (a grid of runs) would leave the other
    ranks waiting in a collective, or pair their collectives with the next run's. Once this process
    is gone, the peers' collectives fail and torchrun stops the job. ``keep``: exceptions that
    propagate unchanged (Ctrl-C); a single process re-raises everything.
    """
    try:
        yield
    except (KeyboardInterrupt, SystemExit, *keep):
        raise
    except BaseException as exc:
        if not info.enabled:
            raise
        if isinstance(exc, WsolbenchError):
            message, code = f"error: {exc}", 2
        elif isinstance(exc, getattr(dist, "DistError", ())):
            first_line = (str(exc).splitlines() or [""])[0]
            message = f"a collective failed, most likely because another rank ended first (see its error): {first_line}"
            code = 1
        else:
            message, code = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(), 1
        print(f"[rank {info.rank}] {message}", file=sys.stderr, flush=True)
        raise SystemExit(code) from None
