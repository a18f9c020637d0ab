"""What the TUI asks of its session, with no UI in it: typed text in, results and status lines out."""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..errors import UmsearchError
from ..filters import Filters
from ..querylang import Term, parse_search_text
from ..session import SearchQuery, Session, Superseded
from ..settings import DEFAULT_LIMIT, DEFAULT_RERANK_TOP

if TYPE_CHECKING:
    from ..service.route import ServiceBackend

T = TypeVar("T")
IMAGE_PREFIX = "@"
RECENT_LIMIT = DEFAULT_LIMIT


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
    kind: str = "photo"
    time: float | None = None  # a video: the best-matching frame's time (None: its start)
    page: int | None = None  # a document: the best-matching page (None: the first)

    @property
    def where(self) -> str:
        """ "▶ 1:23" for a video's moment, "p. 3" for a document's page, else ""."""
        from ..search import clock

        if self.time is not None:
            return f"▶ {clock(self.time)}"
        return f"p. {self.page}" if self.page is not None else ""


@dataclass(frozen=True)
class Details:
    """What the preview pane says about a photo."""

    path: str
    width: int | None
    height: int | None
    size: int
    date: datetime | None
    kind: str = "photo"


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


def short_model_name(model_id: str | None) -> str | None:
    """A hub id as is, a local model folder by its name (the full path rarely fits a status line)."""
    if model_id is None:
        return None
    if os.path.isabs(model_id):
        return Path(model_id).name or model_id
    return model_id


class SearchService:
    """What the TUI asks of its session, in the TUI's terms (typed text, results, a status line).

    The searching itself is `Session.search`, the same as the CLI's and the service's: this class only turns
    what was typed (and "more like this") into a `SearchQuery`. `session` is the index's Session (the model
    in this process) or a ServiceBackend (the model in the index's resident service; same answers). Safe to
    call from worker threads.
    """

    def __init__(
        self, session: Session | ServiceBackend, *, limit: int = DEFAULT_LIMIT, rerank_top: int = DEFAULT_RERANK_TOP
    ) -> None:
        self.session = session
        self.limit = limit
        self.last_notice: str | None = None  # the latest search's one-line notice (a description cut short)
        self.rerank_top = rerank_top
        self.rerank_on = False  # toggled in the TUI (ctrl+r): the best `rerank_top` matches are rescored

    def toggle_rerank(self) -> bool:
        self.rerank_on = not self.rerank_on
        return self.rerank_on

    def close(self) -> None:
        self.session.close()

    def load_model(self) -> object:
        """Load the model once (the first caller loads it, later ones wait and share it)."""
        return self.session.load_model()

    @property
    def model_loaded(self) -> bool:
        return self.session.model_loaded

    def run(
        self,
        text: str,
        like_file_id: int | None = None,
        *,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> list[Result]:
        """The photos that best match what was typed, optionally "like" an indexed photo.

        - `like_file_id` alone: its stored vector (no model call), the photo itself left out;
        - `like_file_id` with words: that photo and the words as one fused query;
        - typed `@PATH words` or a bare image path: an image (and words) query;
        - plain words: a text query (filters, negatives and weights as in `umsearch query`).
        Raises Superseded when `cancelled()` turns true before a (slow) model call.
        """
        parsed = parse_query(text)
        request = parse_search_text(parsed.text or "")
        positives = list(request.positives)
        if parsed.image is not None or like_file_id is not None:
            # The image and the first words form one fused input ("this photo, but at night").
            first = positives.pop(0) if positives and positives[0].image is None else None
            anchor = Term(
                text=first.text if first else None,
                image=parsed.image,
                photo_id=like_file_id if parsed.image is None else None,
                weight=first.weight if first else 1.0,
            )
            positives.insert(0, anchor)
        if not positives and not request.negatives and request.filters == Filters():
            return self.recent()
        filters = request.filters
        if like_file_id is not None and parsed.image is None and positives[0].text is None:
            filters = replace(filters, exclude_ids=filters.exclude_ids | {like_file_id})
        request = replace(request, positives=tuple(positives), filters=filters)
        limit = request.limit or self.limit
        rerank = self.rerank_top if self.rerank_on and request.sort == "score" else None
        result = self.session.search(SearchQuery(request, limit=limit, rerank=rerank), cancelled=cancelled)
        if cancelled():
            raise Superseded
        self.last_notice = result.notice  # read by the app with these results (one search shown at a time)
        # A reranked hit shows the reranker's probability: its order is the reranker's.
        return [
            Result(h.file_id, h.path, h.rerank if h.rerank is not None else h.score, h.kind, h.time, h.page)
            for h in result.hits
        ]

    def recent(self, limit: int = RECENT_LIMIT) -> list[Result]:
        """The newest photos: what the TUI shows before anything is typed."""
        self.last_notice = None
        return [Result(hit.file_id, hit.path, None, hit.kind) for hit in self.session.recent(limit)]

    def details(self, file_id: int) -> Details | None:
        found = self.session.details(file_id)
        if found is None:
            return None
        return Details(found.path, found.width, found.height, found.size, found.taken, found.kind)

    def status(self) -> StatusInfo:
        report = self.session.status(failures=0)
        watcher = report["watcher"]
        return StatusInfo(
            report["indexed"],
            report["failed"],
            short_model_name(report["model"] or self.session.model_id),
            watcher["activity"] if watcher else None,
            self.rerank_top if self.rerank_on else None,
        )
