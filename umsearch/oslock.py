"""An exclusive advisory lock on an open file, which the operating system releases when its holder dies (even
by kill -9): the watcher's lock (watchstate.py) and the service's locks (service/locks.py) both stand on it."""

from __future__ import annotations

import sys
from typing import IO, Any


def try_lock(handle: IO[Any]) -> bool:
    """Lock the file's first byte without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def unlock(handle: IO[Any]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
