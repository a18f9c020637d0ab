"""The light client: talks HTTP to the service of an index, and starts one when asked.

Standard library only (http.client over a Unix socket, or loopback TCP with the service's token): a query
sent to a warm service costs an interpreter start and a round trip, not a torch import. One connection per
call, so a client is safe to share between threads (the TUI's workers).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import UmsearchError
from ..session import SearchQuery, SearchResult
from . import protocol
from .locks import FileLock, is_locked
from .paths import ServicePaths, ensure_folders, use_tcp

CONNECT_TIMEOUT_S = 5.0
# A first request may load the model (or wait for a batch of the watcher): generous, but not forever.
REQUEST_TIMEOUT_S = 900.0
START_TIMEOUT_S = 60.0  # the service answers before it loads the model: this is only interpreter start-up
STOP_TIMEOUT_S = 10.0
LOG_KEEP_BYTES = 1 << 20  # the log is rolled over to service.log.1 past this at each start


class ServiceUnavailable(UmsearchError):
    """No service answers on this index's socket (none runs, or a dead one left its socket behind)."""


class ServiceDied(UmsearchError):
    """The connection broke after the request was sent: the service stopped while answering."""


class ServiceError(UmsearchError):
    """The service answered with an error; `kind` says which (see protocol.error_body)."""

    def __init__(self, kind: str, message: str, status: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ServiceClient:
    """Requests to one running service. Build it with `find_service` or `start_service`."""

    def __init__(self, paths: ServicePaths, *, port: int | None = None, token: str | None = None) -> None:
        self.paths = paths
        self.port = port
        self.token = token
        self.identity: dict[str, Any] = {}

    # ---- requests ----------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        """One request; the decoded JSON answer. Raises ServiceUnavailable when nothing answers, ServiceDied
        when the connection breaks after sending, ServiceError when the service answers with an error."""
        if self.port is not None:
            connection: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        else:
            connection = _UnixConnection(str(self.paths.socket), timeout)
        try:
            try:
                connection.connect()
            except OSError as exc:
                raise ServiceUnavailable(f"no service answers at {self.paths.socket}: {exc}") from None
            connection.sock.settimeout(timeout)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self.token is not None:
                headers["Authorization"] = f"Bearer {self.token}"
            data = None if body is None else protocol.dumps(body)
            try:
                connection.request(method, protocol.API + path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise ServiceDied(f"the umsearch service stopped while answering ({type(exc).__name__})") from None
        finally:
            connection.close()
        try:
            answer = json.loads(raw.decode("utf-8", "surrogatepass")) if raw else None
        except ValueError:
            raise ServiceDied("the umsearch service sent a broken answer") from None
        if response.status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                raise ServiceError(str(error.get("kind")), str(error.get("message")), response.status)
            raise ServiceError("internal", f"the umsearch service answered HTTP {response.status}", response.status)
        return answer

    def hello(self) -> dict[str, Any]:
        """Who answers: umsearch version, protocol, index, model, runtime, pid (also kept as `identity`)."""
        answer = self.call("GET", "/hello", timeout=CONNECT_TIMEOUT_S)
        if not isinstance(answer, dict) or answer.get("service") != protocol.SERVICE_NAME:
            raise ServiceUnavailable(f"something other than an umsearch service answers at {self.paths.socket}")
        self.identity = answer
        return answer

    @property
    def pid(self) -> int | None:
        pid = self.identity.get("pid")
        return pid if isinstance(pid, int) else None

    def search(self, query: SearchQuery) -> SearchResult:
        return protocol.decode_result(self.call("POST", "/search", protocol.encode_query(query)))

    def similar(self, photo: str, query: SearchQuery) -> SearchResult:
        body = {"photo": photo, "query": protocol.encode_query(query)}
        return protocol.decode_result(self.call("POST", "/similar", body))

    def embed(self, text: str | None, image: str | None, instruction: str | None) -> list[float]:
        answer = self.call("POST", "/embed", {"text": text, "image": image, "instruction": instruction})
        return [float(x) for x in answer["vector"]]

    def load_model(self) -> dict[str, Any]:
        return self.call("POST", "/load")

    def status(self) -> dict[str, Any]:
        return self.call("GET", "/status", timeout=CONNECT_TIMEOUT_S)

    def start_web(self, *, host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False) -> dict[str, Any]:
        """Ask the service to serve the web gallery on loopback TCP: `{"url", "host", "port", "token"}`."""
        return self.call("POST", "/web", {"host": host, "port": port, "allow_remote": allow_remote})

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask the service to stop and wait until it has (its lock is free)."""
        try:
            self.call("POST", "/stop", {}, timeout=CONNECT_TIMEOUT_S)
        except (ServiceUnavailable, ServiceDied):
            pass
        if not wait_until_stopped(self.paths, timeout):
            raise UmsearchError(f"the umsearch service (pid {self.pid}) did not stop within {timeout:.0f} s")


def wait_until_stopped(paths: ServicePaths, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_locked(paths.service_lock):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# ---- finding and starting a service -----------------------------------------------------------------
def find_service(paths: ServicePaths) -> ServiceClient | None:
    """The service that answers for this index, handshake done (`client.identity`), or None."""
    client = _client_for(paths)
    if client is None:
        return None
    try:
        client.hello()
    except (ServiceUnavailable, ServiceDied, ServiceError):
        return None
    return client


def _client_for(paths: ServicePaths) -> ServiceClient | None:
    if use_tcp():
        try:
            record = json.loads(paths.tcp.read_text(encoding="utf-8"))
            return ServiceClient(paths, port=int(record["port"]), token=str(record["token"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    if not os.path.exists(paths.socket):
        return None
    return ServiceClient(paths)


def is_stale(paths: ServicePaths) -> bool:
    """A socket (or TCP record) left by a service that died without cleaning up: no process holds its lock."""
    leftover = paths.tcp.exists() or os.path.lexists(paths.socket)
    return leftover and not is_locked(paths.service_lock)


def remove_stale(paths: ServicePaths) -> None:
    if not is_stale(paths):
        return
    for path in (paths.socket, paths.tcp):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def start_service(paths: ServicePaths, arguments: Sequence[str], *, timeout: float = START_TIMEOUT_S) -> ServiceClient:
    """The running service of this index, started in the background if none answers.

    Starters take turns on a lock file: of two clients starting at the same moment, the second finds the
    first one's service answering and uses it. The service runs in its own session (no terminal; Ctrl-C in
    the shell that started it does not stop it), its output appended to its log.
    """
    ensure_folders(paths)
    starting = FileLock(paths.start_lock)
    if not starting.acquire(timeout):
        raise UmsearchError(f"another umsearch has been starting the service of {paths.db} for {timeout:.0f} s")
    try:
        running = find_service(paths)
        if running is not None:
            return running
        if is_locked(paths.service_lock):
            # A service that holds its lock but does not answer is still starting (umsearch serve by hand).
            return _wait_ready(paths, None, timeout)
        remove_stale(paths)
        command = [sys.executable, "-m", "umsearch", "serve", "--db", str(paths.db), *arguments]
        with _open_log(paths.log) as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} started by pid {os.getpid()}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        client = _wait_ready(paths, process, timeout)
    finally:
        starting.release()
    # Reap it when it ends, so a long-lived client (the TUI) keeps no zombie; a short one just exits.
    threading.Thread(target=process.wait, name="umsearch-service-reaper", daemon=True).start()
    return client


def _open_log(path: Path) -> BinaryIO:
    try:
        if path.stat().st_size > LOG_KEEP_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab")


def _wait_ready(paths: ServicePaths, process: subprocess.Popen | None, timeout: float) -> ServiceClient:
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        client = find_service(paths)
        if client is not None:
            return client
        if process is not None and process.poll() is not None:
            raise UmsearchError(f"the umsearch service could not start: {last_log_line(paths.log)}")
        if time.monotonic() > deadline:
            raise UmsearchError(f"the umsearch service did not answer within {timeout:.0f} s (log: {paths.log})")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)


def last_log_line(path: Path) -> str:
    """The service's last words (its one-line error when it could not start)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return (lines[-1] if lines else "no reason given") + f" (log: {path})"
