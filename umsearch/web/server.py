"""A loopback listener for the gallery: uvicorn serving `build_app` on a socket bound before the app is built
(so port 0 can pick a free port and the app still knows the port its Host check must expect)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import TYPE_CHECKING

from ..errors import UmsearchError
from .security import new_token

if TYPE_CHECKING:
    from ..session import Session

DEFAULT_PORT = 8571


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Only loopback unless the user said --allow-remote: anyone who can reach the port sees the photos."""
    if not is_loopback(host) and not allow_remote:
        raise UmsearchError(
            f"--host {host} would let other computers reach your photos: add --allow-remote if you mean it"
        )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        hint = " (is another gallery running? try --port 0 for any free port)" if port else ""
        raise UmsearchError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    # Responses go out as header and body writes: without NODELAY, Nagle's algorithm holds the body until the
    # client's delayed ACK (40 ms on Linux) for every keep-alive request. Accepted sockets inherit it.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def _quiet_server_class() -> type:
    """uvicorn's Server, but Ctrl-C and SIGTERM end it with exit status 0 (uvicorn re-raises the signal once
    it has shut down, which makes a clean stop look like a crash to shells and service managers)."""
    import contextlib
    import signal

    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stop = lambda *_: setattr(self, "should_exit", True)  # noqa: E731
            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return QuietServer


class GalleryServer:
    """The gallery of one session on host:port, in this process (tests, and `umsearch web --no-server`)."""

    def __init__(self, session: Session, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        import uvicorn

        from . import build_app

        self.socket = bind(host, port)
        self.host = host
        self.port = self.socket.getsockname()[1]
        self.token = token or new_token()
        self.app = build_app(session, token=self.token, host=host, port=self.port)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", server_header=False)
        self.server = _quiet_server_class()(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"

    @property
    def origin(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{shown}:{self.port}"

    def serve(self) -> None:
        """Serve until stopped (Ctrl-C or stop())."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.close()

    def start(self) -> GalleryServer:
        """Serve on a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve, name="umsearch-web", daemon=True)
        self._thread.start()
        for _ in range(500):
            if self.server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self.server.started:
            raise UmsearchError("the gallery did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.close()

    def close(self) -> None:
        gallery = getattr(self.app, "gallery", None)
        if gallery is not None:
            gallery.close()
        try:
            self.socket.close()
        except OSError:
            pass
