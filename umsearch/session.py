"""The core every front-end stands on: one index, its model (loaded when first needed) and its image budget.

The CLI, the TUI, the resident service, the watcher and the web gallery all search, embed and report through
a `Session`; none of them reaches into another. A session is safe to share between threads: index reads and
writes are serialised on one connection, the model is loaded once, and model calls take turns through a
`ModelGate` in which queries go before indexing batches (a query waits at most for the batch in flight).

Nothing here imports torch: a search that needs no model (an indexed photo's stored vector, a cached text
query) never loads it. `search(..., allow_model=False)` raises `NeedsModel` instead of loading it, so a light
client can answer from the index alone or hand the request to a process that has the model.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import settings
from .errors import StoreError, UmsearchError
from .kinds import KINDS
from .querylang import SearchRequest, Term
from .runtime import RuntimeRequest, index_dim, query_mismatch, resolve_budget
from .scan import mtime_ns_of
from .search import Hit, browse, combine, load_query_image, search
from .store import FileRow, Store

if TYPE_CHECKING:
    import numpy as np

    from .embed import Embedder, EmbedderInfo
    from .rerank import Qwen3Reranker

# (model id, image budget, runtime) -> model; an embedder factory also takes `dim` (a Qwen3-VL index's --dim).
EmbedderFactory = Callable[..., "Embedder"]
RerankerFactory = Callable[[str, tuple[int, int], RuntimeRequest], "Qwen3Reranker"]


# Texts shorter than this many characters are far below any model's token limit: not even tokenised to check.
_LONG_TEXT_CHARS = 1000


class NeedsModel(UmsearchError):
    """The request needs the model, and the caller asked not to load it here."""


@dataclass(frozen=True)
class SearchQuery:
    """One search, as data (the wire format of the service is exactly this)."""

    request: SearchRequest = field(default_factory=SearchRequest)
    limit: int = settings.DEFAULT_LIMIT
    offset: int = 0  # skip this many of the best matches (pages beyond the first)
    instruction: str | None = None  # overrides the model's query instruction for every term
    rerank: int | None = None  # rescore this many of the best matches with the reranker (None: off)


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    searched: int  # photos in the index when the search ran
    notice: str | None = None  # one line for the user, e.g. the query's settings differ from the index's


@dataclass(frozen=True)
class Details:
    """What a preview says about one indexed photo."""

    file_id: int
    path: str
    width: int | None
    height: int | None
    size: int
    taken: datetime | None  # when taken (EXIF, as the camera's wall clock), else the file time
    camera: str | None
    place: str | None
    kind: str = "photo"


class ModelGate:
    """Turns at the one model: queries go before indexing batches, so a query waits for one batch at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)
        self._busy = False
        self._queries_waiting = 0

    @contextmanager
    def query(self) -> Iterator[None]:
        with self._turn:
            self._queries_waiting += 1
            try:
                self._turn.wait_for(lambda: not self._busy)
            finally:
                self._queries_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._turn:
            self._turn.wait_for(lambda: not self._busy and self._queries_waiting == 0)
            self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._turn:
            self._busy = False
            self._turn.notify_all()


def load_for_session(
    model_id: str, budget: tuple[int, int], runtime: RuntimeRequest, dim: int | None = None
) -> Embedder:
    """The plain way to load a session's model (front-ends with progress to show pass their own factory)."""
    from .embed import load_embedder

    return load_embedder(
        model_id,
        device=runtime.device,
        quant=runtime.quant,
        dtype=runtime.dtype,
        min_image_tokens=budget[0],
        max_image_tokens=budget[1],
        dim=dim,
    )


def load_reranker_for_session(model_id: str, budget: tuple[int, int], runtime: RuntimeRequest) -> Qwen3Reranker:
    """The plain way to load a session's reranker. Candidates are read at the index's image budget (the detail
    the library was indexed at), capped where the reranker's own reference resize stops (1800 tokens)."""
    from .qwen3vl import REFERENCE_MAX_IMAGE_TOKENS
    from .rerank import load_reranker

    return load_reranker(
        model_id,
        device=runtime.device,
        quant=runtime.quant,
        dtype=runtime.dtype,
        min_image_tokens=min(budget[0], REFERENCE_MAX_IMAGE_TOKENS),
        max_image_tokens=budget[1],
    )


class Session:
    """An open index and the model that serves its queries."""

    def __init__(
        self,
        store: Store,
        *,
        model: str | None = None,
        runtime: RuntimeRequest | None = None,
        quality: str | None = None,
        embedder_factory: EmbedderFactory = load_for_session,
        reranker_factory: RerankerFactory = load_reranker_for_session,
        rerank_model: str | None = None,
        frugal: bool = False,
    ) -> None:
        """`model` must match the index's when given (checked now, before any load); without it the index's own
        model serves, or the default for an empty index. `quality` only changes the budget of query images.

        `rerank_model` is the reranker `SearchQuery.rerank` uses (default: settings.default_rerank_model());
        `frugal` keeps one model in memory at a time (a one-shot command: the embedder goes before the
        reranker loads; a resident front-end keeps both)."""
        from .families import family_named, family_of_spec

        self.store = store
        recorded = store.settings()
        if model is None:
            self.model_id = recorded.model_id if recorded else settings.default_model()
        else:
            self.model_id = settings.normalize_model_spec(model)
            store.check_model(self.model_id, family_of_spec(self.model_id).name)
        self.family = family_named(recorded.family) if recorded else family_of_spec(self.model_id)
        self.runtime = runtime or RuntimeRequest()
        self.budget = resolve_budget(recorded, quality, family=self.family)
        self.dim = index_dim(recorded)  # a Qwen3-VL index's --dim: queries shorten the same way
        self.gate = ModelGate()
        self._factory = embedder_factory
        self._embedder: Embedder | None = None
        self.rerank_model = settings.normalize_model_spec(rerank_model or settings.default_rerank_model())
        self._reranker_factory = reranker_factory
        self._reranker: Qwen3Reranker | None = None
        self.frugal = frugal
        self._db = threading.RLock()
        self._loading = threading.Lock()

    @classmethod
    def open(cls, db_path: Path | None = None, *, create: bool = False, **options: Any) -> Session:
        path = db_path or settings.default_db_path()
        return cls(Store.open(path, create=create), **options)

    def close(self) -> None:
        with self._db:
            self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db_path(self) -> Path:
        return self.store.path

    @property
    def max_pixels(self) -> int:
        return self.family.max_pixels(self.budget[1])

    # ---- the model ---------------------------------------------------------------------------------
    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    def embedder(self) -> Embedder:
        """The model, loaded on first use (the first caller loads it; others wait and share it)."""
        with self._loading:
            if self._embedder is None:
                options = {} if self.dim is None else {"dim": self.dim}
                self._embedder = self._factory(self.model_id, self.budget, self.runtime, **options)
            return self._embedder

    @property
    def reranker_loaded(self) -> bool:
        return self._reranker is not None

    def reranker(self) -> Qwen3Reranker:
        """The reranker, loaded on first use (with `frugal`, the embedder is let go first)."""
        with self._loading:
            if self._reranker is None:
                if self.frugal:
                    self._embedder = None
                self._reranker = self._reranker_factory(self.rerank_model, self.budget, self.runtime)
            return self._reranker

    @property
    def model_info(self) -> EmbedderInfo | None:
        """What the loaded model runs on (device, dtype, quantization); None until it is loaded. Never waits
        for a load in progress (a service reports its status while another request loads the model)."""
        embedder = self._embedder
        return None if embedder is None else embedder.info

    def load_model(self) -> Embedder:
        """Load the model now rather than at the first query that needs it (the TUI, the service)."""
        return self.embedder()

    def adopt_embedder(self, embedder: Embedder) -> None:
        """Use a model someone else loaded (the watcher's indexer), so one process holds one copy."""
        with self._loading:
            self._embedder = embedder

    # ---- searching ---------------------------------------------------------------------------------
    def search(
        self, query: SearchQuery, *, allow_model: bool = True, cancelled: Callable[[], bool] | None = None
    ) -> SearchResult:
        """The best matches of `query`, best first (or newest first with sort:date).

        Terms are embedded one by one and combined (query arithmetic, see search.combine). An image-only term
        naming an indexed, unchanged photo uses its stored vector and a text term found in the query cache uses
        the cached vector: neither loads the model. Raises NeedsModel when the model is needed and
        `allow_model` is false; `cancelled` is polled between model calls (a superseded TUI search stops).
        """
        request = query.request
        if query.rerank and request.sort != "score":
            raise UmsearchError("reranking orders the matches by relevance: drop the date sort to use it")
        wanted = query.offset + query.limit
        if not request.positives and not request.negatives and not request.filters.is_empty():
            # Filters alone ("yesterday", "place:Lisbon"): the newest photos that pass them, no model needed.
            with self._db:
                hits, searched = browse(self.store, wanted, request.filters), self.store.counts().indexed
            page = [replace(hit, rank=query.offset + i + 1) for i, hit in enumerate(hits[query.offset : wanted])]
            return SearchResult(page, searched)
        vector = self.query_vector(request, query.instruction, allow_model=allow_model, cancelled=cancelled)
        with self._db:
            hits = search(
                self.store,
                vector,
                max(wanted, query.rerank or 0),
                request.filters,
                min_score=request.min_score,
                sort=request.sort,
            )
            searched = self.store.counts().indexed
            notices = [self._backlog_notice(searched), self._settings_notice(request)]
        notices.append(self._truncation_notice(request, query.instruction))
        if query.rerank:
            if not allow_model:
                raise NeedsModel("reranking needs the reranker model")
            hits = self.rerank(request, hits, query.rerank, cancelled)
        page = [replace(hit, rank=query.offset + i + 1) for i, hit in enumerate(hits[query.offset : wanted])]
        return SearchResult(page, searched, "; ".join(n for n in notices if n) or None)

    def _backlog_notice(self, searched: int) -> str | None:
        """While a run is still embedding (another process, or this one's watcher), how much was searched."""
        from . import backlog

        entry = backlog.read(self.store)
        return entry.notice(searched) if entry is not None else None

    def _truncation_notice(self, request: SearchRequest, instruction: str | None) -> str | None:
        """One line when a term's text is longer than the model reads (a long description is cut)."""
        if self._embedder is None:
            return None  # answered from cached vectors: the notice was given when the text was first embedded
        for term in request.positives + request.negatives:
            if not term.text or len(term.text) < _LONG_TEXT_CHARS:
                continue
            full, kept = self._embedder.text_fit(term.text, with_image=term.image is not None, instruction=instruction)
            if kept < full:
                return f"description cut: the model reads the first {kept} of its {full} tokens"
        return None

    def similar(self, photo: str, query: SearchQuery, *, allow_model: bool = True) -> SearchResult:
        """Photos that look like `photo`, the photo itself left out; the query gives filters, sort, minimum score
        and page (its terms are not used). An indexed, unchanged photo uses its stored vector (no model)."""
        own_id = self.photo_id(photo)
        row = self.photo(own_id) if own_id is not None else None
        filters = query.request.filters
        if own_id is not None and row is not None and row.status == "ok":
            term = Term(photo_id=own_id)
            filters = replace(filters, exclude_ids=filters.exclude_ids | {own_id})
        else:
            term = Term(image=os.path.abspath(photo))
        request = replace(query.request, positives=(term,), negatives=(), filters=filters)
        return self.search(replace(query, request=request), allow_model=allow_model)

    def rerank(
        self, request: SearchRequest, hits: list[Hit], top: int, cancelled: Callable[[], bool] | None = None
    ) -> list[Hit]:
        """`hits` with the first `top` rescored by the reranker against the request's positive terms (their
        words joined, their first picture) and put in its order; each carries its probability in `rerank`."""
        from .rerank import rerank_hits, rerank_query

        def check() -> None:
            if cancelled is not None and cancelled():
                raise Superseded

        def picture(path: str) -> Any:
            return load_query_image(path, self.max_pixels)

        def candidate(hit: Hit) -> Any:
            if hit.kind in ("video", "document"):  # the matching frame or page, as the model saw it
                from .stills import still

                return still(hit.path, self.max_pixels, time=hit.time, page=hit.page)
            return picture(hit.path)

        check()
        reranker = self.reranker()
        terms = request.positives
        images = [picture(image) if (image := self._term_image(t)) else None for t in terms]
        query = rerank_query([t.text for t in terms], images)
        with self.gate.query():
            return rerank_hits(reranker, query, hits, top, candidate, before_each=check)

    def _term_image(self, term: Term) -> str | None:
        return self._photo_path(term.photo_id) if term.photo_id is not None else term.image

    def _settings_notice(self, request: SearchRequest) -> str | None:
        """How this session's model settings differ from those the index was built with (None when alike)."""
        if self._embedder is None:
            return None  # answered from stored or cached vectors: nothing was embedded differently
        has_image = any(t.image is not None or t.photo_id is not None for t in request.positives + request.negatives)
        return query_mismatch(self.store, self._embedder.info, has_image=has_image)

    def query_vector(
        self,
        request: SearchRequest,
        instruction: str | None = None,
        *,
        allow_model: bool = True,
        cancelled: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """One vector for a whole request: every term embedded on its own, then combined (query arithmetic)."""
        if not request.positives:
            raise UmsearchError(_missing_positive(request))
        for term in request.positives + request.negatives:
            if term.image is not None:
                check_image_path(term.image)
        terms = (request.positives, request.negatives)
        positives, negatives = (
            [(self._term_vector(t, instruction, allow_model, cancelled), t.weight) for t in side] for side in terms
        )
        return combine(positives, negatives)

    def _term_vector(
        self, term: Term, instruction: str | None, allow_model: bool, cancelled: Callable[[], bool] | None
    ) -> np.ndarray:
        if term.photo_id is not None and not term.text:
            with self._db:
                return self.store.vector(term.photo_id)
        image = term.image
        if term.photo_id is not None:
            image = self._photo_path(term.photo_id)
        if image is not None and not term.text:
            stored = self._stored_vector_of(image)
            if stored is not None:
                return stored
        text = term.text if term.text and term.text.strip() else None
        if image is None and text is not None:
            cached = self._cached_text_vector(text, instruction)
            if cached is not None:
                return cached
        if not allow_model:
            raise NeedsModel("this query needs the model")
        if cancelled is not None and cancelled():
            raise Superseded
        picture = load_query_image(image, self.max_pixels) if image is not None else None
        embedder = self.embedder()
        with self.gate.query():
            vector = embedder.embed_query(text=text, image=picture, instruction=instruction)
        if image is None and text is not None:
            self._cache_text_vector(text, instruction, vector)
        return vector

    def _photo_path(self, file_id: int) -> str:
        row = self.photo(file_id)
        if row is None:
            raise StoreError("the photo to search from is no longer in the index")
        return row.path

    def _stored_vector_of(self, path: str) -> np.ndarray | None:
        """An indexed photo's own vector, when the file on disk is still the one that was embedded and this
        session embeds images at the index's budget (so embedding it now would give the same vector)."""
        with self._db:
            recorded = self.store.settings()
            if recorded is None or (recorded.min_image_tokens, recorded.max_image_tokens) != self.budget:
                return None
            row = self.store.file_by_path(os.path.abspath(path))
            if row is None or row.status != "ok":
                return None
            try:
                info = os.stat(path)
            except OSError:
                return None
            if (info.st_size, mtime_ns_of(info)) != (row.size, row.mtime_ns):
                return None
            return self.store.vector(row.id)

    # ---- the query cache ----------------------------------------------------------------------------
    def _cache_key(self, text: str, instruction: str | None) -> str:
        identity = "\x00".join((self.model_id, instruction or "", text))
        return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def _cached_text_vector(self, text: str, instruction: str | None) -> np.ndarray | None:
        with self._db:
            return self.store.cached_query(self._cache_key(text, instruction))

    def _cache_text_vector(self, text: str, instruction: str | None, vector: np.ndarray) -> None:
        from .store.health import FileState

        with self._db:
            # Never a silent write to an index deleted, replaced or made read-only under a long-running process.
            if self.store.file_state() is FileState.OK:
                self.store.cache_query(self._cache_key(text, instruction), vector)

    # ---- embedding ---------------------------------------------------------------------------------
    def embed(self, text: str | None = None, image: str | None = None, instruction: str | None = None) -> np.ndarray:
        """The raw vector of a text, an image file, or both fused (what `umsearch embed` prints)."""
        if not (text and text.strip()) and not image:
            raise UmsearchError("give --text, --image, or both")
        if image:
            check_image_path(image)
        embedder = self.embedder()
        with self.gate.query():
            return embed_input(embedder, text, image, instruction, self.max_pixels)

    # ---- browsing ----------------------------------------------------------------------------------
    def photo(self, file_id: int) -> FileRow | None:
        with self._db:
            return self.store.files_by_id([file_id]).get(file_id)

    def photo_id(self, path: str) -> int | None:
        """The id of an indexed photo (any status) at `path`, or None."""
        with self._db:
            row = self.store.file_by_path(os.path.abspath(path))
        return row.id if row is not None else None

    def recent(self, limit: int = settings.DEFAULT_LIMIT) -> list[Hit]:
        """The newest photos (what a browser shows before anything is searched); score None."""
        with self._db:
            return browse(self.store, limit)

    def details(self, file_id: int) -> Details | None:
        from .metadata import mtime_wall_clock, wall_clock_datetime

        with self._db:
            row = self.store.files_by_id([file_id]).get(file_id)
            fact = self.store.facts_by_id([file_id]).get(file_id) if row else None
        if row is None:
            return None
        if fact is not None and fact.taken is not None:
            taken: datetime | None = wall_clock_datetime(fact.taken)
        else:
            taken = wall_clock_datetime(mtime_wall_clock(row.mtime_ns)) if row.mtime_ns else None
        return Details(
            row.id,
            row.path,
            row.width,
            row.height,
            row.size,
            taken,
            fact.camera if fact else None,
            fact.place if fact else None,
            row.kind,
        )

    # ---- reporting ---------------------------------------------------------------------------------
    def status(self, failures: int = settings.FAILURES_SHOWN) -> dict[str, Any]:
        """What `umsearch status --json` prints: counts, model, runtime, failures, watcher."""
        from .library import gone_folders
        from .metadata import geocoder_status
        from .runtime import recorded_runtime
        from .watchstate import read_status

        with self._db:
            counts = self.store.counts()
            recorded = self.store.settings()
            failed_rows = self.store.failures(limit=failures)
            runtime = recorded_runtime(self.store)
            report: dict[str, Any] = {
                "db": str(self.store.path),
                "exists": True,
                "db_bytes": self.store.size_bytes(),
                "indexed": counts.indexed,
                "kinds": {kind: counts.kinds.get(kind, 0) for kind in KINDS},
                "failed": counts.failed,
                "model": recorded.model_id if recorded else None,
                "family": recorded.family if recorded else None,
                "dim": recorded.dim if recorded else None,
                "image_tokens": [recorded.min_image_tokens, recorded.max_image_tokens] if recorded else None,
                "quality": runtime.quality,
                "device": runtime.device,
                "dtype": runtime.dtype,
                "quant": runtime.quant,
                "failures": [{"path": row.path, "reason": row.error} for row in failed_rows],
                "metadata_missing": self.store.count_missing_metadata(),
                "backlog": _backlog_report(self.store),
                "gone": [folder.as_dict() for folder in gone_folders(self.store)],
            }
        report["places"] = geocoder_status() or "on (offline reverse-geocoder: GPS position to city, region, country)"
        watcher = read_status(self.store.path)
        report["watcher"] = (
            None
            if watcher is None
            else {
                "pid": watcher.pid,
                "activity": watcher.activity,
                "roots": list(watcher.roots),
                "updated": watcher.updated,
            }
        )
        return report

    def check_ready(self) -> None:
        """A one-line reason why searching cannot work yet, raised as an error."""
        with self._db:
            indexed = self.store.counts().indexed
        if indexed == 0:
            raise StoreError(f"index {self.store.path} has no photos yet: run 'umsearch index FOLDER' first")


def _backlog_report(store: Store) -> dict[str, Any] | None:
    from . import backlog

    entry = backlog.read(store)
    return None if entry is None else {"pending": entry.pending, "state": entry.state, "pid": entry.pid}


def embed_input(
    embedder: Embedder, text: str | None, image: str | None, instruction: str | None, max_pixels: int
) -> np.ndarray:
    """One model input: a text, an image file, or both fused into one vector."""
    picture = load_query_image(check_image_path(image), max_pixels) if image else None
    return embedder.embed_query(text=text if text and text.strip() else None, image=picture, instruction=instruction)


def check_image_path(path: str) -> str:
    """A query image must be a file: a missing path or a folder is refused before any model loads."""
    if os.path.isdir(path):
        raise UmsearchError(f"{path}: is a folder, not an image (give an image file)")
    if not os.path.isfile(path):
        raise UmsearchError(f"{path}: no such file")
    return path


class Superseded(Exception):
    """A newer search replaced this one before it finished; its result is not wanted."""


def _missing_positive(request: SearchRequest) -> str:
    """Why a request cannot rank anything, in the user's terms."""
    if request.negatives:
        return "a query needs something to look for (words or like:PATH), not only -negative terms"
    if request.sort != "score" or request.min_score is not None:
        return "options narrow a search but cannot rank photos alone: add words or like:PATH"
    return "give something to search for: words, --image PATH, or both"
