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
