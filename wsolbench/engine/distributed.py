"""torch.distributed glue: started by torchrun (env:// rendezvous), NCCL on GPUs, gloo on CPU.

One process per device. Rank 0 alone writes files; evaluation is sharded without padding
(rank r takes items r, r + W, r + 2W, ...), and accumulators are summed across ranks.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def init(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if not launched_by_torchrun():
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(minutes=float(os.environ.get("WSOLBENCH_DIST_TIMEOUT_MIN", "30")))
    dist.init_process_group(backend=backend, timeout=timeout)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shard(n: int, info: DistInfo) -> list[int]:
    """Indices of ``n`` items this rank evaluates: disjoint across ranks, together all of them, no padding."""
    return list(range(info.rank, n, info.world_size))


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all ranks (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        holder = [obj]
        dist.broadcast_object_list(holder, src=src)
        return holder[0]
    return obj


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
