"""The TUI driven through Textual's Pilot: the real app, a real index, the tiny real-architecture model."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

pytest.importorskip("textual")

from tests.plain_search import Query, query_vector, rank
from tests.tui_support import (
    BUDGET,
    PHOTO_NAMES,
    build_index,
    embedder_factory,
    run_async,
    screen_text,
    settle,
    type_and_wait,
    write_photos,
)
from umsearch.settings import max_pixels
from umsearch.store import Store
from umsearch.tui.app import UmsearchApp, make_app
from umsearch.tui.widgets.preview import Preview
from umsearch.tui.widgets.results import ResultList

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """(index file, photo folder): six generated photos in two folders, indexed with the real Indexer."""
    root = tmp_path_factory.mktemp("tui")
    write_photos(root / "photos")
    return build_index(root / "index.db", root / "photos", tiny_model_dir), root / "photos"


@pytest.fixture(scope="module")
def shared_embedder(tiny_model_dir: Path):
    """The tiny model loaded once for the module through the real loader; apps share it via the factory."""
    calls: list[str] = []

    @functools.cache
    def load(model_id: str, budget: tuple[int, int]):
        calls.append(model_id)
        return embedder_factory(model_id, budget)

    return lambda model_id, budget, runtime=None: load(model_id, budget)


@pytest.fixture
def opened() -> list[str]:
    return []


@pytest.fixture
def app(library, tiny_model_dir, shared_embedder, opened) -> UmsearchApp:
    db, _ = library
    return make_app(
        db, str(tiny_model_dir), image_mode="halfcell", embedder_factory=shared_embedder, opener=opened.append
    )


def message(app: UmsearchApp) -> str:
    return str(app.query_one("#message").render())


def shown_paths(app: UmsearchApp) -> list[str]:
    return [row.result.path for row in app.query_one("#results", ResultList).children]


def expected_ranking(db: Path, tiny_model_dir: Path, embedder, query: Query, exclude: int | None = None) -> list[str]:
    """The same query through the library API, as `umsearch query` answers it."""
    with Store.open(db, create=False) as store:
        vector = query_vector(embedder, query, max_pixels(BUDGET[1]))
        return [hit.path for hit in rank(store, vector, 60) if hit.file_id != exclude]


@run_async
async def test_opens_on_the_most_recent_photos_with_a_status_line(app: UmsearchApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        paths = shown_paths(app)
        assert [Path(p).name for p in paths] == list(reversed(PHOTO_NAMES))  # newest mtime first
        assert "6 most recent photos" in message(app)
        status = str(app.query_one("#status").render())
        assert "6 photos indexed" in status and "watcher: off" in status
        assert app.service is not None and app.service.model_loaded  # loaded in a worker at start


@run_async
async def test_typing_searches_after_a_pause_and_matches_the_library_api(
    app: UmsearchApp, library, tiny_model_dir, shared_embedder
) -> None:
    db, _ = library
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        runs: list[str] = []
        real_run = app.service.run
        app.service.run = lambda text, *a, **k: (runs.append(text), real_run(text, *a, **k))[1]
        app.debounce_s = 1.5  # longer than any stall of a loaded test machine between two keystrokes
        await pilot.press(*"red boat")
        assert runs == [], "no search before the pause"
        await pilot.pause(2.0)
        await settle(pilot)
        assert runs == ["red boat"], "keystrokes inside the pause must not each start a search"
        assert "6 results for “red boat”" in message(app)
        embedder = shared_embedder(str(tiny_model_dir), BUDGET)
        assert shown_paths(app) == expected_ranking(db, tiny_model_dir, embedder, Query(text="red boat"))
        assert all(r.score is not None for r in app.results)
        assert "red boat" in screen_text(app)


@run_async
async def test_enter_runs_at_once_and_only_the_latest_query_is_shown(app: UmsearchApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*"forest", "enter")
        await pilot.press("slash", *"cats", "enter")  # "/" selects the old words: typing replaces them
        await settle(pilot)
        assert "6 results for “cats”" in message(app)
        first = app.results[0]
        assert first.path.endswith(str(app.query_one("#preview-meta").render()).splitlines()[0])
        shown = shown_paths(app)
        await app._show_results(app.generation - 1, "forest", None, [])  # a late answer to a superseded search
        assert "“cats”" in message(app) and shown_paths(app) == shown
        assert app.focused is app.query_one("#results")


@run_async
async def test_arrow_keys_and_j_k_move_and_the_preview_follows(app: UmsearchApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down")  # from the search box into the list
        listing = app.query_one("#results", ResultList)
        assert app.focused is listing and listing.index == 0
        await pilot.press("j", "j", "down", "k")
        await settle(pilot)
        assert listing.index == 2
        chosen = app.selected
        meta = str(app.query_one("#preview-meta").render())
        assert chosen is not None and Path(chosen.path).name in meta.replace("\n", "")
        assert "× 64 px" in meta and "B" in meta
        assert app.query_one("#preview", Preview).query_one("#preview-image").image is not None


@run_async
async def test_more_like_this_uses_the_stored_vector_without_the_model(app: UmsearchApp, library) -> None:
    db, _ = library
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        embedder = app.service.load_model()
        calls: list[object] = []
        real = embedder.embed_query
        embedder.embed_query = lambda *a, **k: (calls.append(a), real(*a, **k))[1]
        try:
            await pilot.press("down", "down")
            anchor = app.selected
            await pilot.press("s")
            await settle(pilot)
        finally:
            del embedder.embed_query
        assert calls == []
        with Store.open(db, create=False) as store:
            expected = [
                hit.path for hit in rank(store, store.vector(anchor.file_id), 60) if hit.file_id != anchor.file_id
            ]
        assert shown_paths(app) == expected and anchor.path not in shown_paths(app)
        assert f"like {Path(anchor.path).name}" in message(app)
        assert app.focused is app.query_one("#query")  # ready for words that refine it


@run_async
async def test_words_after_more_like_this_make_one_fused_query(
    app: UmsearchApp, library, tiny_model_dir, shared_embedder
) -> None:
    db, _ = library
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "s")
        anchor = app.like
        await pilot.press(*"at night", "enter")
        await settle(pilot)
        assert f"like {Path(anchor.path).name} + “at night”" in message(app)
        embedder = shared_embedder(str(tiny_model_dir), BUDGET)
        expected = expected_ranking(db, tiny_model_dir, embedder, Query(text="at night", image=anchor.path))
        assert shown_paths(app) == expected
        await pilot.press("escape")  # leaves "more like this", keeps the words
        await settle(pilot)
        assert app.like is None and "results for “at night”" in message(app)


@run_async
async def test_a_typed_image_path_is_an_image_query(app: UmsearchApp, library) -> None:
    _, photos = library
    target = photos / "home" / "cat.webp"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*f"@{target}", "enter")
        await settle(pilot)
        assert app.results[0].path == str(target) and app.results[0].score == pytest.approx(1.0, abs=1e-3)
        await pilot.press("slash", *"@/no/such.jpg cats", "enter")  # "/" selects the old words
        await settle(pilot)
        assert "/no/such.jpg: no such image file" in message(app)


@run_async
async def test_enter_opens_the_photo_y_copies_its_path_and_q_quits(app: UmsearchApp, opened: list[str]) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "j")
        chosen = app.selected
        await pilot.press("enter", "y")
        assert opened == [chosen.path]
        assert app.clipboard == chosen.path
        await pilot.press("q")
        assert not app.is_running


@run_async
async def test_the_mouse_selects_a_result(app: UmsearchApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        rows = list(app.query_one("#results", ResultList).children)
        await pilot.click(rows[2])
        await settle(pilot)
        assert app.selected == rows[2].result


@run_async
async def test_a_missing_index_is_explained_not_a_crash(tmp_path: Path) -> None:
    app = make_app(tmp_path / "none.db", image_mode="halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "no index at" in message(app) and "umsearch index FOLDER" in message(app)
        await pilot.press(*"anything", "enter")
        await pilot.press("q")
        assert not app.is_running


@run_async
async def test_an_empty_index_is_explained(tmp_path: Path) -> None:
    Store.open(tmp_path / "empty.db").close()
    app = make_app(tmp_path / "empty.db", image_mode="halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "has no photos yet" in message(app)


@run_async
async def test_a_missing_model_is_one_line_in_the_ui_and_browsing_still_works(library, tmp_path: Path) -> None:
    db, _ = library
    copy = tmp_path / "index.db"
    copy.write_bytes(db.read_bytes())
    with Store.open(copy, create=False) as store:
        store.set_meta("model_id", str(tmp_path / "gone-model"))
    app = make_app(copy, image_mode="halfcell")  # the real loader, which cannot find the model
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "model directory" in message(app) and "does not exist" in message(app)
        assert "not loaded" in str(app.query_one("#status").render())
        assert len(shown_paths(app)) == 6  # the recent photos are still there
        await pilot.press("down", "s")  # more like this needs no model
        await settle(pilot)
        assert "5 results for like" in message(app)
        await pilot.press(*"sunset", "enter")
        await settle(pilot)
        assert "does not exist" in message(app)
        assert app.is_running


@run_async
async def test_a_search_typed_while_the_model_loads_waits_visibly_and_then_runs(
    library, tiny_model_dir, shared_embedder
) -> None:
    import threading

    db, _ = library
    release = threading.Event()

    def slow_load(model_id: str, budget: tuple[int, int], runtime=None):
        release.wait(30)  # a big model still loading from disk
        return shared_embedder(model_id, budget)

    app = make_app(db, str(tiny_model_dir), image_mode="halfcell", embedder_factory=slow_load)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "loading" in str(app.query_one("#status").render())
        await pilot.press(*"harbour", "enter")
        await pilot.pause(0.2)
        assert "loading the model" in message(app)
        await pilot.press("j", "k")  # the UI answers keys meanwhile
        release.set()
        await settle(pilot)
        assert "6 results for “harbour”" in message(app)
        assert "loading" not in str(app.query_one("#status").render())


@run_async
async def test_quitting_does_not_wait_for_a_model_still_loading(library, tiny_model_dir) -> None:
    import threading
    import time

    db, _ = library
    release = threading.Event()
    app = make_app(db, str(tiny_model_dir), image_mode="halfcell", embedder_factory=lambda *a: release.wait(30))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            started = time.monotonic()
            await pilot.press("down", "q")
        assert time.monotonic() - started < 5 and not app.is_running
    finally:
        release.set()


@run_async
async def test_the_status_line_shows_a_running_watcher(app: UmsearchApp, library) -> None:
    from umsearch.watchstate import WatcherLock

    db, photos = library
    with WatcherLock(db, (str(photos),)) as lock:
        lock.report("watching")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "watcher: watching" in str(app.query_one("#status").render())


@run_async
async def test_escape_in_the_search_box_clears_it_and_shows_the_recent_photos(app: UmsearchApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_and_wait(pilot, "boats")
        assert "results for “boats”" in message(app)
        await pilot.press("escape")
        await settle(pilot)
        assert app.query_one("#query").value == "" and "most recent photos" in message(app)


@run_async
async def test_a_model_other_than_the_index_s_is_explained(library) -> None:
    db, _ = library
    app = make_app(db, "Some-Org/another-model", image_mode="halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "was built with model" in message(app) and "Some-Org/another-model" in message(app)
