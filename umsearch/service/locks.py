"""Advisory file locks that the operating system releases when their holder dies (even by kill -9)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO

from ..oslock import try_lock as _lock
from ..oslock import unlock as _unlock


class FileLock:
    """An exclusive lock on a file: `try_acquire()` answers at once, `acquire(timeout)` waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+b")
        if not _lock(handle):
            handle.close()
            return False
        self._handle = handle
        return True

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pause = 0.01
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            _unlock(handle)
            handle.close()

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """Whether some live process holds the lock on `path` (a missing file is not locked)."""
    if not path.exists():
        return False
    probe = FileLock(path)
    try:
        if probe.try_acquire():
            probe.release()
            return False
    except OSError:
        return False
    return True
