"""Where the service of an index lives: a private folder beside the index with its socket, log and locks.

    ~/.local/share/umsearch/index.db            the index
    ~/.local/share/umsearch/index.db.service/   the service's folder (0700)
        socket                                  its Unix socket (0600)
        service.log                             what it said (start, model load, errors, stop)
        service.lock                            held by the running service for its whole life
        start.lock                              held by whoever is starting one (so two starts make one)
        tcp.json                                port and token, only where Unix sockets are unavailable (0600)

A Unix socket path is limited to about 100 bytes. When the index lies deeper than that allows, the socket
moves to a private folder of the user's own: `$XDG_RUNTIME_DIR/umsearch/` where the system provides one, else
`<temp>/umsearch-<uid>/` (created 0700 and refused unless it is a real folder owned by the user with no access
for others), named by a hash of the index path. Everything else stays beside the index.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UmsearchError

FOLDER_SUFFIX = ".service"
# sun_path holds 108 bytes on Linux and 104 on macOS and the BSDs, each with a terminating NUL.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class ServicePaths:
    db: Path  # the index, absolute with symlinks resolved: one service per index file, however it is named
    folder: Path
    socket: Path
    log: Path
    service_lock: Path
    start_lock: Path
    tcp: Path

    @property
    def socket_is_fallback(self) -> bool:
        return self.socket.parent != self.folder


def index_path(db: Path | str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(db))))


def service_paths(db: Path | str) -> ServicePaths:
    db = index_path(db)
    folder = db.with_name(db.name + FOLDER_SUFFIX)
    sock = folder / "socket"
    if len(os.fsencode(str(sock))) > MAX_SOCKET_PATH:
        name = hashlib.blake2b(os.fsencode(str(db)), digest_size=10).hexdigest() + ".sock"
        sock = fallback_socket_folder() / name
        if len(os.fsencode(str(sock))) > MAX_SOCKET_PATH:
            sock = _temp_socket_folder() / name
    return ServicePaths(
        db=db,
        folder=folder,
        socket=sock,
        log=folder / "service.log",
        service_lock=folder / "service.lock",
        start_lock=folder / "start.lock",
        tcp=folder / "tcp.json",
    )


def fallback_socket_folder() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "umsearch"
    return _temp_socket_folder()


def _temp_socket_folder() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"umsearch-{uid}"


def use_tcp() -> bool:
    """Loopback TCP with a token where Unix sockets are unavailable (UMSEARCH_SERVICE_TRANSPORT=tcp forces it,
    so the TCP path is tested on every platform)."""
    forced = os.environ.get("UMSEARCH_SERVICE_TRANSPORT", "").strip().lower()
    if forced in ("tcp", "unix"):
        return forced == "tcp"
    return not hasattr(socket, "AF_UNIX")


def ensure_private_folder(path: Path) -> None:
    """Create `path` readable by its owner only, or check that it already is (never follow a planted link)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = os.lstat(path)
    except OSError as exc:
        raise UmsearchError(f"cannot create the service folder {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UmsearchError(f"{path} should be a folder of the umsearch service but is not; remove it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise UmsearchError(f"{path} belongs to another user; the umsearch service will not use it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise UmsearchError(f"cannot make {path} private: {exc.strerror or exc}") from None


def ensure_folders(paths: ServicePaths) -> None:
    ensure_private_folder(paths.folder)
    if paths.socket_is_fallback:
        ensure_private_folder(paths.socket.parent)


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to a new 0600 file and move it into place, so a reader never sees half of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
