"""The service process: the index's Session behind a small JSON API, on a private Unix socket.

Starlette routes the requests and uvicorn (its h11 protocol, pure Python) speaks HTTP; the server runs on a
thread of its own with its own event loop, so the main thread stays free for what the process is for:
`umsearch serve` waits for a signal or the idle timeout, `umsearch watch` runs its watcher. Model work runs
on worker threads (`Session` is thread-safe and its `ModelGate` lets a query go before the watcher's next
batch), never on the event loop, so a slow forward never stops the service from answering `status`.

Faults stay contained: a body that is not JSON or does not fit is a 400, one over `MAX_BODY` a 413, a body
that stops arriving, or headers that stop half-way, a 408 after `READ_TIMEOUT_S`
(`GuardedH11Protocol`); anything unexpected is a 500 with one line and a traceback in the log.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from .. import __version__
from ..errors import ModelError, UmsearchError
from ..runtime import RuntimeRequest
from ..session import Session, load_for_session, load_reranker_for_session
from . import protocol
from .locks import FileLock
from .paths import ServicePaths, ensure_folders, service_paths, use_tcp, write_private_file

log = logging.getLogger("umsearch.service")

# A request whose headers or body have not fully arrived after this many seconds is not coming: it is answered
# 408 and its connection closed (UMSEARCH_SERVICE_READ_TIMEOUT changes it; the tests use 1 s).
READ_TIMEOUT_S = float(os.environ.get("UMSEARCH_SERVICE_READ_TIMEOUT") or 10.0)
GRACEFUL_STOP_S = 2.0  # requests in flight get this long to finish when the service stops
DEFAULT_IDLE_TIMEOUT_S = 600.0
IDLE_EXEMPT = ("/v1/status",)  # looking at a service does not keep it alive


class _TooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus an answer to a request whose headers stop half-way: after
    READ_TIMEOUT_S, a 408 and the connection closed (uvicorn itself would wait for them forever)."""

    _guard: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in: the application's body timeout takes over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._guard = self.loop.call_later(READ_TIMEOUT_S, self._headers_overdue)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _headers_overdue(self) -> None:
        self._guard = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        if self.conn.trailing_data[0]:
            body = protocol.dumps(protocol.error_body("timeout", "the request's headers did not arrive in time"))
            head = (
                "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
        self.transport.close()


# ---- what the service knows about itself --------------------------------------------------------------
@dataclass
class ServiceState:
    session: Session
    paths: ServicePaths
    idle_timeout: float
    watching: bool
    token: str | None = None  # TCP only: every request carries it
    started: float = field(default_factory=time.time)
    requests: int = 0
    in_flight: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    web: dict[str, Any] | None = None
    stop: Callable[[str], None] = lambda reason: None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, path: str) -> None:
        with self._lock:
            self.in_flight += 1
            if path not in IDLE_EXEMPT:
                self.last_activity = time.monotonic()

    def end(self, path: str) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests += 1
            if path not in IDLE_EXEMPT:
                self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self.in_flight else time.monotonic() - self.last_activity

    def identity(self) -> dict[str, Any]:
        session = self.session
        # The file this service opened, not whatever the path names now: a client compares the two and so tells
        # a service that still reads a deleted or replaced index from one that serves the index at the path.
        opened = session.store.identity
        index_id = None if opened is None else [opened.device, opened.inode]
        return {
            "service": protocol.SERVICE_NAME,
            "protocol": protocol.PROTOCOL,
            "version": __version__,
            "pid": os.getpid(),
            "index": str(self.paths.db),
            "index_id": index_id,
            "model": session.model_id,
            "model_loaded": session.model_loaded,
            "rerank_model": session.rerank_model,
            "budget": list(session.budget),
            "index_budget": self._index_budget(),
            "runtime": vars(session.runtime),
            "loaded": self._loaded_runtime(),
            "watching": self.watching,
        }

    def _index_budget(self) -> list[int] | None:
        with self.session._db:
            recorded = self.session.store.settings()
        return None if recorded is None else [recorded.min_image_tokens, recorded.max_image_tokens]

    def _loaded_runtime(self) -> dict[str, str] | None:
        info = self.session.model_info
        return None if info is None else {"device": info.device, "dtype": info.dtype, "quant": info.quant}

    def status(self) -> dict[str, Any]:
        loaded = self._loaded_runtime()
        runtime = loaded or vars(self.session.runtime)
        return {
            **self.identity(),
            "device": runtime["device"],
            "dtype": runtime["dtype"],
            "quant": runtime["quant"],
            "uptime_s": round(time.time() - self.started, 3),
            "requests": self.requests,
            "in_flight": max(0, self.in_flight - 1),  # not counting the status request itself
            "rss_bytes": current_rss(),
            "peak_rss_bytes": peak_rss(),
            "open_files": open_files(),
            "idle_timeout_s": self.idle_timeout,
            "idle_s": round(self.idle_for(), 3),
            "transport": "tcp" if self.token else "unix",
            "socket": None if self.token else str(self.paths.socket),
            "log": str(self.paths.log),
            "web": None if self.web is None else {k: self.web[k] for k in ("url", "host", "port")},
        }


def current_rss() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def open_files() -> int | None:
    """Open file descriptors (a long-running service must not leak them); None where /proc is absent."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def peak_rss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ---- the application --------------------------------------------------------------------------------
def json_response(value: Any, status: int = 200) -> Response:
    return Response(protocol.dumps(value), status_code=status, media_type="application/json")


def error_response(status: int, kind: str, message: str, *, close: bool = False) -> Response:
    response = json_response(protocol.error_body(kind, message), status)
    if close:
        response.headers["connection"] = "close"
    return response


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > protocol.MAX_BODY):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > protocol.MAX_BODY:
                raise _TooLarge
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), READ_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise _BodyTimeout from None
    return b"".join(chunks)


async def in_thread(work: Callable[[], Any]) -> Any:
    """Blocking work (the index, the model) off the event loop. Abandoned, not awaited, when the service stops
    mid-request: the process exits without waiting for a model forward."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)


Endpoint = Callable[[Request, ServiceState], Awaitable[Any]]


def endpoint(handler: Endpoint, state: ServiceState) -> Callable[[Request], Awaitable[Response]]:
    """Every route: the answer as JSON, or an error body with one line; never an unanswered request."""

    async def route(request: Request) -> Response:
        try:
            return json_response(await handler(request, state))
        except protocol.ProtocolError as exc:
            return error_response(400, "bad_request", str(exc))
        except _TooLarge:
            return error_response(413, "too_large", f"the request body is over {protocol.MAX_BODY} bytes", close=True)
        except _BodyTimeout:
            return error_response(408, "timeout", "the request body did not arrive in time", close=True)
        except ModelError as exc:
            log.error("model: %s", exc)
            return error_response(503, "model", str(exc))
        except UmsearchError as exc:
            return error_response(422, "user", str(exc))
        except Exception as exc:
            log.exception("unexpected error answering %s", request.url.path)
            message = f"the umsearch service failed: {type(exc).__name__}: {exc} (log: {state.paths.log})"
            return error_response(500, "internal", message)

    return route


async def body_json(request: Request) -> Any:
    return protocol.loads(await read_body(request))


async def hello(request: Request, state: ServiceState) -> Any:
    return state.identity()


async def status(request: Request, state: ServiceState) -> Any:
    return state.status()


async def search(request: Request, state: ServiceState) -> Any:
    query = protocol.decode_query(await body_json(request))

    def work() -> Any:
        state.session.check_ready()
        return protocol.encode_result(state.session.search(query))

    return await in_thread(work)


async def similar(request: Request, state: ServiceState) -> Any:
    photo, query = protocol.decode_similar(await body_json(request))

    def work() -> Any:
        state.session.check_ready()
        return protocol.encode_result(state.session.similar(photo, query))

    return await in_thread(work)


async def embed(request: Request, state: ServiceState) -> Any:
    text, image, instruction = protocol.decode_embed(await body_json(request))
    vector = await in_thread(lambda: state.session.embed(text, image, instruction))
    return {"vector": [float(x) for x in vector]}


async def load(request: Request, state: ServiceState) -> Any:
    await in_thread(state.session.load_model)
    return state.identity()


async def stop(request: Request, state: ServiceState) -> Any:
    await read_body(request)
    if state.watching:
        raise UmsearchError(f"this service is part of umsearch watch (pid {os.getpid()}): stop the watch to stop it")
    state.stop("asked to stop")
    return {"stopping": True, "pid": os.getpid()}


async def web(request: Request, state: ServiceState) -> Any:
    data = protocol.loads(await read_body(request) or b"{}")
    if not isinstance(data, dict):
        raise protocol.ProtocolError("the web request must be a JSON object")
    host = data.get("host", "127.0.0.1")
    port = data.get("port", 0)
    allow_remote = data.get("allow_remote", False) is True
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise protocol.ProtocolError("'host' must be a string and 'port' a number from 0 to 65535")
    if state.web is not None:
        return state.web
    hosting: ServiceHost = request.app.state.host
    state.web = await hosting.start_web(host, port, allow_remote=allow_remote)
    return state.web


ROUTES: dict[str, tuple[str, Endpoint]] = {
    "/hello": ("GET", hello),
    "/status": ("GET", status),
    "/search": ("POST", search),
    "/similar": ("POST", similar),
    "/embed": ("POST", embed),
    "/load": ("POST", load),
    "/stop": ("POST", stop),
    "/web": ("POST", web),
}


def build_api(state: ServiceState) -> Starlette:
    routes = [
        Route(protocol.API + path, endpoint(handler, state), methods=[method])
        for path, (method, handler) in ROUTES.items()
    ]
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        status_code = getattr(exc, "status_code", 404)
        kind = "not_found" if status_code == 404 else "bad_request"
        return error_response(status_code, kind, f"no such request: {request.method} {request.url.path}")

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_found)
    return Tracked(app, state, token=state.token)  # type: ignore[return-value]


class Tracked:
    """ASGI middleware: counts requests and in-flight work (for status and the idle timeout) and, on TCP,
    refuses any request without the service's token."""

    def __init__(self, app: Any, state: ServiceState, *, token: str | None) -> None:
        self.app = app
        self.state = state
        self.token = token

    @property
    def inner(self) -> Any:
        return self.app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None and not self._authorised(scope):
            await error_response(401, "unauthorised", "this request lacks the service's token")(scope, receive, send)
            return
        path = scope.get("path", "")
        self.state.begin(path)
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.end(path)

    def _authorised(self, scope: dict[str, Any]) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, f"Bearer {self.token}".encode())
        return False


# ---- hosting: sockets, the server thread, stopping ---------------------------------------------------
def uvicorn_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="asyncio",
        http=GuardedH11Protocol,
        ws="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=int(GRACEFUL_STOP_S),
        h11_max_incomplete_event_size=64 * 1024,
        limit_concurrency=128,
    )


class ServiceHost:
    """Owns the service's lock, socket and server thread. `start()` returns once the socket accepts."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.paths = state.paths
        self._lock = FileLock(self.paths.service_lock)
        self._socket: socket.socket | None = None
        self._socket_inode: int | None = None
        self._servers: list[uvicorn.Server] = []
        self._web_tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        ensure_folders(self.paths)
        if not self._lock.try_acquire():
            raise UmsearchError(f"a service already runs for {self.paths.db} ('umsearch server status' shows it)")
        try:
            self._socket = self._bind()
            app = build_api(self.state)
            app.inner.state.host = self  # type: ignore[attr-defined]
            self._servers.append(uvicorn.Server(uvicorn_config(app)))
            self._thread = threading.Thread(target=self._run, name="umsearch-service", daemon=True)
            self._thread.start()
            self._ready.wait(30)
            if self._error is not None:
                raise self._error
        except BaseException:
            self.close()
            raise
        log.warning(
            "umsearch %s service (pid %d) for %s on %s", __version__, os.getpid(), self.paths.db, self.endpoint()
        )

    def endpoint(self) -> str:
        if self.state.token is not None and self._socket is not None:
            return f"127.0.0.1:{self._socket.getsockname()[1]} (token in {self.paths.tcp})"
        return str(self.paths.socket)

    def _bind(self) -> socket.socket:
        if use_tcp():
            sock = socket.create_server(("127.0.0.1", 0))
            self.state.token = secrets.token_urlsafe(32)
            record = {"port": sock.getsockname()[1], "token": self.state.token, "pid": os.getpid()}
            write_private_file(self.paths.tcp, protocol.dumps(record).decode("ascii"))
            return sock
        path = str(self.paths.socket)
        try:
            os.unlink(path)  # we hold the service lock: whatever is there was left by a dead service
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket is born 0600: no moment in which another user could connect
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise UmsearchError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        sock.listen(128)
        self._socket_inode = os.stat(path).st_ino
        return sock

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            log.exception("the service's server stopped")
        finally:
            self._ready.set()
            self.stopped.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        server = self._servers[0]
        task = asyncio.create_task(server.serve(sockets=[self._socket]))  # type: ignore[list-item]
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        self._ready.set()
        await task
        for other in self._servers[1:]:  # the web gallery's server, if one was started, stops with the service
            other.should_exit = True
        if self._web_tasks:
            await asyncio.wait(self._web_tasks, timeout=GRACEFUL_STOP_S + 0.5)

    async def start_web(self, host: str, port: int, *, allow_remote: bool) -> dict[str, Any]:
        """The web gallery's loopback listener, served by this process with this session (umsearch.web)."""
        if host not in ("127.0.0.1", "localhost", "::1") and not allow_remote:
            raise UmsearchError(f"the gallery listens on loopback only; {host} needs allow_remote")
        from ..web import build_app
        from ..web.server import bind

        sock = bind(host, port)  # TCP_NODELAY: keep-alive thumbnails would otherwise wait 40 ms each
        actual = sock.getsockname()[1]
        token = secrets.token_urlsafe(32)
        app = build_app(self.state.session, token=token, host=host, port=actual)
        server = uvicorn.Server(uvicorn_config(Tracked(app, self.state, token=None)))
        self._servers.append(server)
        self._web_tasks.append(asyncio.get_running_loop().create_task(server.serve(sockets=[sock])))
        shown = f"[{host}]" if ":" in host else host
        return {"url": f"http://{shown}:{actual}/?token={token}", "host": host, "port": actual, "token": token}

    def request_stop(self) -> None:
        for server in self._servers:
            server.should_exit = True

    def close(self, timeout: float = GRACEFUL_STOP_S + 1.5) -> None:
        """Stop serving (requests in flight get GRACEFUL_STOP_S), remove the socket, release the lock."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        if self._lock.held:
            self._remove_endpoint()
            self._lock.release()

    def _remove_endpoint(self) -> None:
        if self.state.token is not None:
            try:
                os.unlink(self.paths.tcp)
            except FileNotFoundError:
                pass
            return
        try:
            if os.stat(self.paths.socket).st_ino == self._socket_inode:
                os.unlink(self.paths.socket)
        except FileNotFoundError:
            pass


# ---- the two ways a service runs ---------------------------------------------------------------------
def quiet_loading(model_id: str, budget: tuple[int, int], runtime: RuntimeRequest, dim: int | None = None) -> Any:
    """The model as the service loads it: logged, and any failure one ModelError line for the client."""
    log.warning("loading model %s", model_id)
    started = time.monotonic()
    try:
        embedder = load_for_session(model_id, budget, runtime, dim)
    except UmsearchError as exc:
        raise ModelError(str(exc)) from None
    except Exception as exc:
        raise ModelError(f"cannot load the model {model_id}: {type(exc).__name__}: {exc}") from None
    info = embedder.info
    log.warning(
        "model loaded in %.1f s (%s, %s, quantization %s)",
        time.monotonic() - started,
        info.device,
        info.dtype,
        info.quant,
    )
    return embedder


def quiet_reranker_loading(model_id: str, budget: tuple[int, int], runtime: RuntimeRequest) -> Any:
    """The reranker as the service loads it (a query asked for --rerank): logged, failures one line."""
    log.warning("loading reranker %s", model_id)
    started = time.monotonic()
    try:
        reranker = load_reranker_for_session(model_id, budget, runtime)
    except UmsearchError as exc:
        raise ModelError(str(exc)) from None
    except Exception as exc:
        raise ModelError(f"cannot load the reranker {model_id}: {type(exc).__name__}: {exc}") from None
    log.warning("reranker loaded in %.1f s (%s)", time.monotonic() - started, reranker.info.device)
    return reranker


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("umsearch")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def serve(
    db: Path,
    *,
    runtime: RuntimeRequest,
    model: str | None,
    quality: str | None,
    idle_timeout: float,
    rerank_model: str | None = None,
) -> None:
    """`umsearch serve`: answer until SIGTERM/SIGINT/SIGHUP, `server stop` or `idle_timeout` seconds without a
    request (0: never). Returns normally once stopped; the caller exits at once (no torch teardown)."""
    import signal

    setup_logging()
    paths = service_paths(db)
    session = Session.open(
        paths.db,
        model=model,
        runtime=runtime,
        quality=quality,
        embedder_factory=quiet_loading,
        reranker_factory=quiet_reranker_loading,
        rerank_model=rerank_model,
    )
    stopping = threading.Event()
    reason = {"why": ""}

    def stop(why: str) -> None:
        reason["why"] = reason["why"] or why
        stopping.set()

    state = ServiceState(session, paths, idle_timeout=idle_timeout, watching=False, stop=stop)
    host = ServiceHost(state)
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, lambda signum, frame: stop(f"signal {signal.Signals(signum).name}"))
    host.start()
    while not stopping.wait(0.25):
        if host.stopped.is_set():
            stop("the server stopped")
        elif idle_timeout > 0 and state.idle_for() >= idle_timeout:
            stop(f"idle for {idle_timeout:g} s")
        elif (gone := index_gone(session)) is not None:
            stop(gone)  # answering from a file nobody can see any more helps no one; a client starts a new service
    log.warning("stopping: %s", reason["why"])
    host.close()
    if state.in_flight == 0:
        session.close()
    log.warning("stopped")


def index_gone(session: Session) -> str | None:
    """Why the service's index file is no longer the one at its path (deleted or replaced), or None."""
    from ..store.health import FileState, describe_state

    state = session.store.file_state()
    if state in (FileState.DELETED, FileState.REPLACED):
        return describe_state(state, session.db_path)
    return None


def host_for_watcher(
    session: Session, stop_watching: Callable[[], None], *, warn: Callable[[str], None]
) -> ServiceHost | None:
    """`umsearch watch` serving queries from its own session (one model in memory). A query-only service already
    running for the index is stopped first (under the start lock, so no client starts another meanwhile).
    When the service cannot start, the watcher still watches (one line says why)."""
    from .client import find_service

    setup_logging()
    paths = service_paths(session.db_path)
    state = ServiceState(session, paths, idle_timeout=0.0, watching=True, stop=lambda why: stop_watching())
    host = ServiceHost(state)
    try:
        ensure_folders(paths)
        with FileLock(paths.start_lock) as starting:
            if not starting.acquire(30):
                raise UmsearchError("another umsearch is starting a service for this index")
            running = find_service(paths)
            if running is not None:
                log.warning("stopping the query service (pid %s): the watcher answers queries now", running.pid)
                running.stop()
            host.start()
    except UmsearchError as exc:
        warn(f"not answering queries: {exc}")
        return None
    return host
