"""Helpers for service tests: run the real CLI in subprocesses, and make sure every service they start stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from umsearch.service.client import ServiceClient, find_service
from umsearch.service.paths import service_paths

REPO = Path(__file__).resolve().parent.parent


def service_env(home: Path, db: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: its own home, this index, offline, the service allowed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMSEARCH_")}
    env.update(
        PYTHONPATH=str(REPO),
        UMSEARCH_HOME=str(home),
        UMSEARCH_DB=str(db),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(home / "hf"),
        UMSEARCH_IDLE_TIMEOUT="300",  # a service a test forgot would still go away on its own
        # float32 and no quantisation, as the in-process reference (tiny_embedder): the CPU default depends on
        # the machine's vector units, and the results are compared to 1e-6.
        UMSEARCH_QUANT="none",
        UMSEARCH_DTYPE="float32",
    )
    env.update(extra)
    return env


def umsearch(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "umsearch", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def hits(completed: subprocess.CompletedProcess[str]) -> list[tuple[str, float]]:
    assert completed.returncode == 0, completed.stderr
    return [(hit["path"], hit["score"]) for hit in json.loads(completed.stdout)]


def same_hits(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    return [p for p, _ in got] == [p for p, _ in expected] and all(
        abs(a - b) <= 1e-6 for (_, a), (_, b) in zip(got, expected)
    )


def copy_index(db: Path, to: Path) -> Path:
    """A copy of an index (with its WAL folded in) that shares no query cache with the original."""
    import apsw

    to.parent.mkdir(parents=True, exist_ok=True)
    connection = apsw.Connection(str(db))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    shutil.copy(db, to)
    bits = db.with_name(db.name + ".bits.npz")
    if bits.exists():
        shutil.copy(bits, to.with_name(to.name + ".bits.npz"))
    return to


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def wait_for_service(db: Path, timeout: float = 60) -> ServiceClient:
    return wait_for(lambda: find_service(service_paths(db)), timeout, f"the service of {db}")  # type: ignore[return-value]


class Processes:
    """Every umsearch process a test starts, and every service of its indexes: all killed at the end."""

    def __init__(self) -> None:
        self.dbs: list[Path] = []
        self.spawned: list[subprocess.Popen[str]] = []
        self.pids: set[int] = set()

    def index(self, db: Path) -> Path:
        self.dbs.append(db)
        return db

    def spawn(self, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "umsearch", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.spawned.append(process)
        return process

    def note(self, pid: int | None) -> None:
        if pid:
            self.pids.add(pid)

    def service_pid(self, db: Path) -> int | None:
        client = find_service(service_paths(db))
        if client is None:
            return None
        self.note(client.pid)
        return client.pid

    def cleanup(self) -> None:
        for db in self.dbs:
            self.service_pid(db)
        for process in self.spawned:
            self.pids.add(process.pid)
        for pid in self.pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for process in self.spawned:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in self.pids):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our child, exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
