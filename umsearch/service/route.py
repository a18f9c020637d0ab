"""Where a front-end's request is answered: by the running service, from the index alone, by a service started
for it, or in this process.

    service of this index answering, and fit for the request  ->  it answers (no model, no torch here)
    none running, and the index can answer alone                ->  in-process, from stored or cached vectors
    none running, and the model is needed                       ->  start one in the background, then it answers
    --no-server / UMSEARCH_SERVER=off                           ->  everything in-process

A service that cannot serve the request (another umsearch version, another index file, another model, a
runtime or image budget the command asks not to use) is not used, and one line says so: one of an older
version or an index file since replaced is stopped and started anew (unless it is a watcher); otherwise the
request runs in-process. A service that dies while answering is replaced by an in-process answer, with one
line on stderr. Standard library only, like the client.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import __version__, settings
from ..errors import UmsearchError
from ..runtime import RuntimeRequest, quality_budget
from ..session import NeedsModel, SearchQuery, SearchResult, Session
from . import protocol
from .client import ServiceClient, ServiceDied, ServiceUnavailable, find_service, start_service
from .paths import ServicePaths, service_paths

if TYPE_CHECKING:
    from ..store import FileRow

T = TypeVar("T")
SERVER_ENV = "UMSEARCH_SERVER"
IDLE_ENV = "UMSEARCH_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT_S = 600.0
OFF_VALUES = ("off", "0", "no", "false", "never")


def server_wanted(no_server: bool = False) -> bool:
    """Whether front-ends may use (and start) the service: not with --no-server or UMSEARCH_SERVER=off."""
    if no_server:
        return False
    return os.environ.get(SERVER_ENV, "").strip().lower() not in OFF_VALUES


def idle_timeout(given: float | None = None) -> float:
    """Seconds without a request before a service stops (0: never): --idle-timeout, UMSEARCH_IDLE_TIMEOUT, 600."""
    if given is not None:
        return max(0.0, given)
    raw = os.environ.get(IDLE_ENV, "").strip()
    if not raw:
        return DEFAULT_IDLE_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise UmsearchError(f"{IDLE_ENV}={raw}: give a number of seconds (0: never stop)") from None
    if value < 0 or value != value:
        raise UmsearchError(f"{IDLE_ENV}={raw}: give a number of seconds (0: never stop)")
    return value


@contextlib.contextmanager
def _nothing(_: str) -> Iterator[None]:
    yield


@dataclass
class Route:
    """How one command reaches its index: the options it was given and how to report along the way."""

    db: Path
    open_session: Callable[[], Session]  # in-process, loading the model the front-end's way
    model: str | None = None  # --model, when given
    runtime: RuntimeRequest = field(default_factory=RuntimeRequest)
    quality: str | None = None
    rerank_model: str | None = None  # --rerank-model, when given
    server: bool = True
    idle_timeout: float | None = None
    warn: Callable[[str], None] = lambda line: None
    prepare: Callable[[str], None] = lambda model_id: None  # e.g. download a hub model with progress first
    waiting: Callable[[str], AbstractContextManager[object]] = _nothing  # while the service loads the model
    # set by connect(): the running service was found unfit (and a line said so), so answer in-process
    _refused: bool = field(default=False, init=False, repr=False)

    @property
    def paths(self) -> ServicePaths:
        return service_paths(self.db)

    # ---- what commands ask -------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        def local(session: Session, allow_model: bool) -> SearchResult:
            session.check_ready()
            return session.search(query, allow_model=allow_model)

        return self.answer(lambda client: client.search(query), local)

    def similar(self, photo: str, query: SearchQuery) -> SearchResult:
        def local(session: Session, allow_model: bool) -> SearchResult:
            session.check_ready()
            return session.similar(photo, query, allow_model=allow_model)

        return self.answer(lambda client: client.similar(photo, query), local)

    def embed(
        self,
        text: str | None,
        image: str | None,
        instruction: str | None,
        *,
        model_id: str,
        budget: tuple[int, int],
        local: Callable[[], list[float]],
    ) -> list[float]:
        """A raw vector from the index's service when it runs this model (and, for an image, this image
        budget), else in-process: `embed` is not tied to the index, so the index only lends its service."""
        if not self.server or not self.db.exists():
            return local()
        client = self.connect(start=False)
        if client is None:
            try:
                with self.open_session() as session:
                    same_model = session.model_id == model_id and (image is None or session.budget == budget)
            except UmsearchError:
                return local()
            if not same_model:
                return local()
            self.prepare(model_id)
            client = self.connect(start=True)
        if client is None or client.identity.get("model") != model_id:
            return local()
        if image is not None and tuple(client.identity.get("budget") or ()) != budget:
            return local()
        return self._ask(client, lambda c: c.embed(text, image, instruction), lambda: local())

    # ---- the routing -------------------------------------------------------------------------------
    def answer(
        self, remote: Callable[[ServiceClient], T], local: Callable[[Session, bool], T], *, attempts: int = 2
    ) -> T:
        if not self.server:
            return self._in_process(local)
        for _ in range(attempts):
            client = self.connect(start=False)
            if client is None and self._refused:
                return self._in_process(local)
            if client is None:
                with self.open_session() as session:
                    try:
                        return local(session, False)
                    except NeedsModel:
                        model_id = session.model_id
                self.prepare(model_id)
                client = self.connect(start=True)
                if client is None:
                    return self._in_process(local)
            try:
                return self._ask(client, remote, lambda: self._in_process(local))
            except ServiceUnavailable:
                continue  # it stopped (idle) between the handshake and the request: find or start one again
        return self._in_process(local)

    def connect(self, *, start: bool) -> ServiceClient | None:
        """The service fit for this command, started if `start` and none runs; None when there is none or it
        is unfit (then `_refused` is set and a line has been said)."""
        self._refused = False
        paths = self.paths
        client = find_service(paths)
        if client is not None:
            reason = self.unfit(client.identity)
            if reason is None:
                return client
            if self.replaceable(client.identity):
                self.warn(f"{reason}: stopping it and starting a new one")
                client.stop()
                client = None
            else:
                self.warn(f"{reason}: answering in-process ('umsearch server stop' ends it)")
                self._refused = True
                return None
        if not start:
            return None
        try:
            client = start_service(paths, self.service_arguments())
        except UmsearchError as exc:
            self.warn(f"{exc}; answering in-process")
            self._refused = True
            return None
        reason = self.unfit(client.identity)
        if reason is not None:
            self.warn(f"{reason}: answering in-process")
            self._refused = True
            return None
        return client

    def _ask(self, client: ServiceClient, remote: Callable[[ServiceClient], T], fallback: Callable[[], T]) -> T:
        loading = not client.identity.get("model_loaded")
        model = str(client.identity.get("model"))
        try:
            with self.waiting(model) if loading else _nothing(model):
                return remote(client)
        except ServiceDied as exc:
            self.warn(f"{exc}; answering in-process (log: {client.paths.log})")
            return fallback()

    def _in_process(self, local: Callable[[Session, bool], T]) -> T:
        with self.open_session() as session:
            return local(session, True)

    def service_arguments(self) -> list[str]:
        """`umsearch serve` options that make the service this command would have been in-process."""
        arguments = ["--idle-timeout", f"{idle_timeout(self.idle_timeout):g}"]
        arguments += ["--device", self.runtime.device, "--quant", self.runtime.quant, "--dtype", self.runtime.dtype]
        if self.model is not None:
            arguments += ["--model", self.model]
        if self.quality is not None:
            arguments += ["--quality", self.quality]
        if self.rerank_model is not None:
            arguments += ["--rerank-model", self.rerank_model]
        return arguments

    # ---- is the running service the right one? ------------------------------------------------------
    def unfit(self, identity: dict[str, Any]) -> str | None:
        """Why this service must not answer this command (one line), or None."""
        pid = identity.get("pid")
        who = f"the running umsearch service (pid {pid})"
        if identity.get("protocol") != protocol.PROTOCOL or identity.get("version") != __version__:
            return f"{who} is umsearch {identity.get('version')}, not {__version__}"
        if identity.get("index") != str(self.paths.db) or identity.get("index_id") != _file_id(self.paths.db):
            return f"{who} has another index file open than {self.db}"
        if self.model is not None and identity.get("model") != settings.normalize_model_spec(self.model):
            return f"{who} uses model {identity.get('model')}, not {self.model}"
        reranker = identity.get("rerank_model")
        if self.rerank_model is not None and reranker != settings.normalize_model_spec(self.rerank_model):
            return f"{who} reranks with {reranker}, not {self.rerank_model}"
        requested = identity.get("runtime") or {}
        loaded = identity.get("loaded") or {}
        for name in ("device", "quant", "dtype"):
            wanted = getattr(self.runtime, name)
            if wanted != "auto" and wanted not in (requested.get(name), loaded.get(name)):
                running = loaded.get(name) or requested.get(name)
                return f"{who} runs with --{name} {running}, not {wanted}"
        budget = identity.get("budget")
        expected = quality_budget(self.quality) if self.quality else identity.get("index_budget") or budget
        if budget is not None and expected is not None and list(expected) != list(budget):
            low, high = budget
            return f"{who} sizes query images at {low}–{high} visual tokens, not {expected[0]}–{expected[1]}"
        return None

    @staticmethod
    def replaceable(identity: dict[str, Any]) -> bool:
        """An unfit service started for queries alone is replaced when it is stale (older version, replaced
        index file); a watcher is never stopped by a query, nor one that differs only in its options."""
        if identity.get("watching"):
            return False
        stale_version = identity.get("protocol") != protocol.PROTOCOL or identity.get("version") != __version__
        index = identity.get("index")
        stale_index = index is not None and identity.get("index_id") != _file_id(Path(index))
        return stale_version or stale_index


def _file_id(path: Path) -> list[int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino]


class ServiceBackend:
    """What the TUI searches through when a service may be used: a Session-shaped front whose index-only work
    (recent photos, details, status, cached and stored vectors) runs on a local session that never loads the
    model, and whose model work goes to the index's service (started when first needed)."""

    def __init__(self, session: Session, route: Route) -> None:
        self.session = session
        self.route = route
        self._loaded = False
        self._local_model = False  # the service was unusable: the local session loads the model itself

    @property
    def model_id(self) -> str:
        return self.session.model_id

    @property
    def model_loaded(self) -> bool:
        return self._loaded or self.session.model_loaded

    def load_model(self) -> None:
        if self._local_model:
            self.session.load_model()
            return
        client = self.route.connect(start=True)
        if client is None:
            self._local_model = True
            self.session.load_model()
            return
        try:
            client.load_model()
        except (ServiceDied, ServiceUnavailable):
            self._local_model = True
            self.session.load_model()
        self._loaded = True

    def search(
        self, query: SearchQuery, *, allow_model: bool = True, cancelled: Callable[[], bool] | None = None
    ) -> SearchResult:
        try:
            return self.session.search(query, allow_model=False, cancelled=cancelled)
        except NeedsModel:
            if not allow_model:
                raise
        if self._local_model:
            return self.session.search(query, cancelled=cancelled)

        def local(session: Session, allow: bool) -> SearchResult:
            self._local_model = True
            return session.search(query, allow_model=allow, cancelled=cancelled)

        client = self.route.connect(start=True)
        if client is None:
            return local(self.session, True)
        result = self.route._ask(client, lambda c: c.search(query), lambda: local(self.session, True))
        self._loaded = self._loaded or not self._local_model
        return result

    def recent(self, limit: int = settings.DEFAULT_LIMIT) -> list:
        return self.session.recent(limit)

    def details(self, file_id: int) -> Any:
        return self.session.details(file_id)

    def photo(self, file_id: int) -> FileRow | None:
        return self.session.photo(file_id)

    def status(self, failures: int = 20) -> dict[str, Any]:
        return self.session.status(failures)

    def close(self) -> None:
        self.session.close()
