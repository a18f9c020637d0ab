"""May a long-running writer (the watcher) write to its index right now? Pauses for a full disk or a read-only
index, stops for an index file deleted or replaced, and says each of these once, in words.

A pause is not an error: queries keep working (they only read), events keep being collected, and writing
resumes by itself once there is room again or the index is writable again; then everything is compared with
the disk once more, so nothing that happened during the pause is missed. Deleted or replaced is the end: the
open file is no longer the index at that path, and writing on would change a file nobody can see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import IndexGoneError, saved_text
from .store import Store
from .store.health import FileState, describe_state, free_bytes

DISK_FULL = "disk full"
READ_ONLY = "read-only"
RESUME_MARGIN_BYTES = 1 << 20  # this much more room than when the disk filled up: worth trying again
FIRST_RETRY_SECONDS = 30.0  # without a sign of change, try again after this long (doubling, up to the max)
MAX_RETRY_SECONDS = 600.0


@dataclass
class Pause:
    kind: str  # DISK_FULL or READ_ONLY
    retry_at: float  # monotonic: try writing again by then at the latest
    free_at_pause: int | None = None
    seen_in_file_mode: bool = False  # read-only said by the file's permission bits (so they say when it ends)


class WriteGuard:
    """Decides, before each round of writes, whether the index may be written, and says why not once."""

    def __init__(self, store: Store, on_message: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.on_message = on_message
        self.clock = clock
        self.pause: Pause | None = None
        self.saved = 0  # photos committed by this process, for the disk-full line
        self._said: str | None = None  # the pause line already said (a failed retry does not repeat it)
        self._said_kind: str | None = None
        self._retry_delay = FIRST_RETRY_SECONDS
        self._resuming = False

    @property
    def folder(self) -> Path:
        return self.store.path.parent

    def may_write(self) -> bool:
        """True when writes may go ahead; False while paused. Raises IndexGoneError for a deleted or replaced index."""
        state = self.store.file_state()
        if state in (FileState.DELETED, FileState.REPLACED):
            raise IndexGoneError(
                f"{describe_state(state, self.store.path)}; the watcher stopped without writing to it "
                "(start it again to use the index at that path)"
            )
        if self.pause is None:
            if state is FileState.READ_ONLY:
                self._enter(READ_ONLY, seen_in_file_mode=True)
                return False
            return True
        if not self._pause_over(self.pause, state):
            return False
        self.pause = None
        self._resuming = True
        return True

    def held(self) -> bool:
        """Whether writing should stop between batches (checked often: a stat, no reads)."""
        return self.store.file_state() is not FileState.OK

    def disk_full(self, saved_in_round: int) -> None:
        self.saved += saved_in_round
        self._enter(DISK_FULL, free_at_pause=free_bytes(self.folder))

    def read_only(self) -> None:
        self._enter(READ_ONLY)

    def succeeded(self, saved_in_round: int) -> None:
        """A round of writes went through: a pause that was on is over for good."""
        self.saved += saved_in_round
        if self._resuming and self._said_kind is not None:
            self.on_message(self._resumed_message(self._said_kind))
        self._resuming = False
        self._said = self._said_kind = None
        self._retry_delay = FIRST_RETRY_SECONDS

    def activity(self) -> str | None:
        """What `status` shows while paused."""
        if self.pause is None:
            return None
        return "paused: disk full" if self.pause.kind == DISK_FULL else "paused: index read-only"

    # ---- internals -----------------------------------------------------------------------------
    def _enter(self, kind: str, *, free_at_pause: int | None = None, seen_in_file_mode: bool = False) -> None:
        retry_at = self.clock() + self._retry_delay
        if self._resuming:  # the retry failed the same way: wait longer before the next one
            self._retry_delay = min(MAX_RETRY_SECONDS, self._retry_delay * 2)
        self._resuming = False
        self.pause = Pause(kind, retry_at, free_at_pause, seen_in_file_mode)
        message = self._message(kind)
        if message != self._said:
            self.on_message(message)
            self._said, self._said_kind = message, kind

    def _message(self, kind: str) -> str:
        if kind == DISK_FULL:
            return (
                f"the disk holding the index ({self.folder}) is full{saved_text(self.saved)}; "
                "indexing paused until space is freed (queries keep working)"
            )
        return (
            f"{describe_state(FileState.READ_ONLY, self.store.path)}; indexing paused until it is writable again "
            "(queries keep working)"
        )

    def _resumed_message(self, kind: str) -> str:
        if kind == DISK_FULL:
            return f"the disk holding the index ({self.folder}) has room again: indexing resumed"
        return f"the index {self.store.path} is writable again: indexing resumed"

    def _pause_over(self, pause: Pause, state: FileState) -> bool:
        if state is not FileState.OK:
            return False
        now = self.clock()
        if pause.kind == READ_ONLY:
            return pause.seen_in_file_mode or now >= pause.retry_at
        free = free_bytes(self.folder)
        room_made = (
            free is not None and pause.free_at_pause is not None and free > pause.free_at_pause + RESUME_MARGIN_BYTES
        )
        return room_made or now >= pause.retry_at
