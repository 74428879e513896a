"""Box scoring spread over the cores, with the same result for any number of workers.

    with Scorer(protocols, workers=2) as scorer:     # protocols: a list; workers <= 1 scores here, in-process
        for batch in batches:                        # in split order
            scorer.submit(batch)                     # a dict of LocalizationAccumulator.update's arguments,
                                                     # or a picklable callable that returns one (read in the worker)
    accs = scorer.results()                          # one accumulator per protocol

Each batch is one shard: a worker process feeds it to a fresh accumulator per protocol and sends back the
states. The shards are merged in the order they were submitted (sums added, per-image rows concatenated),
so the numbers and the per-image rows are the same bytes whatever the worker count: sums are of integers
(the PxAP histograms hold whole counts in float64, exact far beyond any data set). At most ``2 x workers``
shards are in flight, so a fast reader never queues the whole input in memory.

Workers are forked where the platform allows it (Linux; they inherit the loaded plugins and the compiled
box search), else spawned. Each runs one thread (torch and OpenCV), as the cores are the workers.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import torch

from wsolbench.protocols.accumulator import LocalizationAccumulator


def usable_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that is missing)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _one_thread() -> None:
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def score_shard(protocols, batch) -> list[dict]:
    """The states of one accumulator per protocol fed ``batch`` (a dict, or a callable that returns one)."""
    batch = batch() if callable(batch) else batch
    states = []
    for protocol in protocols:
        acc = protocol.accumulator()
        acc.update(**batch)
        # numpy, not tensors: torch would send tensors between processes through shared-memory files
        states.append({k: v.numpy() for k, v in acc.states.items()})
    return states


class Scorer:
    """Score batches of maps on ``workers`` processes (see the module docstring)."""

    def __init__(self, protocols, workers: int | None = None):
        self.protocols = list(protocols)
        self.workers = usable_cores() if workers is None else int(workers)
        self.pending: deque = deque()
        self.accs = [p.accumulator() for p in self.protocols]  # every shard's states, added in order
        self.pool = None
        if self.workers > 1:
            sys.stdout.flush()  # a forked worker would write out a copy of what is still buffered
            sys.stderr.flush()
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            import cv2

            # OpenCV's thread pool does not survive a fork: a child that the parent forked while the pool
            # was running hangs in cv2.setNumThreads (and so in _one_thread). Fork with it at one thread.
            cv2_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method),
                                                initializer=_one_thread)
                self.pool.submit(int)  # forks every worker now, before a data loader starts its own processes
            finally:
                cv2.setNumThreads(cv2_threads)

    def submit(self, batch) -> None:
        if self.pool is None:
            self._take(score_shard(self.protocols, batch))
            return
        self.pending.append(self.pool.submit(score_shard, self.protocols, batch))
        while len(self.pending) > 2 * self.workers:  # bounded memory: wait for the oldest
            self._take(self.pending.popleft().result())

    def _take(self, shard: list[dict]) -> None:
        """The next shard in order: its sums added, its per-image rows queued (joined once, when read)."""
        for acc, states in zip(self.accs, shard):
            acc.add_states(states)

    def results(self) -> list[LocalizationAccumulator]:
        """One accumulator per protocol holding every shard, in submission order; closes the workers."""
        try:
            while self.pending:
                self._take(self.pending.popleft().result())  # a worker's WsolbenchError is raised here
        finally:
            self.close()
        return self.accs

    def close(self) -> None:
        if self.pool is not None:
            for future in self.pending:
                future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
