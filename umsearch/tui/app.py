"""The Textual app: a search box, a result list with thumbnails, a preview pane and a status line.

Slow work never runs on the UI thread: the model loads, queries embed and thumbnails decode in thread
workers; each search bumps a generation counter and a result that arrives for an older one is dropped.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import Footer, Input, ListView, Static
from textual.worker import get_current_worker

from ..errors import UmsearchError
from ..present import display_path
from .service import Result, SearchService, StatusInfo, Superseded, call_in_background
from .thumbs import PREVIEW_PIXELS, ThumbnailCache
from .viewer import open_in_viewer
from .widgets.images import image_widget_class
from .widgets.preview import Preview
from .widgets.results import ResultList, ResultRow

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..rerank import Qwen3Reranker
    from ..runtime import RuntimeRequest
    from ..session import EmbedderFactory, RerankerFactory

DEBOUNCE_S = 0.4
STATUS_REFRESH_S = 3.0


def status_text(info: StatusInfo, model_state: str) -> str:
    photos = f"{info.photos} photo{'s' if info.photos != 1 else ''} indexed"
    if info.failed:
        photos += f" ({info.failed} failed)"
    model = f"model {info.model or '?'}" + (f" ({model_state})" if model_state else "")
    watcher = f"watcher: {info.watcher}" if info.watcher else "watcher: off"
    rerank = f" · rerank top {info.rerank}" if info.rerank else ""
    return f" {photos} · {model}{rerank} · {watcher}"


class UmsearchApp(App[None]):
    CSS_PATH = "umsearch.tcss"
    TITLE = "umsearch"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search"),
        Binding("s", "more_like_this", "Similar"),
        Binding("y", "copy_path", "Copy path"),
        Binding("escape", "go_back", "Back"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+r", "toggle_rerank", "Rerank", show=False),
    ]

    def __init__(
        self,
        service: SearchService | None,
        *,
        problem: str | None = None,
        image_mode: str = "auto",
        opener: Callable[..., None] = open_in_viewer,
    ) -> None:
        super().__init__()
        self.service = service
        self.problem = problem
        self.image_class = image_widget_class(image_mode)
        self.thumbs = ThumbnailCache()
        self.opener = opener
        self.generation = 0  # bumped by every search; results of older searches are dropped
        self.like: Result | None = None  # the photo that "more like this" searches from
        self.model_state = "loading…"
        self.model_error: str | None = None  # stays on screen until a search that works replaces it
        self.results: list[Result] = []
        self._debounce: Timer | None = None
        self.debounce_s = DEBOUNCE_S  # the pause in typing after which the words are searched

    # ---- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="search-bar"):
            yield Static("", id="like", markup=False)
            yield Input(placeholder="Describe a photo, or @path/to/image.jpg …", id="query")
        yield Static("", id="message", markup=False)
        with Horizontal(id="body"):
            yield ResultList(self.image_class, id="results")
            yield Preview(self.image_class, id="preview")
        yield Static("", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        if self.service is None:
            self.model_state = ""
            self.show_message(self.problem or "no index", error=True)
            self.query_one("#status", Static).update(" no index")
            return
        self.refresh_status()
        self.set_interval(STATUS_REFRESH_S, self.refresh_status)
        self.load_model()
        self.show_recent()
        if self.problem:
            self.show_message(self.problem, error=True)

    def on_unmount(self) -> None:
        if self.service is not None:
            self.service.close()

    # ---- status and messages -----------------------------------------------------------------------
    def show_message(self, text: str, *, error: bool = False) -> None:
        message = self.query_one("#message", Static)
        message.update(text)
        message.set_class(error, "error")

    def refresh_status(self) -> None:
        if self.service is not None:
            self._status_worker()

    @work(thread=True, exclusive=True, group="status")
    def _status_worker(self) -> None:
        """Counting a large index takes a moment: never on the UI thread."""
        assert self.service is not None
        try:
            info = self.service.status()
        except Exception as exc:
            self._from_thread(self._show_error, f"cannot read the index: {exc}")
            return
        self._from_thread(self._show_status, info)

    def _show_error(self, text: str) -> None:
        self.show_message(text, error=True)

    def _show_status(self, info: StatusInfo) -> None:
        self.query_one("#status", Static).update(status_text(info, self.model_state))

    @work(thread=True, exclusive=True, group="model")
    def load_model(self) -> None:
        assert self.service is not None
        worker = get_current_worker()
        try:
            call_in_background(self.service.load_model, lambda: worker.is_cancelled)
        except Superseded:
            return  # the app is closing
        except UmsearchError as exc:
            self._from_thread(self._model_done, str(exc))
        except Exception as exc:
            self._from_thread(self._model_done, f"cannot load the model: {type(exc).__name__}: {exc}")
        else:
            self._from_thread(self._model_done, None)

    def _model_done(self, error: str | None) -> None:
        self.model_state = "not loaded" if error else ""
        self.model_error = error
        self.refresh_status()
        if error:
            self.show_message(error, error=True)
        elif self.query_one("#message").has_class("loading"):
            self.query_one("#message").remove_class("loading")

    # ---- searching -----------------------------------------------------------------------------------
    def show_recent(self) -> None:
        """The opening screen (and the screen after clearing the search): the newest photos."""
        self.search("", None)

    def search(self, text: str, like: Result | None) -> None:
        if self.service is None:
            return
        self.generation += 1
        if text.strip() and not self.service.model_loaded:
            self.show_message("loading the model … your search runs as soon as it is ready")
            self.query_one("#message").add_class("loading")
        elif text.strip() or like:
            self.show_message("searching …")
        self._search_worker(self.generation, text, like)

    @work(thread=True, exclusive=True, group="search")
    def _search_worker(self, generation: int, text: str, like: Result | None) -> None:
        assert self.service is not None
        worker = get_current_worker()

        def cancelled() -> bool:
            return worker.is_cancelled or generation != self.generation

        try:
            service = self.service
            results = call_in_background(
                lambda: service.run(text, like.file_id if like else None, cancelled=cancelled), cancelled
            )
        except Superseded:
            return
        except UmsearchError as exc:
            self._from_thread(self._search_failed, generation, str(exc))
            return
        except Exception as exc:
            self._from_thread(self._search_failed, generation, f"search failed: {type(exc).__name__}: {exc}")
            return
        self._from_thread(self._show_results, generation, text, like, results)

    def _from_thread(self, callback, *args) -> None:
        """Hand a worker's result to the UI thread; dropped quietly when the app has closed meanwhile."""

        async def deliver() -> None:
            try:
                shown = callback(*args)
                if inspect.isawaitable(shown):
                    await shown
            except NoMatches:
                pass  # the screen closed while the worker ran: the widget the result was for is gone

        try:
            self.call_from_thread(deliver)  # type: ignore[arg-type]  # textual types T | Awaitable[T] and infers Never
        except RuntimeError:
            pass

    def _search_failed(self, generation: int, message: str) -> None:
        if generation == self.generation:
            self.show_message(message, error=True)

    async def _show_results(self, generation: int, text: str, like: Result | None, results: list[Result]) -> None:
        if generation != self.generation:
            return  # a newer search is on its way
        self.results = results
        if text.strip() and self.model_error:  # the model answered after all (e.g. downloaded meanwhile)
            self.model_error, self.model_state = None, ""
            self.refresh_status()
        if self.model_error and not text.strip() and like is None:
            self.show_message(self.model_error, error=True)  # browsing works, but searching by words won't
        else:
            self.show_message(self._summary(text, like, results))
        self.query_one("#message").remove_class("loading")
        listing = self.query_one("#results", ResultList)
        rows = await listing.show_results(results, self.thumbs.peek)
        if rows:
            self._load_preview(rows[0].result)
        else:
            self.query_one("#preview", Preview).clear()
        self._load_thumbnails(generation, rows)

    def _summary(self, text: str, like: Result | None, results: list[Result]) -> str:
        if not text.strip() and like is None:
            if not results:
                return "the index has no photos yet: run 'umsearch index FOLDER' first"
            return f"{len(results)} most recent photos · type to search"
        about = f"like {os.path.basename(like.path)}" if like else ""
        if like and text.strip():
            about += f" + “{_shortened(text.strip())}”"
        elif text.strip():
            about = f"“{_shortened(text.strip())}”"
        summary = f"{len(results)} results for {about}" if results else f"no results for {about}"
        notice = self.service.last_notice if self.service is not None else None
        return f"{summary} · {notice}" if notice else summary

    # ---- thumbnails and preview ---------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="thumbs")
    def _load_thumbnails(self, generation: int, rows: list[ResultRow]) -> None:
        """Decode thumbnails in list order (the visible rows first), each handed to its row when ready."""
        worker = get_current_worker()
        for row in rows:
            if worker.is_cancelled or generation != self.generation:
                return
            result = row.result
            if self.thumbs.peek(result.path, time=result.time, page=result.page) is not None:
                continue  # shown already, straight from the cache
            image = self.thumbs.get(result.path, time=result.time, page=result.page)
            self._from_thread(row.set_thumbnail, result, image)

    @on(ListView.Highlighted, "#results")
    def _highlighted(self, event: ListView.Highlighted) -> None:
        if isinstance(event.item, ResultRow):
            self._load_preview(event.item.result)

    @work(thread=True, exclusive=True, group="preview")
    def _load_preview(self, result: Result) -> None:
        assert self.service is not None
        details = self.service.details(result.file_id)
        image = self.thumbs.get(result.path, PREVIEW_PIXELS, square=False, time=result.time, page=result.page)
        if not get_current_worker().is_cancelled:
            self._from_thread(self._show_preview, result, details, image)

    def _show_preview(self, result: Result, details, image) -> None:
        if self.selected is not None and self.selected.file_id == result.file_id:
            self.query_one("#preview", Preview).show(details, image, result.where)

    # ---- input events --------------------------------------------------------------------------------
    @on(Input.Changed, "#query")
    def _typed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        if not event.value.strip() and self.like is None:
            self._debounce = None
            self.show_recent()
            return
        self._debounce = self.set_timer(self.debounce_s, self._run_typed)

    @on(Input.Submitted, "#query")
    def _submitted(self, event: Input.Submitted) -> None:
        self._run_typed()
        self.query_one("#results", ResultList).focus()

    def _run_typed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        self.search(self.query_one("#query", Input).value, self.like)

    def on_key(self, event) -> None:
        # Down from the search box goes to the results, as people expect from a search field.
        if event.key == "down" and isinstance(self.focused, Input):
            self.query_one("#results", ResultList).focus()
            event.stop()

    # ---- actions -------------------------------------------------------------------------------------
    @property
    def selected(self) -> Result | None:
        return self.query_one("#results", ResultList).selected

    def action_toggle_rerank(self) -> None:
        """Rescore the best matches with the reranker (or stop), and search again."""
        if self.service is None:
            return
        on = self.service.toggle_rerank()
        self.refresh_status()
        text = self.query_one("#query", Input).value
        if text.strip() or self.like is not None:
            self.search(text, self.like)
        top = self.service.rerank_top
        self.show_message(
            f"reranking the best {top} matches (one model pass per photo: slow on a CPU)" if on else "reranking off"
        )

    def action_focus_search(self) -> None:
        self.query_one("#query", Input).focus()

    def action_more_like_this(self) -> None:
        """Search from the selected photo's stored vector; words typed next refine it (one fused query)."""
        chosen = self.selected
        if chosen is None:
            self.bell()
            return
        self.like = chosen
        self.query_one("#like", Static).update(f"like {display_path(os.path.basename(chosen.path))} +")
        self.query_one("#search-bar").add_class("has-like")
        query = self.query_one("#query", Input)
        with query.prevent(Input.Changed):
            query.value = ""
        query.focus()  # words typed next refine the search
        self.search("", chosen)

    def action_copy_path(self) -> None:
        chosen = self.selected
        if chosen is None:
            self.bell()
            return
        self.copy_to_clipboard(chosen.path)
        self.notify(f"copied {display_path(chosen.path)}", timeout=3, markup=False)

    def action_open_selected(self) -> None:
        chosen = self.selected
        if chosen is None:
            self.bell()
            return
        try:
            if chosen.time is None and chosen.page is None:
                self.opener(chosen.path)
            else:  # a video at the matching moment, a PDF at the matching page (where the player allows)
                self.opener(chosen.path, time=chosen.time, page=chosen.page)
        except UmsearchError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def action_go_back(self) -> None:
        """Esc: leave "more like this" first, then the result list, then clear the search."""
        query = self.query_one("#query", Input)
        if self.like is not None:
            self.like = None
            self.query_one("#like", Static).update("")
            self.query_one("#search-bar").remove_class("has-like")
            self._run_typed() if query.value.strip() else self.show_recent()
        elif not isinstance(self.focused, Input):
            query.focus()
        elif query.value:
            query.value = ""  # Input.Changed shows the recent photos again


def _shortened(text: str, width: int = 60) -> str:
    """A long description echoed in the one-line message: its start."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def make_app(
    db: Path | None = None,
    model: str | None = None,
    *,
    image_mode: str = "auto",
    embedder_factory: EmbedderFactory | None = None,
    opener: Callable[..., None] = open_in_viewer,
    runtime: RuntimeRequest | None = None,
    server: bool = False,
    rerank_model: str | None = None,
    reranker_factory: RerankerFactory | None = None,
) -> UmsearchApp:
    """Open the index's session and build the app; a problem (no index, wrong model) is shown inside the app.

    With `server`, searches that need the model go to the index's resident service (started when first needed)
    and everything else is read from the index here; without it, the model is loaded in this process."""
    from ..session import Session

    try:
        session = Session.open(
            db,
            model=model,
            runtime=runtime,
            embedder_factory=embedder_factory or _quiet_model_load,
            reranker_factory=reranker_factory or _quiet_reranker_load,
            rerank_model=rerank_model,
        )
    except UmsearchError as exc:
        return UmsearchApp(None, problem=str(exc), image_mode=image_mode, opener=opener)
    try:
        session.check_ready()
    except UmsearchError as exc:
        session.close()
        return UmsearchApp(None, problem=str(exc), image_mode=image_mode, opener=opener)
    if not server:
        return UmsearchApp(SearchService(session), image_mode=image_mode, opener=opener)
    from ..service.route import Route, ServiceBackend

    route = Route(
        db=session.db_path,
        open_session=lambda: Session.open(
            session.db_path,
            model=model,
            runtime=runtime,
            reranker_factory=reranker_factory or _quiet_reranker_load,
            rerank_model=rerank_model,
        ),
        model=model,
        runtime=session.runtime,
        rerank_model=rerank_model,
    )
    return UmsearchApp(SearchService(ServiceBackend(session, route)), image_mode=image_mode, opener=opener)


def _quiet_model_load(
    model_id: str, budget: tuple[int, int], runtime: RuntimeRequest, dim: int | None = None
) -> Embedder:
    from transformers.utils import logging as hf_logging

    from ..session import load_for_session

    hf_logging.disable_progress_bar()  # a progress bar on stderr would scribble over the screen
    return load_for_session(model_id, budget, runtime, dim)


def _quiet_reranker_load(model_id: str, budget: tuple[int, int], runtime: RuntimeRequest) -> Qwen3Reranker:
    from transformers.utils import logging as hf_logging

    from ..session import load_reranker_for_session

    hf_logging.disable_progress_bar()
    return load_reranker_for_session(model_id, budget, runtime)
