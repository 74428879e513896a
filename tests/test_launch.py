"""Grid cells as jobs with submitit's local executor: real job processes, tiny models, 32 px.

The same run folders and leaderboard as the in-process loop; a job killed mid-training is reported
failed and resumes on the next launch; two concurrent launches split the cells; claims are NFS-safe
(atomic create, takeover of dead ones); bad launcher input fails with one line.
"""
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from wsolbench.engine import claims as C
from wsolbench.engine import rundir as R
from wsolbench.engine.runconfig import RunConfig


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from wsolbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=8, test_per_class=3, size=32)


def grid_args(synth, runs, *extra):
    return ["run", "-m", "cam", "-m", "acol", "-b", "test_resnet", "-d", "synthetic", "--data-root", synth,
            "--seeds", "0", "1", "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--input-size", "32",
            "--output-stride", "8", "--set", "head_width=16", "--out", runs, "--no-progress", *extra]


def run_folders(runs: Path) -> set:
    return {str(p.parent.relative_to(runs)) for p in runs.glob("*/*/config.json")}


def released_claims(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(C.claims_dir(runs).iterdir()) if not p.name.startswith(".")]


def test_local_launcher_two_at_a_time_equals_in_process_loop(synth, tmp_path, run_cli):
    from wsolbench.leaderboard import write_leaderboards

    inproc, jobs = tmp_path / "inproc", tmp_path / "jobs"
    code, out, err = run_cli(*grid_args(synth, inproc))
    assert code == 0, out + err
    code, out, err = run_cli(*grid_args(synth, jobs, "--launcher", "local", "--max-parallel", "2"))
    assert code == 0, out + err
    assert out.count("submitted") == 4 and out.count(": done in") == 4
    assert run_folders(jobs) == run_folders(inproc) and len(run_folders(jobs)) == 4

    # every cell ran as its own process, at most two at once (and two did overlap)
    claims = released_claims(jobs)
    assert sorted(c["outcome"] for c in claims) == ["done"] * 4
    job_pids = {h["pid"] for c in claims for h in c["holders"] if h["role"] == "job"}
    assert len(job_pids) == 4 and os.getpid() not in job_pids
    spans = [(c["created"], c["ended"]) for c in claims]
    overlap = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert overlap == 2

    boards = {}
    for name, runs in (("inproc", inproc), ("jobs", jobs)):
        write_leaderboards(runs, tmp_path / f"boards-{name}")
        boards[name] = {p.name: p.read_text() for p in (tmp_path / f"boards-{name}").glob("*.csv")}
    assert boards["jobs"] == boards["inproc"] and "synthetic-cub.csv" in boards["jobs"]

    code, out, err = run_cli(*grid_args(synth, jobs, "--launcher", "local", "--max-parallel", "2"))
    assert code == 0 and out.count("complete, skipped") == 4 and "submitted" not in out


def test_side_by_side_cells_get_their_share_of_the_cores_and_the_in_process_numbers(synth, tmp_path, run_cli):
    """--jobs 2: two worker processes at cores // 2 threads each; the same run folders and numbers as the
    one-thread in-process loop (the tests run at one thread); a second launch skips every cell."""
    from wsolbench.protocols.parallel import usable_cores

    inproc, side = tmp_path / "inproc", tmp_path / "side"
    code, out, err = run_cli(*grid_args(synth, inproc))
    assert code == 0, out + err
    code, out, err = run_cli(*grid_args(synth, side, "--jobs", "2"))
    assert code == 0, out + err
    threads = max(1, usable_cores() // 2)
    assert f"4 cells, 2 side by side at {threads} thread(s) each" in out and out.count(": done (GT-known Loc") == 4
    assert run_folders(side) == run_folders(inproc) and len(run_folders(side)) == 4
    for folder in run_folders(side):
        assert json.loads((side / folder / R.ENV).read_text())["torch_threads"] == threads
        if threads == 1:  # the same thread count as this process: the same numbers
            assert _metrics(side / folder) == _metrics(inproc / folder), folder
    code, out, err = run_cli(*grid_args(synth, side, "--jobs", "2"))
    assert code == 0 and out.count("complete, skipped") == 4


def test_jobs_and_launcher_are_one_choice(synth, tmp_path, run_cli):
    code, out, err = run_cli(*grid_args(synth, tmp_path, "--jobs", "2", "--launcher", "local"))
    assert code == 2 and "--jobs and --launcher: choose one" in out + err
    code, out, err = run_cli(*grid_args(synth, tmp_path, "--jobs", "-1"))
    assert code == 2 and "--jobs -1: must be 0 (one per core) or more" in out + err


def _metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / R.METRICS).read_text())
    return {k: v for k, v in m.items() if isinstance(v, float)}


def test_killed_cell_is_reported_failed_and_resumes_on_the_next_launch(tmp_path):
    from wsolbench.cli.status_cmd import cell_states
    from wsolbench.data.synthetic import generate
    from wsolbench.engine.launch import launch_grid
    from wsolbench.engine.train import train_and_evaluate

    data = generate(tmp_path / "synth", classes=4, per_class=24, test_per_class=3, size=32)
    # four epochs at 64 px: a few seconds after the first epoch's checkpoint to kill the job in
    cfg = RunConfig(method="cam", backbone="test_resnet", dataset="synthetic", data_root=str(data), epochs=4,
                    batch_size=8, lr=0.01, input_size=64, output_stride=8, out=str(tmp_path / "runs"))
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "synthetic" / cfg.run_id()
    console = Console(file=io.StringIO(), width=250)
    results = []
    launch = threading.Thread(target=lambda: results.extend(launch_grid([cfg], "local", console)))
    launch.start()
    deadline = time.time() + 120
    while not (run_dir / R.CHECKPOINT).exists():  # written (atomically) at the end of the first epoch
        assert time.time() < deadline and launch.is_alive(), console.file.getvalue()
        time.sleep(0.02)
    claim = next(c for c in released_claims(runs))
    job_pid = next(h["pid"] for h in claim["holders"] if h["role"] == "job")
    os.kill(job_pid, signal.SIGKILL)
    launch.join(60)
    assert not R.is_complete(run_dir), "the job finished before it could be killed"
    (result,) = results
    assert result.status == "failed" and "ended without a result" in result.error
    log = result.error.rsplit("(log ", 1)[1].rstrip(")")
    assert Path(log).exists() and log.endswith("_log.err")
    (state,) = cell_states(runs)
    assert state["state"] == "failed" and "ended without a result" in state["detail"] and log in state["detail"]

    (result,) = launch_grid([cfg], "local", console)  # the next launch resubmits it; it resumes
    assert result.status == "done", console.file.getvalue()
    from wsolbench.engine.claims import cell_key

    job_log = Path(json.loads((C.claims_dir(runs) / f"{cell_key(cfg)}.1").read_text())["log"])
    assert "resuming" in job_log.with_suffix(".out").read_text()
    assert [r["epoch"] for r in map(json.loads, (run_dir / R.EPOCHS).read_text().splitlines())] == [0, 1, 2, 3]
    straight = train_and_evaluate(RunConfig(**{**cfg.to_dict(), "out": str(tmp_path / "straight")}),
                                  show_progress=False)
    assert _metrics(run_dir) == _metrics(straight)  # as if it had never been killed
    assert cell_states(runs)[0]["state"] == "complete"


def test_two_concurrent_launches_split_the_cells(synth, tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "wsolbench", *map(str, grid_args(synth, runs, "--launcher", "local",
                                                                  "--max-parallel", "1"))]
    env = {**os.environ, "COLUMNS": "250"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    submitted = [{line.split(": job ")[0] for line in out.splitlines() if ": job " in line} for out in outs]
    assert submitted[0].isdisjoint(submitted[1]) and len(submitted[0] | submitted[1]) == 4, outs
    assert all(submitted), outs  # both launches trained cells
    assert len(list(runs.glob("*/*/metrics.json"))) == 4
    claims = released_claims(runs)  # one claim per cell, never taken twice
    assert len(claims) == 4 and all(c["outcome"] == "done" for c in claims)
    assert all(p.name.endswith(".0") for p in C.claims_dir(runs).iterdir() if not p.name.startswith("."))


def test_claims_are_exclusive_and_dead_ones_are_taken_over(tmp_path, monkeypatch):
    key = "synthetic__cam__x"
    first, _ = C.try_claim(tmp_path, key)
    assert first is not None
    second, holder = C.try_claim(tmp_path, key)
    assert second is None and holder["live"] and holder["holders"][0]["pid"] == os.getpid()

    # a holder on this host whose process is gone: taken over at once, as generation 1
    info = json.loads(first.path.read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info["holders"] = [{"host": C.HOST, "pid": int(dead.stdout), "role": "job"}]
    first.path.write_text(json.dumps(info))
    assert not C.state(tmp_path, key)["live"]
    taken, _ = C.try_claim(tmp_path, key)
    assert taken is not None and taken.path.name == f"{key}.1" and not C.owns(first) and C.owns(taken)

    # a holder on another node: live while its heartbeat is fresh, dead once it stops
    info = json.loads(taken.path.read_text())
    info["holders"] = [{"host": "other-node", "pid": 1, "role": "job"}]
    taken.path.write_text(json.dumps(info))
    assert C.try_claim(tmp_path, key)[0] is None
    old = time.time() - C.stale_seconds() - 60
    os.utime(taken.path, (old, old))
    assert "no heartbeat" in C.state(tmp_path, key)["why"]
    third, _ = C.try_claim(tmp_path, key)
    assert third is not None and third.path.name == f"{key}.2"

    # the heartbeat keeps a claim fresh; a release frees it at once for the next launch
    monkeypatch.setenv("WSOLBENCH_CLAIM_STALE_S", "0.6")
    os.utime(third.path, (old, old))
    beat = C.Heartbeat()
    beat.claims["c"] = third
    time.sleep(0.4)
    beat.stop()
    assert C.state(tmp_path, key)["live"]
    C.release(third, "failed", "boom")
    state = C.state(tmp_path, key)
    assert not state["live"] and state["reason"] == "boom" and C.try_claim(tmp_path, key)[0] is not None


def test_a_job_that_cannot_see_the_run_folder_says_so(tmp_path):
    from wsolbench.engine.launch import run_cell
    from wsolbench.errors import WsolbenchError

    claim, _ = C.try_claim(tmp_path, "k")
    spec = {"cfg": RunConfig().to_dict(), "runs": str(tmp_path), "probe": str(tmp_path / ".grid" / "launch-gone"),
            "claim": str(claim.path), "token": claim.token}
    with pytest.raises(WsolbenchError, match="not shared with the jobs"):
        run_cell(spec)


@pytest.mark.parametrize("extra, message", [
    (["--launcher", "pbs"], "--launcher pbs: unknown (choose local or slurm"),
    (["--launcher", "slurm", "--slurm", "partition"], "--slurm: expected key=value"),
    (["--launcher", "slurm", "--slurm", "gpus=two"], "--slurm gpus=two: must be a positive whole number"),
    (["--launcher", "slurm", "--slurm", "time=soon"], "--slurm time=soon: must be a time"),
    (["--launcher", "slurm", "--slurm", "nodes=2"], "--slurm: unknown key 'nodes'"),
    (["--launcher", "local", "--max-parallel", "0"], "--max-parallel 0: must be at least 1"),
    (["--max-parallel", "2"], "go with --launcher local|slurm"),
    (["--launcher", "slurm", "--out", "/dev/shm/wsolbench-runs"], "not shared with the Slurm jobs"),
])
def test_bad_launcher_input_is_one_line(synth, tmp_path, run_cli, extra, message):
    args = grid_args(synth, tmp_path / "runs")
    if "--out" in extra:
        args = args[:args.index("--out")] + args[args.index("--out") + 2:]
    code, out, err = run_cli(*args, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, out + err
    assert not list((tmp_path / "runs").glob("*/*/config.json"))


def test_cluster_config_file_gives_the_slurm_table(tmp_path):
    from wsolbench.engine.launch import parse_slurm
    from wsolbench.errors import WsolbenchError

    path = tmp_path / "cluster.toml"
    path.write_text('[slurm]\npartition = "gpu"\ngpus = 4\ntime = "1-00:00:00"\narray_parallelism = 8\n')
    opts = parse_slurm("time=90", path)  # the command line wins over the file
    assert (opts.partition, opts.gpus, opts.time, opts.array_parallelism) == ("gpu", 4, 90, 8)
    assert parse_slurm(None, path).time == 24 * 60
    path.write_text("[slurm\n")
    with pytest.raises(WsolbenchError, match="not valid TOML"):
        parse_slurm(None, path)
