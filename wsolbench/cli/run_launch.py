"""Where ``wsolbench run`` trains its cells: one after another here, side by side on this machine (``--jobs``),
or as jobs (``--launcher local|slurm``)."""
from __future__ import annotations

from wsolbench.errors import WsolbenchError


def execute(configs: list, console, *, launcher, max_parallel, slurm, cluster_config, jobs: int | None,
            show_progress: bool) -> list:
    """A GridResult per cell. ``jobs``: cells side by side here (0: one per core; None: 1); a launcher sets its
    own parallelism (``--max-parallel``), so only an explicit count above 1 conflicts with it."""
    from wsolbench.plugins import loaded_files
    from wsolbench.protocols.parallel import usable_cores

    as_jobs = launcher is not None or slurm is not None or cluster_config is not None or max_parallel is not None
    if as_jobs:
        from wsolbench.engine.launch import launch_grid, parse_slurm

        if jobs is not None and jobs > 1:
            raise WsolbenchError("--jobs and --launcher: choose one (--launcher local --max-parallel N runs N jobs)")
        return launch_grid(configs, launcher or "", console, max_parallel=max_parallel,
                           slurm=parse_slurm(slurm, cluster_config), plugins=loaded_files())
    jobs = usable_cores() if jobs == 0 else jobs or 1
    if jobs > 1 and len(configs) > 1:
        from wsolbench.engine.side_by_side import run_side_by_side

        return run_side_by_side(configs, console, jobs, plugins=loaded_files())
    from wsolbench.engine.grid import run_grid

    return run_grid(configs, console, show_progress=show_progress)
