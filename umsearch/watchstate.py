"""Which process updates an index, and what it is doing: a lock file beside the database.

One writer at a time: a watcher holds the lock for as long as it runs, an `index` run for its duration. The
operating system releases the lock when its holder dies (even by kill -9), so a stale file never claims a
writer is running; the file's text says what the live one is doing for `status` and the TUI.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import UmsearchError
from .oslock import try_lock as _try_lock
from .oslock import unlock as _unlock

WATCH = "watch"
INDEX = "index"


class WriterGone(Exception):
    """The watcher waited for stopped before it had caught up (the lock is free to take)."""


@dataclass(frozen=True)
class WatcherStatus:
    """The process holding an index's writer lock: a watcher (for its whole life) or an `index` run."""

    pid: int
    activity: str  # e.g. "catching up", "watching", "indexing 12 files"
    roots: tuple[str, ...]
    updated: float  # time.time() of the last report
    kind: str = WATCH  # WATCH or INDEX


Holder = WatcherStatus


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class IndexLock:
    """Held by the one process that updates an index (a watcher, or an `index` run); `report()` says what it does.

    One writer at a time is what keeps two runs from embedding the same photos twice; SQLite alone would keep
    the file consistent, but not the work single.
    """

    def __init__(self, db_path: Path, roots: tuple[str, ...], kind: str = WATCH) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self.roots = roots
        self.kind = kind
        self._handle: IO[str] | None = None
        self._reported: str | None = None

    def try_acquire(self) -> bool:
        # Opened without truncating (another process's report stays until we hold the lock) and without
        # O_APPEND (report() writes over the old text).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = open(fd, "r+", encoding="utf-8")  # noqa: SIM115 - held until release()
        if not _try_lock(handle):
            handle.close()
            return False
        self._handle = handle
        self.report("starting")
        return True

    def acquire(self) -> None:
        if not self.try_acquire():
            raise busy_error(holder(self.db_path))

    @property
    def held(self) -> bool:
        return self._handle is not None

    def report(self, activity: str) -> None:
        if self._handle is None or activity == self._reported:
            return  # an idle watcher would otherwise rewrite the same line every second for weeks
        self._reported = activity
        record = {
            "pid": os.getpid(),
            "kind": self.kind,
            "activity": activity,
            "roots": list(self.roots),
            "updated": time.time(),
        }
        try:
            # Written over the old text, then cut to length: on a full disk the few bytes still fit in the
            # block the file already has, and a failed write leaves the old report rather than none.
            self._handle.seek(0)
            self._handle.write(json.dumps(record))
            self._handle.flush()
            self._handle.truncate()
        except OSError:
            pass  # the report is a courtesy for `status`; the lock itself is held either way

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            self._handle.seek(0)
            self._handle.truncate()
        except OSError:
            pass
        _unlock(self._handle)
        self._handle.close()
        self._handle = None
        self._reported = None

    def __enter__(self) -> IndexLock:
        if not self.held:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WatcherLock(IndexLock):
    """The lock as a watcher holds it, for as long as it runs."""

    def __init__(self, db_path: Path, roots: tuple[str, ...]) -> None:
        super().__init__(db_path, roots, WATCH)


def busy_error(other: WatcherStatus | None) -> UmsearchError:
    """Who holds the index, in words."""
    if other is None:
        return UmsearchError("another umsearch process is updating this index; try again")
    if other.kind == WATCH:
        return UmsearchError(f"another watcher (pid {other.pid}) already keeps this index up to date; stop it first")
    return UmsearchError(f"'umsearch index' (pid {other.pid}) is updating this index; try again when it has finished")


def holder(db_path: Path) -> WatcherStatus | None:
    """The process holding the index's writer lock (a watcher or an `index` run), or None."""
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
        kind=str(record.get("kind", WATCH)),
    )


def read_status(db_path: Path) -> WatcherStatus | None:
    """The running watcher of this index, or None when no watcher holds its lock."""
    running = holder(db_path)
    return running if running is not None and running.kind == WATCH else None


def acquire_waiting(
    lock: IndexLock,
    say: Callable[[str], None],
    *,
    should_stop: Callable[[], bool] | None = None,
    poll: float = 0.25,
) -> WatcherStatus | None:
    """Take the writer lock, waiting (and saying so once) while an `index` run holds it.

    Returns None once the lock is held, or the watcher that holds it (a watcher never finishes: the caller
    joins it or refuses). Returns None without the lock when `should_stop` turns true meanwhile.
    """
    said: int | None = None
    while not lock.try_acquire():
        if should_stop is not None and should_stop():
            return None
        other = holder(lock.db_path)
        if other is not None and other.kind == WATCH:
            return other
        if other is not None and other.pid != said:
            say(f"'umsearch index' (pid {other.pid}) is updating this index; waiting for it to finish (Ctrl-C stops)")
            said = other.pid
        time.sleep(poll)
    return None


def wait_until_caught_up(
    db_path: Path, watcher: WatcherStatus, *, poll: float = 0.25, settle: float = 1.0
) -> WatcherStatus | None:
    """Wait until the watcher holding the index is idle ("watching") for `settle` seconds on end.

    Returns None when it is, the watcher's status when it is paused (a full disk, a read-only index), and
    raises WriterGone when it stopped meanwhile.
    """
    idle_since: float | None = None
    while True:
        current = holder(db_path)
        if current is None or current.kind != WATCH:
            raise WriterGone("the watcher stopped")
        if current.activity.startswith("paused"):
            return current
        now = time.monotonic()
        if current.activity == "watching":
            idle_since = idle_since if idle_since is not None else now
            if now - idle_since >= settle:
                return None
        else:
            idle_since = None
        time.sleep(poll)
