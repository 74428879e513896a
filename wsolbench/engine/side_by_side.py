"""Grid cells side by side on this machine: ``jobs`` worker processes, each with its share of the cores.

Each worker starts once (imports, compiled box search and the cached data set are paid once, not per cell)
and trains one cell after another at ``cores // jobs`` threads; its scoring runs in its own process at that
share too. Torch's default (every core in every process) oversubscribes the cores: two cells side by side
then ran 2.2 times slower than one after the other (docs/performance.md).

Cells are claimed as the in-process loop claims them (``claims.CellClaims``), so a cluster launch and this
loop never train the same cell; Ctrl-C lets every worker save its checkpoint, and the same command resumes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from rich.markup import escape

from wsolbench.engine import rundir as R
from wsolbench.engine.claims import CellClaims
from wsolbench.engine.grid import GridResult, cell_head, crash_message, skip_or_claim
from wsolbench.errors import WsolbenchError


def threads_per_cell(jobs: int) -> int:
    from wsolbench.protocols.parallel import usable_cores

    return max(1, usable_cores() // jobs)


def _start_worker(threads: int, plugins: list[str]) -> None:
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    from wsolbench.plugins import load_builtin, load_plugins

    load_builtin()
    load_plugins([Path(p) for p in plugins])


def _train_cell(cfg_dict: dict, resume: str | None, threads: int) -> tuple[str, str]:
    """(status, error) of one cell, trained in a worker: done | failed | interrupted."""
    from rich.console import Console

    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.train import Interrupted, train_and_evaluate

    cfg = RunConfig.from_dict(cfg_dict)
    if cfg.score_workers is None:  # the cell's share of the cores, not all of them
        cfg = dataclasses.replace(cfg, score_workers=threads)
    try:
        train_and_evaluate(cfg, resume=Path(resume) if resume else None, console=Console(quiet=True),
                           show_progress=False)
        return "done", ""
    except Interrupted as exc:
        return "interrupted", str(exc)
    except WsolbenchError as exc:
        return "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one cell's crash must not end the grid
        return "failed", crash_message(exc, Path(cfg.out) / cfg.dataset / cfg.run_id())


def _outcome_line(run_dir: Path) -> str:
    """``GT-known Loc 52.1, Top-1 Cls 97.3`` (and the collapse flag) from a finished run's metrics.json."""
    metrics = R.read_json(run_dir / R.METRICS)
    shown = ", ".join(f"{label} {metrics[k]:.1f}" for k, label in (("gt_known_loc", "GT-known Loc"), ("top1_cls", "Top-1 Cls"))
                      if metrics.get(k) is not None)
    return shown + (f"; [yellow]collapsed: {escape(metrics['collapse'])}[/]" if metrics.get("collapse") else "")


def run_side_by_side(configs: list, console, jobs: int, plugins=()) -> list[GridResult]:
    """Train ``configs`` on ``jobs`` worker processes; a GridResult per cell, in the order given."""
    threads = threads_per_cell(jobs)
    console.print(f"{len(configs)} cells, {jobs} side by side at {threads} thread(s) each", highlight=False)
    results: dict[int, GridResult] = {}
    running: dict = {}
    claims = CellClaims(configs)
    pool = ProcessPoolExecutor(min(jobs, len(configs)) or 1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads, [str(p) for p in plugins]))
    try:
        for i, cfg in enumerate(configs):
            run_dir = Path(cfg.out) / cfg.dataset / cfg.run_id()
            skipped = skip_or_claim(cell_head(i + 1, len(configs), cfg), cfg, console, claims)
            if skipped is not None:
                results[i] = skipped
                continue
            resume = R.resume_point(run_dir)
            running[pool.submit(_train_cell, cfg.to_dict(), str(resume) if resume else None, threads)] = \
                (i, cfg, run_dir, time.perf_counter())
        for future in as_completed(running):
            i, cfg, run_dir, t0 = running[future]
            status, error = future.result()
            seconds = time.perf_counter() - t0  # from submission: includes the wait for a free worker
            claims.release(cfg, status, error)
            head = cell_head(i + 1, len(configs), cfg)
            if status == "done":
                console.print(f"{escape(head)}: done ({_outcome_line(run_dir)})", highlight=False)
            else:
                console.print(f"[red]{status}:[/] {escape(head)}: {escape(error)}", highlight=False)
            results[i] = GridResult(cfg, run_dir, "done" if status == "done" else "failed", error, seconds)
    except KeyboardInterrupt:
        from wsolbench.engine.train import GridInterrupted

        # a Ctrl-C at the terminal reaches the workers too; a SIGINT sent to this process alone is passed on,
        # so that every worker saves its checkpoint
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
        unfinished = [cfg for future, (i, cfg, _, _) in running.items() if i not in results]
        for cfg in unfinished:
            claims.release(cfg, "interrupted", "Ctrl-C; checkpoint saved")
        raise GridInterrupted(len(unfinished)) from None
    finally:
        pool.shutdown(wait=True)
        claims.close()
    return [results[i] for i in sorted(results)]
