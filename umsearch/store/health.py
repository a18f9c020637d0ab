"""What happens to an index file under a process that runs for weeks: a full disk, a file deleted, replaced
or made read-only while it is open. Each is recognised here and said in words by the callers.

SQLite keeps writing through its open descriptors whatever happens to the name: to a deleted file (the
writes vanish with the last descriptor), to the old file after another was put in its place, to a file
whose permissions say read-only. So a long-running writer asks `file_state` before each round of writes.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# An I/O error while the disk has less room than this is taken for a full disk (SQLite reports a failed
# write of its shared-memory index or journal as a generic I/O error).
NEARLY_FULL_BYTES = 256 * 1024


class FileState(Enum):
    OK = "ok"
    DELETED = "deleted"
    REPLACED = "replaced"
    READ_ONLY = "read-only"


@dataclass(frozen=True)
class FileIdentity:
    device: int
    inode: int


def file_identity(path: Path) -> FileIdentity | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return FileIdentity(info.st_dev, info.st_ino)


def file_state(path: Path, opened: FileIdentity | None) -> FileState:
    """Whether `path` is still the file that was opened as `opened`, and whether it may be written."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileState.DELETED
    except OSError:
        return FileState.OK  # cannot tell (a slow network drive, say): the writes themselves will say
    if opened is not None and (info.st_dev, info.st_ino) != (opened.device, opened.inode):
        return FileState.REPLACED
    if not _writable(path, info) or _read_only_mount(path):
        return FileState.READ_ONLY
    return FileState.OK


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs on Windows
        return False


def _writable(path: Path, info: os.stat_result) -> bool:
    # The owner (root too, who os.access always lets write) is taken at the word of the permission bits:
    # someone who removed the write bit of their own index wants it left alone.
    if info.st_uid == os.geteuid():
        return bool(info.st_mode & stat.S_IWUSR)
    return os.access(path, os.W_OK)


def describe_state(state: FileState, path: Path) -> str:
    if state is FileState.DELETED:
        return f"the index {path} was deleted while this process had it open"
    if state is FileState.REPLACED:
        return f"the index {path} was replaced by another file while this process had it open"
    if state is FileState.READ_ONLY:
        return f"the index {path} is read-only"
    return f"the index {path} is fine"


def free_bytes(folder: Path) -> int | None:
    """Room left for this user on the disk holding `folder` (None when the system cannot say)."""
    try:
        info = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs on Windows
        return None
    return info.f_bavail * info.f_frsize


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether `exc` means the disk holding `folder` ran out of room (SQLite's or the operating system's word)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    kind = type(exc)
    if kind.__module__ != "apsw":
        return False
    if kind.__name__ == "FullError":
        return True
    if kind.__name__ == "IOError":
        room = free_bytes(folder)
        return room is not None and room < NEARLY_FULL_BYTES
    return False


def is_read_only(exc: BaseException) -> bool:
    """Whether `exc` means the index cannot be written (a read-only file or file system)."""
    if isinstance(exc, OSError) and exc.errno in READ_ONLY_ERRNOS:
        return True
    return type(exc).__module__ == "apsw" and type(exc).__name__ in ("ReadOnlyError", "PermissionsError")
