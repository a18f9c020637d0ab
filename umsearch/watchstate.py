"""Which watcher owns an index, and what it is doing: a lock file beside the database.

The operating system releases the lock when the watcher dies (even by kill -9), so a stale file never
claims a watcher is running; the file's text says what the live watcher is doing for `status` and the TUI.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import UmsearchError
from .oslock import try_lock as _try_lock
from .oslock import unlock as _unlock


@dataclass(frozen=True)
class WatcherStatus:
    pid: int
    activity: str  # e.g. "catching up", "watching", "indexing 12 files"
    roots: tuple[str, ...]
    updated: float  # time.time() of the last report


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".watch.lock")


class WatcherLock:
    """Held by the one watcher of an index for as long as it runs; `report()` publishes its activity."""

    def __init__(self, db_path: Path, roots: tuple[str, ...]) -> None:
        self.path = lock_path(db_path)
        self.roots = roots
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release(); "a+" never truncates another watcher's report
        if not _try_lock(handle):
            handle.close()
            running = read_status(self.path.with_name(self.path.name.removesuffix(".watch.lock")))
            who = f" (pid {running.pid})" if running else ""
            raise UmsearchError(f"another watcher{who} already keeps this index up to date; stop it first")
        self._handle = handle
        self.report("starting")

    def report(self, activity: str) -> None:
        if self._handle is None:
            return
        record = {"pid": os.getpid(), "activity": activity, "roots": list(self.roots), "updated": time.time()}
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(record))
        self._handle.flush()

    def release(self) -> None:
        if self._handle is None:
            return
        self._handle.seek(0)
        self._handle.truncate()
        _unlock(self._handle)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> WatcherLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_status(db_path: Path) -> WatcherStatus | None:
    """The running watcher of this index, or None when no process holds its lock."""
    path = lock_path(db_path)
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the `with` below
    except OSError:
        return None
    with handle:
        if _try_lock(handle):
            _unlock(handle)
            return None
        try:
            record = json.loads(handle.read() or "{}")
        except ValueError:
            record = {}
    return WatcherStatus(
        pid=int(record.get("pid", 0)),
        activity=str(record.get("activity", "running")),
        roots=tuple(record.get("roots", ())),
        updated=float(record.get("updated", 0.0)),
    )
