"""``wsolbench run --config RUN_DIR/config.json``: train a finished run again, as it was, into a new folder.

On the same machine the re-run's numbers equal the original's; on another they show the drift between machines
(``wsolbench diff ORIGINAL RERUN`` gives the paired difference). Only options that do not change a run's numbers
may be given beside it (where it goes, the device, the workers, the progress bars).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from wsolbench.errors import WsolbenchError

ALLOWED = {"config", "out", "device", "no_progress", "workers", "score_workers", "box_search"}
DEFAULT_OUT = Path("reruns")


def rerun(ctx, config_json: Path, console) -> Path:
    """The new run folder of the re-run of ``config_json``'s run."""
    from wsolbench.cli.eval_cmd import print_metrics
    from wsolbench.engine import rundir as R
    from wsolbench.engine.grid import run_grid
    from wsolbench.engine.runconfig import RunConfig

    from wsolbench.cli.grid_file import given_here

    given = given_here(ctx)
    extra = sorted(given - ALLOWED)
    if extra:
        names = ", ".join("--" + n.replace("_", "-") for n in extra)
        raise WsolbenchError(f"--config {config_json} trains that run as it was: {names} would change it "
                             f"(allowed beside it: --out, --device, --workers, --score-workers, --box-search, --no-progress)")
    try:
        data = R.read_json(config_json)
    except FileNotFoundError:
        raise WsolbenchError(f"--config {config_json}: no such file") from None
    if not isinstance(data, dict) or "run_id" not in data or "method" not in data:
        raise WsolbenchError(f"--config {config_json}: not a run's config.json (no run_id / method)")
    cfg = RunConfig.from_dict(data)
    if cfg.run_id() != data["run_id"]:
        raise WsolbenchError(f"--config {config_json}: its settings give run {cfg.run_id()}, the file says "
                             f"{data['run_id']}: written by another version of wsolbench, so this would not be "
                             f"the same run")
    out = Path(ctx.params["out"]) if "out" in given else DEFAULT_OUT
    original = config_json.resolve().parent
    target = out / cfg.dataset / cfg.run_id()
    if target.resolve() == original:
        raise WsolbenchError(f"--out {out}: that is the run's own folder; a re-run goes to another (default {DEFAULT_OUT})")
    changes = {k: ctx.params[k] for k in ("device", "score_workers", "box_search") if k in given}
    if "workers" in given:
        changes["num_workers"] = ctx.params["workers"]
    cfg = dataclasses.replace(cfg, out=str(out), **changes)
    (result,) = run_grid([cfg], console, show_progress=not ctx.params["no_progress"])
    if result.status == "failed":
        raise WsolbenchError(f"re-run of {original} failed: {result.error}")
    print_metrics(console, result.run_dir)
    console.print(f"re-run of {original} in {result.run_dir}; compare: wsolbench diff {original} {result.run_dir}",
                  highlight=False, soft_wrap=True)
    return result.run_dir
