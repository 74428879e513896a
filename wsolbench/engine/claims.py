"""One claim per grid cell on the shared run folder, so two launches never train the same cell at once.

Safe on NFS without locks: a claim is a file ``RUNS/.grid/claims/KEY.GEN`` created with O_CREAT|O_EXCL
(atomic on NFSv3+ and local disks); the highest generation is the claim that counts. To take over a
claim that was released, or whose holder died, a launch creates generation GEN+1 with O_EXCL: of two
racing launches exactly one succeeds. A claim is live while its file's mtime is fresh (its holders
touch it every ``stale_s / 6`` seconds; "now" is read from the file server, not the local clock) and,
for holders on this host, while one of their processes exists. Releasing rewrites the file's content
(outcome, reason, log) and never lowers the generation.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from wsolbench.engine import rundir as R
from wsolbench.engine.atomic import write_json

HOST = socket.gethostname()


def stale_seconds() -> float:
    """A claim untouched this long is dead (the heartbeat runs 6 times as often). Env: WSOLBENCH_CLAIM_STALE_S."""
    return float(os.environ.get("WSOLBENCH_CLAIM_STALE_S", "300"))


def claims_dir(runs: Path) -> Path:
    return Path(runs) / ".grid" / "claims"


@dataclass
class Claim:
    path: Path
    token: str


def _generations(folder: Path, key: str) -> list[int]:
    gens = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return gens
    for name in names:
        stem, dot, gen = name.rpartition(".")
        if stem == key and gen.isdigit():
            gens.append(int(gen))
    return sorted(gens)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # vanished, or being rewritten: treat as unknown this round


def _server_now(folder: Path) -> float:
    """The file server's clock (touch a private file, read its mtime): immune to clock skew between nodes."""
    probe = folder / f".now-{HOST}-{os.getpid()}"
    probe.touch()
    return probe.stat().st_mtime


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state(runs: Path, key: str) -> dict | None:
    """The cell's newest claim: its content plus ``live`` (bool) and ``why`` (when not live); None if never claimed."""
    folder = claims_dir(runs)
    gens = _generations(folder, key)
    if not gens:
        return None
    path = folder / f"{key}.{gens[-1]}"
    info = _read(path)
    try:
        age = _server_now(folder) - path.stat().st_mtime
    except FileNotFoundError:
        return None
    if info is None:  # unreadable for a moment (a rename on NFS): count a fresh file as live
        return {"live": age < stale_seconds(), "why": "", "path": str(path)}
    info["path"] = str(path)
    if info.get("released"):
        info.update(live=False, why=f"released ({info.get('outcome', '')})")
    elif age > stale_seconds():
        info.update(live=False, why=f"no heartbeat for {age:.0f} s")
    else:
        local = [h for h in info.get("holders", []) if h.get("host") == HOST]
        remote = [h for h in info.get("holders", []) if h.get("host") != HOST]
        dead = local and not remote and not any(_pid_alive(int(h["pid"])) for h in local)
        info.update(live=not dead, why="its processes on this host are gone" if dead else "")
    return info


def try_claim(runs: Path, key: str, **about) -> tuple[Claim | None, dict | None]:
    """``(claim, None)`` if this process now holds the cell, else ``(None, the live claim that holds it)``."""
    folder = claims_dir(runs)
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # lost races retry from a fresh listing
        current = state(runs, key)
        if current is not None and current["live"]:
            return None, current
        gens = _generations(folder, key)
        gen = gens[-1] + 1 if gens else 0
        path = folder / f"{key}.{gen}"
        token = uuid.uuid4().hex
        body = {"token": token, "key": key, "created": time.time(),
                "holders": [{"host": HOST, "pid": os.getpid(), "role": about.pop("role", "launch")}], **about}
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
        if _generations(folder, key)[-1] != gen:  # a newer generation appeared meanwhile: it wins
            release(Claim(path, token), "lost", "a newer claim appeared")
            continue
        for old in gens[:-1]:  # keep the one just superseded; older ones are history
            (folder / f"{key}.{old}").unlink(missing_ok=True)
        return Claim(path, token), None
    return None, state(runs, key)


def update(claim: Claim, **fields) -> bool:
    """Rewrite our claim's content (adds holders, job ids); False if it is no longer ours."""
    info = _read(claim.path)
    if info is None or info.get("token") != claim.token or info.get("released"):
        return False
    holders = info.get("holders", []) + fields.pop("holders", [])
    write_json(claim.path, {**info, **fields, "holders": holders})
    return True


def owns(claim: Claim) -> bool:
    """True while ``claim`` is still the cell's newest, unreleased claim."""
    info = _read(claim.path)
    gens = _generations(claim.path.parent, claim.path.name.rpartition(".")[0])
    return (info is not None and info.get("token") == claim.token and not info.get("released")
            and bool(gens) and claim.path.name.endswith(f".{gens[-1]}"))


def release(claim: Claim, outcome: str, reason: str = "", log: str = "") -> None:
    info = _read(claim.path)
    if info is None or info.get("token") != claim.token:
        return
    write_json(claim.path, {**info, "released": True, "outcome": outcome, "reason": reason, "log": log or info.get("log", ""),
                            "ended": time.time()})


class Heartbeat:
    """Touches the claims it holds every ``stale_s / 6`` seconds from a daemon thread."""

    def __init__(self):
        self.claims: dict[str, Claim] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="wsolbench-heartbeat")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(stale_seconds() / 6):
            for claim in list(self.claims.values()):
                try:
                    os.utime(claim.path)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------- grid cells


def cell_key(cfg) -> str:
    return f"{cfg.dataset}__{cfg.run_id()}"


def holder_text(info: dict | None) -> str:
    if not info:
        return "unknown holder"
    hosts = ", ".join(f"{h.get('host')} pid {h.get('pid')}" for h in info.get("holders", []))
    job = f", job {info['job_id']}" if info.get("job_id") else ""
    return f"{hosts}{job}"


class CellClaims:
    """The in-process loop's claims (so it never trains a cell a cluster launch holds). Off under torchrun,
    where the ranks could not agree on a claim before their process group exists."""

    def __init__(self, configs: list):
        from wsolbench.engine.distributed import launched_by_torchrun

        self.on = bool(configs) and not launched_by_torchrun()
        self.held: dict[str, Claim] = {}
        self.beat = Heartbeat() if self.on else None
        if self.on:
            plan_cells(Path(configs[0].out), configs)

    def take(self, cfg) -> str:
        """'' when this process now holds ``cfg``'s cell, else who holds it."""
        if not self.on:
            return ""
        claim, holder = try_claim(Path(cfg.out), cell_key(cfg), launcher="in-process", role="in-process")
        if claim is None:
            return holder_text(holder)
        self.held[cell_key(cfg)] = self.beat.claims[cell_key(cfg)] = claim
        return ""

    def release(self, cfg, outcome: str, reason: str = "") -> None:
        claim = self.held.pop(cell_key(cfg), None)
        if claim is not None:
            self.beat.claims.pop(cell_key(cfg), None)
            release(claim, outcome, reason)

    def close(self) -> None:
        if self.beat is not None:
            self.beat.stop()


def plan_cells(runs: Path, configs: list) -> None:
    """Record the grid's cells, so ``status`` and the leaderboard know what is still missing."""
    folder = Path(runs) / ".grid" / "cells"
    for cfg in configs:
        path = folder / f"{cell_key(cfg)}.json"
        if not path.exists():
            write_json(path, {**cfg.identity(), "run_id": cfg.run_id()})


def missing_note(runs: Path) -> str | None:
    """``"3 of 8 planned cells are missing ..."`` for the leaderboard, or None when nothing is missing."""
    folder = Path(runs) / ".grid" / "cells"
    planned = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not planned:
        return None
    missing = 0
    for path in planned:
        info = _read(path) or {}
        if not R.is_complete(Path(runs) / str(info.get("dataset")) / str(info.get("run_id")), info.get("run_id")):
            missing += 1
    if not missing:
        return None
    return (f"{missing} of {len(planned)} planned grid cells are missing (not complete yet): "
            f"`wsolbench status {runs}` lists them.")
