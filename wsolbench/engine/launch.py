"""Every cell of a grid as its own job through submitit: ``local`` (processes on this machine) or ``slurm``.

The launch writes the planned cells to ``RUNS/.grid/cells/`` (what ``wsolbench status`` and the
leaderboard count as missing), claims each cell before submitting it (``claims.py``: two launches of one
grid split the cells), and waits for its jobs. A job trains its cell in its own process, resuming from the
cell's checkpoint when one exists; a cell with ``gpus > 1`` runs under torchrun inside its job (the
distributed path of ``train.py``). A failed, pre-empted or timed-out job is reported with its log and its
claim released, so the next launch resubmits it. Job logs: ``RUNS/.grid/jobs/``.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from wsolbench.engine import claims as C
from wsolbench.engine import rundir as R
from wsolbench.engine.atomic import write_json
from wsolbench.engine.side_by_side import threads_per_cell
from wsolbench.engine.train import GridInterrupted, Interrupted
from wsolbench.errors import WsolbenchError

LAUNCHERS = ("local", "slurm")
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # folders compute nodes never share


@dataclass
class SlurmOptions:
    partition: str | None = None
    gpus: int = 0  # per cell; >1 runs the cell under torchrun with one process per GPU
    cpus: int | None = None
    mem: str | None = None  # e.g. 32G
    time: int = 24 * 60  # minutes
    array_parallelism: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None

    KEYS = ("partition", "gpus", "cpus", "mem", "time", "array-parallelism", "account", "qos", "constraint")


def _minutes(text: str) -> int:
    """Slurm's time formats: MM, HH:MM:SS, D-HH[:MM[:SS]] (as minutes, rounded up)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ValueError(text)
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is None and b is None:
        return a  # plain minutes
    if days is not None:  # D-HH[:MM[:SS]]
        return days * 1440 + a * 60 + (b or 0) + (1 if c else 0)
    if c is None:  # MM:SS
        return a + (1 if b else 0)
    return a * 60 + b + (1 if c else 0)  # HH:MM:SS


def parse_slurm(text: str | None, config_file: Path | None = None) -> SlurmOptions | None:
    """``partition=gpu,gpus=4,time=12:00:00`` over the ``[slurm]`` table of ``config_file`` (TOML); None if neither."""
    if text is None and config_file is None:
        return None
    pairs: dict = {}
    if config_file is not None:
        try:
            table = tomllib.loads(Path(config_file).read_text()).get("slurm", {})
        except FileNotFoundError:
            raise WsolbenchError(f"--cluster-config {config_file}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise WsolbenchError(f"--cluster-config {config_file}: not valid TOML ({exc})") from None
        if not isinstance(table, dict):
            raise WsolbenchError(f"--cluster-config {config_file}: [slurm] must be a table")
        pairs.update({k.replace("_", "-"): str(v) for k, v in table.items()})
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise WsolbenchError(f"--slurm: expected key=value[,key=value...], got '{item}'")
        pairs[key.strip()] = value.strip()
    opts = SlurmOptions()
    for key, value in pairs.items():
        if key not in SlurmOptions.KEYS:
            raise WsolbenchError(f"--slurm: unknown key '{key}' (keys: {', '.join(SlurmOptions.KEYS)})")
        try:
            if key in ("gpus", "cpus", "array-parallelism"):
                number = int(value)
                if number < (0 if key == "gpus" else 1):
                    raise ValueError
                setattr(opts, key.replace("-", "_"), number)
            elif key == "time":
                opts.time = _minutes(value)
            else:
                setattr(opts, key, value)
        except ValueError:
            kind = "a time (minutes, HH:MM:SS or D-HH:MM:SS)" if key == "time" else "a positive whole number"
            raise WsolbenchError(f"--slurm {key}={value}: must be {kind}") from None
    return opts


def check_shared(runs: Path, launcher: str) -> None:
    """Slurm jobs run on other nodes: a node-local run folder would leave every result on the wrong machine."""
    if launcher != "slurm":
        return
    real = str(Path(runs).resolve())
    fstype = ""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
        best = max((m for m in mounts if real == m[0] or real.startswith(m[0].rstrip("/") + "/")),
                   key=lambda m: len(m[0]), default=None)
        fstype = best[1] if best else ""
    except OSError:
        pass
    if fstype in ("tmpfs", "ramfs") or any(real == p or real.startswith(p + "/") for p in NODE_LOCAL):
        raise WsolbenchError(f"--out {runs}: {real} is node-local ({fstype or 'a temporary folder'}), not shared with "
                             f"the Slurm jobs; use a folder on a file system every node mounts")


# ---------------------------------------------------------------- the job side


def _interrupt_on(*signums) -> None:
    """Slurm's time-limit warning (USR2) and pre-emption (TERM) become a Ctrl-C: train.py saves a checkpoint."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    for s in signums:
        signal.signal(s, handler)


def run_cell(spec: dict) -> dict:
    """Train one cell inside its job. Returns ``{"status": done|skipped|superseded|interrupted, ...}``."""
    from wsolbench.engine.runconfig import RunConfig

    runs = Path(spec["runs"])
    if not Path(spec["probe"]).exists():
        raise WsolbenchError(f"run folder {runs} is not shared with the jobs: node {C.HOST} does not see "
                             f"{spec['probe']}; put --out on a file system every node mounts")
    claim = C.Claim(Path(spec["claim"]), spec["token"])
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", "")
    if not C.update(claim, holders=[{"host": C.HOST, "pid": os.getpid(), "role": "job"}], job_id=job_id):
        return {"status": "superseded"}  # the claim was taken over while this job waited in the queue
    beat = C.Heartbeat()
    beat.claims["cell"] = claim
    try:
        cfg = RunConfig.from_dict(spec["cfg"])
        run_dir = runs / cfg.dataset / cfg.run_id()
        if R.is_complete(run_dir, cfg.run_id()):
            outcome = {"status": "skipped"}
        else:
            t0 = time.perf_counter()
            if spec.get("gpus", 0) > 1:
                _torchrun(spec)
            else:
                _interrupt_on(signal.SIGUSR2, signal.SIGTERM)
                _train(spec)
            outcome = {"status": "done", "seconds": time.perf_counter() - t0}
        C.release(claim, outcome["status"])
        return outcome
    except Interrupted:
        C.release(claim, "interrupted", "time limit or pre-emption; checkpoint saved")
        return {"status": "interrupted"}
    except BaseException as exc:
        C.release(claim, "failed", _one_line(exc))
        raise
    finally:
        beat.stop()


def _train(spec: dict):
    from rich.console import Console

    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.train import train_and_evaluate
    from wsolbench.plugins import load_plugins

    load_plugins([Path(p) for p in spec.get("plugins", [])])
    cfg = RunConfig.from_dict(spec["cfg"])
    if spec.get("threads"):  # local cells side by side: each its share of the cores (engine/side_by_side.py)
        import dataclasses

        import torch

        torch.set_num_threads(spec["threads"])
        if cfg.score_workers is None:
            cfg = dataclasses.replace(cfg, score_workers=spec["threads"])
    run_dir = Path(spec["runs"]) / cfg.dataset / cfg.run_id()
    resume = R.resume_point(run_dir)
    is_main = int(os.environ.get("RANK", "0")) == 0
    return train_and_evaluate(cfg, resume=resume, console=Console(quiet=not is_main), show_progress=False)


def _torchrun(spec: dict) -> None:
    """The cell's own torchrun: one process per GPU of the job, the same code path as ``torchrun -m wsolbench run``."""
    spec_path = Path(spec["claim"]).with_suffix(".spec.json")
    write_json(spec_path, spec)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={spec['gpus']}",
           "-m", "wsolbench.engine.launch", str(spec_path)]
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise WsolbenchError(f"torchrun exited with {code} (each rank's error is in this job's log)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# ---------------------------------------------------------------- the launch side


@dataclass
class _Cell:
    cfg: object
    key: str
    run_dir: Path
    claim: C.Claim | None = None
    job: object = None
    t0: float = 0.0
    gpu: int | None = None


def _executor(launcher: str, runs: Path, slurm: SlurmOptions, max_parallel: int | None):
    import submitit

    folder = runs / ".grid" / "jobs" / "%j"
    if launcher == "local":
        ex = submitit.AutoExecutor(folder=folder, cluster="local")
        ex.update_parameters(timeout_min=slurm.time, name="wsolbench")
        return ex
    try:
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    except Exception as exc:  # noqa: BLE001 - submitit says what is missing (sbatch, sacct)
        raise WsolbenchError(f"--launcher slurm: cannot submit from this machine ({_one_line(exc)})") from None
    params = dict(timeout_min=slurm.time, name="wsolbench", nodes=1, tasks_per_node=1,
                  slurm_array_parallelism=slurm.array_parallelism or max_parallel or 256)
    if slurm.gpus:
        params["gpus_per_node"] = slurm.gpus
    for key, name in (("cpus", "cpus_per_task"), ("partition", "slurm_partition"), ("account", "slurm_account"),
                      ("qos", "slurm_qos"), ("constraint", "slurm_constraint"), ("mem", "slurm_mem")):
        if getattr(slurm, key) is not None:
            params[name] = getattr(slurm, key)
    ex.update_parameters(**params)
    return ex


def _job_failure(job, launcher: str) -> tuple[str, str]:
    """(one-line reason, log path) of a job that returned no result."""
    try:
        job.result()
        return "", ""
    except Exception as exc:  # noqa: BLE001 - submitit's FailedJobError / UncompletedJobError
        log = str(job.paths.stderr)
        text = str(exc)
        if "has not produced any output" in text:
            state = job.state if launcher == "slurm" else "killed"
            reason = f"job {job.job_id} ended without a result ({state}: killed, pre-empted, timed out or out of memory)"
            if not Path(log).exists():
                reason += f"; no log at {log}: is the run folder shared with the nodes?"
            return reason, log
        # FailedJobError: the job's traceback; its last line is the exception
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("---")]
        last = lines[-1] if lines else type(exc).__name__
        return re.sub(r"^wsolbench\.errors\.WsolbenchError: ", "", last), log


def launch_grid(configs: list, launcher: str, console, max_parallel: int | None = None,
                slurm: SlurmOptions | None = None, plugins=(), poll_s: float | None = None) -> list:
    """Run the cells as jobs; returns a GridResult per cell (done | skipped | failed | elsewhere | interrupted)."""
    import dataclasses

    from wsolbench.engine.grid import GridResult

    if not launcher:
        raise WsolbenchError("--max-parallel, --slurm and --cluster-config go with --launcher local|slurm")
    if launcher not in LAUNCHERS:
        raise WsolbenchError(f"--launcher {launcher}: unknown (choose {' or '.join(LAUNCHERS)}, or leave it out "
                             f"for the in-process loop)")
    if max_parallel is not None and max_parallel < 1:
        raise WsolbenchError(f"--max-parallel {max_parallel}: must be at least 1")
    if launcher == "local" and slurm is not None:
        raise WsolbenchError("--slurm / --cluster-config: only with --launcher slurm (local cells take one GPU each, if any)")
    slurm = slurm or SlurmOptions()
    runs = Path(configs[0].out).resolve()
    check_shared(runs, launcher)
    configs = [dataclasses.replace(c, out=str(runs)) for c in configs]  # jobs may start elsewhere
    C.plan_cells(runs, configs)
    probe = runs / ".grid" / f"launch-{uuid.uuid4().hex[:12]}"
    probe.touch()
    executor = _executor(launcher, runs, slurm, max_parallel)
    gpu_pool = _local_gpus() if launcher == "local" else []
    limit = max_parallel or (len(gpu_pool) or os.cpu_count() or 1 if launcher == "local" else len(configs))
    if gpu_pool:  # local cells on a GPU machine: one GPU each, never more cells than GPUs
        limit = min(limit, len(gpu_pool))
    poll_s = poll_s or (0.2 if launcher == "local" else 10.0)
    # local cells on the CPU share its cores; a Slurm job has its own
    threads = threads_per_cell(limit) if launcher == "local" and not gpu_pool else None

    cells = [_Cell(c, C.cell_key(c), runs / c.dataset / c.run_id()) for c in configs]
    waiting, running, results = list(cells), [], {}
    beat = C.Heartbeat()
    try:
        while waiting or running:
            free = limit - len(running)
            batch = []
            while waiting and len(batch) < free:
                cell = waiting.pop(0)
                if R.is_complete(cell.run_dir, cell.cfg.run_id()):
                    console.print(f"{_head(cell)}: complete, skipped ({cell.run_dir})")
                    results[cell.key] = GridResult(cell.cfg, cell.run_dir, "skipped")
                    continue
                cell.claim, holder = C.try_claim(runs, cell.key, launcher=launcher)
                if cell.claim is None:
                    who = C.holder_text(holder)
                    console.print(f"{_head(cell)}: running in another launch ({who}), left to it", highlight=False)
                    results[cell.key] = GridResult(cell.cfg, cell.run_dir, "elsewhere", who)
                    continue
                beat.claims[cell.key] = cell.claim
                batch.append(cell)
            if batch:
                try:
                    _submit(executor, batch, runs, probe, slurm, plugins, gpu_pool, running, threads)
                except Exception as exc:  # noqa: BLE001 - sbatch's refusal (partition, limits, no controller)
                    for cell in batch:
                        C.release(cell.claim, "cancelled", "submission failed")
                    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
                    raise WsolbenchError(f"--launcher {launcher}: submitting failed: "
                                         f"{lines[-1] if lines else type(exc).__name__}") from None
                for cell in batch:
                    C.update(cell.claim, job_id=str(cell.job.job_id), log=str(cell.job.paths.stderr))
                    console.print(f"{_head(cell)}: job {cell.job.job_id} submitted (log {cell.job.paths.stderr})",
                                  highlight=False)
                running += batch
            time.sleep(poll_s)
            for cell in [c for c in running if c.job.done()]:
                running.remove(cell)
                del beat.claims[cell.key]
                results[cell.key] = _finish(cell, launcher, console)
                if "is not shared with the jobs" in results[cell.key].error:
                    for other in running:
                        other.job.cancel(check=False)
                        C.release(other.claim, "cancelled")
                    raise WsolbenchError(results[cell.key].error.split(" (log ")[0])
    except KeyboardInterrupt:
        for cell in running:
            cell.job.cancel(check=False)
            C.release(cell.claim, "cancelled", "launch interrupted")
        raise GridInterrupted(len(running)) from None
    finally:
        beat.stop()
        probe.unlink(missing_ok=True)
    return [results[c.key] for c in cells]


def _local_gpus() -> list[int]:
    import torch

    return list(range(torch.cuda.device_count()))


def _submit(executor, batch, runs, probe, slurm, plugins, gpu_pool, running, threads=None) -> None:
    specs = [{"cfg": c.cfg.to_dict(), "runs": str(runs), "probe": str(probe), "claim": str(c.claim.path),
              "token": c.claim.token, "gpus": slurm.gpus, "plugins": [str(Path(p).resolve()) for p in plugins],
              "threads": threads}
             for c in batch]
    if gpu_pool:  # local: each job sees one free GPU (submitit sets CUDA_VISIBLE_DEVICES)
        busy = {c.gpu for c in running}
        free = [g for g in gpu_pool if g not in busy]
        jobs = []
        for cell, spec in zip(batch, specs):
            cell.gpu = free.pop(0)
            executor.update_parameters(gpus_per_node=1, visible_gpus=(cell.gpu,))
            jobs.append(executor.submit(run_cell, spec))
    else:
        with executor.batch():  # one array job on Slurm
            jobs = [executor.submit(run_cell, spec) for spec in specs]
    for cell, job in zip(batch, jobs):
        cell.job, cell.t0 = job, time.perf_counter()


def _finish(cell: _Cell, launcher: str, console):
    from wsolbench.engine.grid import GridResult

    seconds = time.perf_counter() - cell.t0
    reason, log = _job_failure(cell.job, launcher)
    if reason:
        C.release(cell.claim, "failed", reason, log)
        console.print(f"[red]failed:[/] {_head(cell)}: {reason} (log {log})", highlight=False)
        return GridResult(cell.cfg, cell.run_dir, "failed", f"{reason} (log {log})", seconds)
    outcome = cell.job.result()
    status = outcome["status"]
    if status == "interrupted":
        msg = ("stopped by the time limit or pre-emption, checkpoint saved; the next launch resumes it "
               f"(log {cell.job.paths.stderr})")
        console.print(f"[yellow]interrupted:[/] {_head(cell)}: {msg}", highlight=False)
        return GridResult(cell.cfg, cell.run_dir, "failed", msg, seconds)
    if status == "superseded":
        return GridResult(cell.cfg, cell.run_dir, "elsewhere", "claim taken over by another launch", seconds)
    console.print(f"{_head(cell)}: {status} in {seconds:.0f} s ({cell.run_dir})", highlight=False)
    return GridResult(cell.cfg, cell.run_dir, "done" if status == "done" else "skipped", seconds=seconds)


def _head(cell: _Cell) -> str:
    c = cell.cfg
    return f"{c.method} / {c.backbone} / {c.dataset} / seed {c.seed}"


if __name__ == "__main__":  # one rank of a multi-GPU cell, started by _torchrun
    import json

    _train(json.loads(Path(sys.argv[1]).read_text()))
