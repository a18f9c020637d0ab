"""What the TUI asks of the index and the model, with no UI in it.

Every search the TUI makes goes through `SearchService.run`: the one place to route typed text through
richer query parsing (filters, arithmetic) later.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import StoreError, UmsearchError
from ..metadata import wall_clock_datetime
from ..settings import DEFAULT_RERANK_TOP
from ..store import FileRow, Store

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..rerank import Qwen3Reranker

T = TypeVar("T")
IMAGE_PREFIX = "@"
RECENT_LIMIT = 30
DEFAULT_LIMIT = 30  # a screenful or five: more rows only cost layout time in the UI


class Superseded(Exception):
    """A newer search replaced this one before it finished; its result is not wanted."""


@dataclass(frozen=True)
class ParsedQuery:
    text: str | None
    image: str | None  # a path to an image file


@dataclass(frozen=True)
class Result:
    """One photo shown in the list: a search hit (with score) or a recent photo (score None)."""

    file_id: int
    path: str
    score: float | None


@dataclass(frozen=True)
class Details:
    """What the preview pane says about a photo."""

    path: str
    width: int | None
    height: int | None
    size: int
    date: datetime | None


@dataclass(frozen=True)
class StatusInfo:
    photos: int
    failed: int
    model: str | None
    watcher: str | None  # what the running watcher is doing, None when none runs
    rerank: int | None = None  # how many top matches the reranker rescores, None when it is off


BACKGROUND_THREAD = "umsearch-background"


def call_in_background(fn: Callable[[], T], cancelled: Callable[[], bool], poll_s: float = 0.05) -> T:
    """Run `fn` on a daemon thread and wait for it, unless `cancelled()` turns true first (Superseded).

    A model load or an embedding cannot be interrupted; waiting for it from a daemon thread means a
    superseded search or quitting the app never waits for the model (the work ends on its own).
    """
    box: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=BACKGROUND_THREAD, daemon=True).start()
    while not done.wait(poll_s):
        if cancelled():
            raise Superseded
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def background_work_running() -> bool:
    return any(t.name == BACKGROUND_THREAD and t.is_alive() for t in threading.enumerate())


def parse_query(typed: str) -> ParsedQuery:
    """Split what was typed in the search box into words and an optional query image.

    `@PATH words` (quote a PATH holding spaces: `@"my photo.jpg" at night`) uses that image with the
    words; text that is exactly the path of an existing file is an image query on its own.
    """
    typed = typed.strip()
    if not typed:
        return ParsedQuery(None, None)
    if typed.startswith(IMAGE_PREFIX):
        rest = typed[len(IMAGE_PREFIX) :].strip()
        whole = os.path.expanduser(rest)
        if os.path.isfile(whole):
            return ParsedQuery(None, whole)
        try:
            parts = shlex.split(rest)
        except ValueError:  # an unclosed quote: take the first word as the path
            parts = rest.split()
        if not parts:
            raise UmsearchError("give an image path after @, e.g. @~/Pictures/cat.jpg at night")
        path = os.path.expanduser(parts[0])
        if not os.path.isfile(path):
            raise UmsearchError(f"{parts[0]}: no such image file")
        words = " ".join(parts[1:]).strip()
        return ParsedQuery(words or None, path)
    as_path = os.path.expanduser(typed)
    if os.sep in typed and os.path.isfile(as_path):
        return ParsedQuery(None, as_path)
    return ParsedQuery(typed, None)


def photo_date(row: FileRow, taken: int | None = None) -> datetime | None:
    """The date shown for a photo: when it was taken (EXIF, as the camera's wall clock), else its file time."""
    if taken is not None:
        return wall_clock_datetime(taken)
    return datetime.fromtimestamp(row.mtime_ns / 1e9) if row.mtime_ns else None


def short_model_name(model_id: str | None) -> str | None:
    """A hub id as is, a local model folder by its name (the full path rarely fits a status line)."""
    if model_id is None:
        return None
    if os.path.isabs(model_id):
        return Path(model_id).name or model_id
    return model_id


class SearchService:
    """The index and (lazily) the model behind the TUI; safe to call from worker threads."""

    def __init__(
        self,
        store: Store,
        model_id: str,
        embedder_factory: Callable[[], "Embedder"],
        *,
        max_pixels: int,
        limit: int = DEFAULT_LIMIT,
        reranker_factory: Callable[[], "Qwen3Reranker"] | None = None,
        rerank_top: int = DEFAULT_RERANK_TOP,
    ) -> None:
        self.store = store
        self._reranker_factory = reranker_factory
        self._reranker: Qwen3Reranker | None = None
        self.rerank_top = rerank_top
        self.rerank_on = False  # toggled in the TUI (ctrl+r); rescores the best `rerank_top` matches
        self.model_id = model_id
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.max_pixels = max_pixels
        self.limit = limit
        # One connection and one model: SQLite calls and model calls are serialised, the UI never waits on them.
        self._db_lock = threading.Lock()
        self._model_lock = threading.Lock()

    def close(self) -> None:
        with self._db_lock:
            self.store.close()

    # ---- model -----------------------------------------------------------------------------------
    def load_model(self) -> "Embedder":
        """Load the model once (the first caller loads it, later ones wait and share it)."""
        with self._model_lock:
            if self._embedder is None:
                self._embedder = self._embedder_factory()
            return self._embedder

    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    def toggle_rerank(self) -> bool:
        """Turn reranking on or off (it needs a reranker: UMSEARCH_RERANK_MODEL or --rerank-model)."""
        if self._reranker_factory is None:
            raise UmsearchError("no reranker is configured for this session")
        self.rerank_on = not self.rerank_on
        return self.rerank_on

    def load_reranker(self) -> "Qwen3Reranker":
        with self._model_lock:
            if self._reranker is None:
                assert self._reranker_factory is not None
                self._reranker = self._reranker_factory()
            return self._reranker

    def _rerank(self, hits: list, positives: list, cancelled: Callable[[], bool]) -> list:
        from ..rerank import rerank_hits, rerank_query
        from ..search import load_query_image

        reranker = self.load_reranker()

        def check() -> None:
            if cancelled():
                raise Superseded

        def load(path: str) -> Any:
            return load_query_image(path, self.max_pixels)

        check()
        query = rerank_query([t.text for t in positives], [load(t.image) if t.image else None for t in positives])
        return rerank_hits(reranker, query, hits, self.rerank_top, load, before_each=check)

    # ---- searching -------------------------------------------------------------------------------
    def run(
        self,
        text: str,
        like_file_id: int | None = None,
        *,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> list[Result]:
        """The photos that best match what was typed, optionally "like" an indexed photo.

        - `like_file_id` alone: its stored vector (no model call);
        - `like_file_id` with words: that photo and the words as one fused GME query;
        - typed `@PATH words` or a bare image path: an image (and words) query;
        - plain words: a text query.
        Raises Superseded when `cancelled()` turns true before the (slow) model call.
        """
        from ..filters import Filters
        from ..querylang import Term, parse_search_text
        from ..search import combine, search, term_vector

        parsed = parse_query(text)
        # The words go through the one-line search language: filters (after:, place:, type: …),
        # negatives (-people) and weights work here exactly as in `umsearch query`.
        request = parse_search_text(parsed.text or "")
        image = parsed.image
        if like_file_id is not None and image is None:
            anchor = self.file(like_file_id)
            if anchor is None:
                raise StoreError("the photo to search from is no longer in the index")
            image = anchor.path
        positives = list(request.positives)
        if image is not None:
            # The image and the first words form one fused GME input ("this photo, but at night").
            first = positives.pop(0) if positives and positives[0].image is None else None
            positives.insert(
                0, Term(text=first.text if first else None, image=image, weight=first.weight if first else 1.0)
            )
        if not positives and not request.negatives and request.filters == Filters():
            return self.recent()
        if not positives:
            raise UmsearchError(
                "type something to look for (words, @PATH, or press s on a photo), not only filters or -words"
            )
        stored_only = like_file_id is not None and len(positives) == 1 and positives[0].text is None
        if stored_only and not request.negatives:
            with self._db_lock:
                vector = self.store.vector(like_file_id)  # "more like this": no model call
        else:
            embedder = self.load_model()
            if cancelled():
                raise Superseded
            vectors = []
            for term in positives:
                if stored_only or (like_file_id is not None and term.image == image and term.text is None):
                    with self._db_lock:
                        vectors.append((self.store.vector(like_file_id), term.weight))
                else:
                    vectors.append((term_vector(embedder, term, self.max_pixels), term.weight))
                if cancelled():
                    raise Superseded
            negatives = [(term_vector(embedder, term, self.max_pixels), term.weight) for term in request.negatives]
            vector = combine(vectors, negatives)
        if cancelled():
            raise Superseded
        exclude = like_file_id if positives[0].text is None and positives[0].image == image else None
        limit = (request.limit or self.limit) + (1 if exclude is not None else 0)
        reranking = self.rerank_on and request.sort == "score"
        if reranking:
            limit = max(limit, self.rerank_top + (1 if exclude is not None else 0))
        with self._db_lock:
            hits = search(self.store, vector, limit, request.filters, min_score=request.min_score, sort=request.sort)
        hits = [h for h in hits if h.file_id != exclude]
        if reranking:
            hits = self._rerank(hits, positives, cancelled)
        shown = [Result(h.file_id, h.path, h.rerank if h.rerank is not None else h.score) for h in hits]
        return shown[: request.limit or self.limit]

    def recent(self, limit: int = RECENT_LIMIT) -> list[Result]:
        """The newest photos: what the TUI shows before anything is typed."""
        with self._db_lock:
            rows = self.store.recent_files(limit)
        return [Result(row.id, row.path, None) for row in rows]

    # ---- details ---------------------------------------------------------------------------------
    def file(self, file_id: int) -> FileRow | None:
        with self._db_lock:
            return self.store.files_by_id([file_id]).get(file_id)

    def details(self, file_id: int) -> Details | None:
        row = self.file(file_id)
        if row is None:
            return None
        with self._db_lock:
            facts = self.store.facts_by_id([file_id]).get(file_id)
        return Details(row.path, row.width, row.height, row.size, photo_date(row, facts.taken if facts else None))

    def status(self) -> StatusInfo:
        from ..watchstate import read_status

        with self._db_lock:
            counts = self.store.counts()
            settings = self.store.settings()
        watcher = read_status(self.store.path)
        model = settings.model_id if settings else self.model_id
        return StatusInfo(
            counts.indexed,
            counts.failed,
            short_model_name(model),
            watcher.activity if watcher else None,
            self.rerank_top if self.rerank_on else None,
        )


def check_ready(store: Store) -> None:
    """A one-line reason why searching cannot work yet, raised as an error (the TUI shows it)."""
    if store.counts().indexed == 0:
        raise StoreError(f"index {store.path} has no photos yet: run 'umsearch index FOLDER' first")
