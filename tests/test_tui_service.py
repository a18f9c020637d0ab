"""The TUI's non-UI parts: query parsing, the search service, the thumbnail cache, the viewer command."""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import pytest

from tests.photos import write_photo
from umsearch.errors import UmsearchError
from umsearch.runtime import RuntimeRequest
from umsearch.session import Session
from umsearch.store import Store
from umsearch.tui.service import ParsedQuery, SearchService, dates_note, parse_query, short_model_name
from umsearch.tui.thumbs import ThumbnailCache
from umsearch.tui.viewer import viewer_command


# ---- typed text -> query --------------------------------------------------------------------------
def test_plain_words_are_a_text_query() -> None:
    assert parse_query("  red boat at dusk ") == ParsedQuery("red boat at dusk", None)
    assert parse_query("   ") == ParsedQuery(None, None)


def test_at_path_is_an_image_query_and_following_words_refine_it(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "cat.jpg")
    assert parse_query(f"@{photo}") == ParsedQuery(None, str(photo))
    assert parse_query(f"@{photo} at night") == ParsedQuery("at night", str(photo))


def test_a_path_with_spaces_is_quoted_or_given_alone(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "my photos" / "a cat.jpg")
    assert parse_query(f'@"{photo}" in snow') == ParsedQuery("in snow", str(photo))
    assert parse_query(f"@{photo}") == ParsedQuery(None, str(photo))


def test_a_bare_existing_path_is_an_image_query_but_words_with_slashes_are_not(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "dog.png")
    assert parse_query(str(photo)) == ParsedQuery(None, str(photo))
    assert parse_query("cats/dogs in a park") == ParsedQuery("cats/dogs in a park", None)


def test_a_missing_image_after_at_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UmsearchError, match="nope.jpg: no such image file"):
        parse_query(f"@{tmp_path / 'nope.jpg'} at night")
    with pytest.raises(UmsearchError, match="give an image path after @"):
        parse_query("@")


# ---- the service ------------------------------------------------------------------------------------
def _index_without_model(tmp_path: Path) -> Store:
    """A tiny hand-made index (2-d vectors) so the stored-vector paths are checked exactly."""
    import numpy as np

    from umsearch.store import IndexSettings

    store = Store.open(tmp_path / "index.db")
    store.bind(IndexSettings("test-model", 2, 4, 64))
    for i, angle in enumerate([0.0, 0.1, 1.0, 3.0]):
        path = write_photo(tmp_path / f"p{i}.png", seed=i)
        vector = np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)
        store.put_file(str(path), size=path.stat().st_size, mtime_ns=(10 + i) * 10**9, digest=str(i), vector=vector)
    return store


def _no_model(*args):
    raise AssertionError("the model must not be loaded for this")


def _service(store: Store) -> SearchService:
    return SearchService(Session(store, embedder_factory=_no_model))


def test_more_like_this_ranks_by_the_stored_vector_and_leaves_out_the_photo_itself(tmp_path: Path) -> None:
    store = _index_without_model(tmp_path)
    service = _service(store)
    p0 = store.file_by_path(str(tmp_path / "p0.png"))
    results = service.run("", like_file_id=p0.id)
    assert [Path(r.path).name for r in results] == ["p1.png", "p2.png", "p3.png"]
    assert results[0].score == pytest.approx(math.cos(0.1), abs=1e-5)
    service.close()


def test_empty_text_without_a_photo_gives_the_newest_photos(tmp_path: Path) -> None:
    store = _index_without_model(tmp_path)
    service = _service(store)
    results = service.run("   ")
    assert [Path(r.path).name for r in results] == ["p3.png", "p2.png", "p1.png", "p0.png"]
    assert all(r.score is None for r in results)
    assert [Path(r.path).name for r in service.recent(2)] == ["p3.png", "p2.png"]
    service.close()


def test_dates_alone_list_the_newest_photos_of_that_period_without_the_model(tmp_path: Path) -> None:
    store = _index_without_model(tmp_path)  # photos dated by their file times, early in 1970 (local time)
    service = _service(store)
    assert [Path(r.path).name for r in service.run("1969..1970")] == ["p3.png", "p2.png", "p1.png", "p0.png"]
    assert service.run("in 2024") == [] and service.run("去年") == []
    assert dates_note("cats 1969..1970") == " · taken 1969-01-01 – 1970-12-31"
    assert dates_note("cats") == ""
    service.close()


def test_status_and_details_come_from_the_index(tmp_path: Path) -> None:
    store = _index_without_model(tmp_path)
    service = _service(store)
    info = service.status()
    assert (info.photos, info.failed, info.model, info.watcher) == (4, 0, "test-model", None)
    p1 = store.file_by_path(str(tmp_path / "p1.png"))
    details = service.details(p1.id)
    assert details is not None and details.path == p1.path and details.size == p1.size
    assert details.date == datetime.fromtimestamp(11)
    assert service.details(999) is None
    service.close()


def test_a_local_model_folder_is_shown_by_its_name() -> None:
    assert short_model_name("/home/me/models/gme-2b") == "gme-2b"
    assert short_model_name("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct") == "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"


# ---- thumbnails -------------------------------------------------------------------------------------
def test_thumbnails_are_cached_and_the_cache_is_bounded(tmp_path: Path) -> None:
    paths = [str(write_photo(tmp_path / f"{i}.jpg", seed=i, size=(300, 200))) for i in range(4)]
    cache = ThumbnailCache(capacity=2)
    first = cache.get(paths[0])
    assert first is not None and first.size == (96, 96)  # padded to a square for the list rows
    assert cache.get(paths[0]) is first and cache.decoded == 1
    cache.get(paths[1])
    cache.get(paths[2])
    assert len(cache) == 2 and not cache.cached(paths[0])  # least recently used went first
    preview = cache.get(paths[3], 120, square=False)
    assert preview is not None and max(preview.size) == 120 and preview.size[0] > preview.size[1]


def test_an_undecodable_file_has_no_thumbnail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert ThumbnailCache().get(str(bad)) is None
    assert ThumbnailCache().get(str(tmp_path / "gone.jpg")) is None


# ---- opening a photo --------------------------------------------------------------------------------
def test_the_viewer_gets_an_absolute_path_that_cannot_read_as_an_option(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = viewer_command("-rf.jpg", platform="darwin")
    assert argv == ["open", str(tmp_path / "-rf.jpg")] and argv[1].startswith(os.sep)
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/xdg-open")
    assert viewer_command("--help.png", platform="linux") == ["/usr/bin/xdg-open", str(tmp_path / "--help.png")]


# ---- waiting for slow work ----------------------------------------------------------------------------
def test_waiting_for_background_work_stops_when_cancelled_and_passes_errors_on() -> None:
    import threading

    from umsearch.tui.service import Superseded, call_in_background

    release = threading.Event()
    with pytest.raises(Superseded):
        call_in_background(lambda: release.wait(30), cancelled=lambda: True)
    release.set()
    assert call_in_background(lambda: 42, cancelled=lambda: False) == 42
    with pytest.raises(UmsearchError, match="boom"):
        call_in_background(lambda: (_ for _ in ()).throw(UmsearchError("boom")), cancelled=lambda: False)


# ---- the command ------------------------------------------------------------------------------------
def test_the_tui_command_builds_the_app_from_its_options(monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import umsearch.tui.app as tui_app
    from umsearch.cli import app

    built: list[tuple] = []

    class Recorder:
        return_code = 0

        def run(self) -> None:
            built.append(("run",))

    def fake_make_app(db, model, image_mode, runtime, server, rerank_model=None):
        built.append((db, model, image_mode, runtime, server))
        return Recorder()

    monkeypatch.setattr(tui_app, "make_app", fake_make_app)
    monkeypatch.delenv("UMSEARCH_DTYPE")  # what the command line alone gives (conftest pins float32)
    args = [
        "tui",
        "--db",
        str(tmp_path / "x.db"),
        "--model",
        "m",
        "--images",
        "halfcell",
        "--device",
        "cpu",
        "--quant",
        "none",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runtime = RuntimeRequest("cpu", "none", "auto")
    assert built == [(tmp_path / "x.db", "m", "halfcell", runtime, False), ("run",)]  # UMSEARCH_SERVER=off here
    monkeypatch.setenv("UMSEARCH_SERVER", "on")
    assert CliRunner().invoke(app, args).exit_code == 0
    assert CliRunner().invoke(app, [*args, "--no-server"]).exit_code == 0
    assert [entry[-1] for entry in built if len(entry) > 1] == [False, True, False]


def test_an_unknown_image_mode_is_a_one_line_error() -> None:
    from typer.testing import CliRunner

    from umsearch.cli import app

    result = CliRunner().invoke(app, ["tui", "--images", "crayons"])
    assert result.exit_code == 1
    assert "--images must be one of auto, tgp, sixel, halfcell, unicode" in result.output
