"""The indexing backlog, recorded in the index so that a query elsewhere can say what it did not search yet.

An index run (`umsearch index`, `watch`, the service) writes how many photos it still has to embed into the
index's meta table, in the same transaction as each batch of vectors, and clears it when it ends. A query
reads it and says "searched 1,240 of 10,000 photos; indexing continues". The record names the writing
process (pid, its start time, the host), so one left behind by a run that was killed is recognised as stale
and ignored.

Cheap to import (stdlib only; psutil is asked only when a record is read).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store

META_BACKLOG = "backlog"
# A record from another host (an index on a shared drive) cannot be checked by pid: trust it this long.
_FOREIGN_HOST_TRUST_S = 3600.0

INDEXING, PAUSED = "indexing", "paused on battery"


@dataclass(frozen=True)
class Backlog:
    pending: int  # photos found but not embedded yet
    state: str  # INDEXING or PAUSED
    pid: int
    started: float  # the writing process's start time (seconds since the epoch), to tell a reused pid
    host: str
    updated: float

    def notice(self, searched: int) -> str:
        """The line a query shows: how much of the library it searched."""
        total = searched + self.pending
        going = "indexing continues" if self.state == INDEXING else f"indexing is {self.state}"
        return f"searched {searched:,} of {total:,} photos; {going}"


def record(store: Store, pending: int, state: str = INDEXING) -> None:
    """Write (or update) this process's backlog; call inside the batch's transaction."""
    entry = Backlog(
        pending=max(0, pending),
        state=state,
        pid=os.getpid(),
        started=_process_start(os.getpid()) or 0.0,
        host=socket.gethostname(),
        updated=time.time(),
    )
    store.set_meta(META_BACKLOG, json.dumps(asdict(entry)))


def clear(store: Store) -> None:
    """Remove this process's record (another live run's record is left alone)."""
    current = _parse(store.meta(META_BACKLOG))
    if current is None or (current.pid == os.getpid() and current.host == socket.gethostname()):
        store.set_meta(META_BACKLOG, "")


def read(store: Store) -> Backlog | None:
    """The live backlog of the index, or None (nothing pending, or the run that wrote it is gone)."""
    entry = _parse(store.meta(META_BACKLOG))
    if entry is None or entry.pending <= 0:
        return None
    if entry.host != socket.gethostname():
        return entry if time.time() - entry.updated < _FOREIGN_HOST_TRUST_S else None
    return entry if _alive(entry.pid, entry.started) else None


def _parse(raw: str | None) -> Backlog | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Backlog(**{key: data[key] for key in Backlog.__dataclass_fields__})
    except (ValueError, TypeError, KeyError):
        return None  # written by another version, or damaged: no notice rather than a crash


def _alive(pid: int, started: float) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil
    except ImportError:
        return _posix_alive(pid)
    try:
        if not psutil.pid_exists(pid):
            return False
        # A pid reused by another process since the record was written has another start time.
        return not started or abs(psutil.Process(pid).create_time() - started) < 2.0
    except psutil.Error:
        return False


def _posix_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # cannot tell without psutil (os.kill would end the process on Windows)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by another user
    return True


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None
