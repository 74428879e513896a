"""Run a grid of method x backbone x dataset x seed: skip complete runs, report failures, go on."""
from __future__ import annotations

import dataclasses
import itertools
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from wsolbench.engine import rundir as R
from wsolbench.engine.runconfig import RunConfig
from wsolbench.errors import WsolbenchError


@dataclass
class GridResult:
    cfg: RunConfig
    run_dir: Path
    status: str  # done | skipped | failed | elsewhere (another launch holds the cell)
    error: str = ""
    seconds: float = 0.0


def expand(base: RunConfig, methods, backbones, datasets, seeds, default_settings=None) -> list[RunConfig]:
    """The product of the lists; each method gets the ``--set`` keys its config has (a key no method has is an error)."""
    from wsolbench.registry import METHODS

    methods = methods or [base.method]
    fields = {m: {f.name for f in dataclasses.fields(METHODS.get(m).obj.Config)} for m in methods}
    unused = set(base.method_settings) - set().union(*fields.values()) - set(default_settings or ())
    if unused:
        raise WsolbenchError(f"--set {', '.join(sorted(unused))}: no setting of {', '.join(methods)} has that name")
    combos = itertools.product(datasets or [base.dataset], backbones or [base.backbone], methods,
                               seeds if seeds else [base.seed])
    return [dataclasses.replace(base, dataset=d, backbone=b, method=m, seed=s,
                                method_settings={k: v for k, v in base.method_settings.items() if k in fields[m]})
            for d, b, m, s in combos]


def cell_head(i: int, n: int, cfg: RunConfig) -> str:
    return f"[{i}/{n}] {cfg.method} / {cfg.backbone} / {cfg.dataset} / seed {cfg.seed}"


def run_grid(configs: list[RunConfig], console, show_progress=True, train=None) -> list[GridResult]:
    """The cells one after another in this process (side by side: ``engine/side_by_side.py``)."""
    from wsolbench.engine.train import train_and_evaluate

    train = train or train_and_evaluate
    from wsolbench.engine.claims import CellClaims

    results = []
    claims = CellClaims(configs)  # a cell a cluster launch (or another loop) is training is left to it
    try:
        for i, cfg in enumerate(configs, 1):
            results.append(_run_cell(i, cfg, configs, console, show_progress, train, claims))
    finally:
        claims.close()
    return results


def skip_or_claim(head: str, cfg: RunConfig, console, claims) -> GridResult | None:
    """The result of a cell that is complete or that another launch holds; None when this loop now holds it."""
    run_dir = Path(cfg.out) / cfg.dataset / cfg.run_id()
    if R.is_complete(run_dir, cfg.run_id()):
        console.print(f"{head}: complete, skipped ({run_dir})", highlight=False)
        return GridResult(cfg, run_dir, "skipped")
    holder = claims.take(cfg)
    if holder:
        console.print(f"{head}: running in another launch ({holder}), left to it", highlight=False)
        return GridResult(cfg, run_dir, "elsewhere", holder)
    return None


def crash_message(exc: Exception, run_dir: Path) -> str:
    """One line for a crash (not a WsolbenchError); its traceback goes to RUN_DIR/error.txt."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text(traceback.format_exc())
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (traceback in {run_dir / 'error.txt'})"


def _run_cell(i, cfg, configs, console, show_progress, train, claims) -> GridResult:
    from wsolbench.engine.train import Interrupted

    run_dir = Path(cfg.out) / cfg.dataset / cfg.run_id()
    head = cell_head(i, len(configs), cfg)
    skipped = skip_or_claim(head, cfg, console, claims)
    if skipped is not None:
        return skipped
    console.rule(head)
    t0 = time.perf_counter()
    resume = R.resume_point(run_dir)
    try:
        train(cfg, resume=resume, console=console, show_progress=show_progress)
        claims.release(cfg, "done")
        return GridResult(cfg, run_dir, "done", seconds=time.perf_counter() - t0)
    except Interrupted:
        claims.release(cfg, "interrupted", "Ctrl-C; checkpoint saved")
        raise
    except WsolbenchError as exc:
        console.print(f"[red]failed:[/] {escape(head)}: {escape(str(exc))}", highlight=False)
        claims.release(cfg, "failed", str(exc))
        return GridResult(cfg, run_dir, "failed", str(exc), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one run's crash must not end the grid
        msg = crash_message(exc, run_dir)
        console.print(f"[red]failed:[/] {head}: {msg}", highlight=False)
        claims.release(cfg, "failed", msg)
        return GridResult(cfg, run_dir, "failed", msg, time.perf_counter() - t0)
