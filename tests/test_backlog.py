"""Issue 17 items 2 and 4 in the pipeline: newest photos first, the backlog a query can see, and embedding
held on battery. The tiny model through the real loading path; real files, real index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.photos import write_photo
from tests.watch_support import MAX_PIXELS, CountingEmbedder, wait_for
from umsearch import backlog
from umsearch.index import Indexer
from umsearch.manners import PowerGate
from umsearch.store import Store

pytestmark = pytest.mark.timeout(180)
DAY_NS = 86_400 * 10**9


def dated_photos(root: Path, count: int) -> dict[str, int]:
    """Photos whose file times are days apart, named so that folder order is oldest first."""
    times = {}
    base = 1_700_000_000 * 10**9
    for i in range(count):
        path = write_photo(root / f"{i:03d}.png", seed=i)
        mtime = base + i * DAY_NS
        os.utime(path, ns=(mtime, mtime))
        times[str(path)] = mtime
    return times


class Watching(CountingEmbedder):
    """The real embedder; runs `during` (once per batch) before each model call, from the indexing thread."""

    def __init__(self, inner, during) -> None:
        super().__init__(inner)
        self.during = during

    def embed_prepared(self, batch):
        self.during()
        return super().embed_prepared(batch)


def test_a_first_run_embeds_the_newest_photos_first(tmp_path: Path, small_embedder) -> None:
    times = dated_photos(tmp_path / "photos", 6)
    order: list[int] = []
    with Store.open(tmp_path / "index.db") as store:
        model = Watching(small_embedder, lambda: order.append(store.counts().indexed))
        indexer = Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=1, window=1)
        summary = indexer.index([str(tmp_path / "photos")])
        assert summary.added == 6
        rows = sorted(store.iter_files([str(tmp_path / "photos")]), key=lambda row: row.id)
    # Rows are created as photos are stored: newest first, whatever the folder order.
    assert [times[row.path] for row in rows] == sorted(times.values(), reverse=True)


def test_a_query_during_a_run_sees_the_backlog_and_none_after(tmp_path: Path, small_embedder) -> None:
    dated_photos(tmp_path / "photos", 5)
    db = tmp_path / "index.db"
    seen: list[str] = []

    def look() -> None:
        with Store.open(db, create=False) as other:  # another connection, as a query process has
            entry = backlog.read(other)
            if entry is not None:
                seen.append(entry.notice(other.counts().indexed))

    with Store.open(db) as store:
        model = Watching(small_embedder, look)
        Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=2, window=2).index([str(tmp_path / "photos")])
        assert backlog.read(store) is None
    assert seen == [
        "searched 0 of 5 photos; indexing continues",
        "searched 2 of 5 photos; indexing continues",
        "searched 4 of 5 photos; indexing continues",
    ]


def test_a_backlog_left_by_a_killed_run_is_ignored(tmp_path: Path) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    with Store.open(tmp_path / "index.db") as store:
        backlog.record(store, 120)
        assert backlog.read(store) is not None  # this process: alive
        raw = store.meta(backlog.META_BACKLOG).replace(f'"pid": {os.getpid()}', f'"pid": {dead_pid}')
        store.set_meta(backlog.META_BACKLOG, raw)
        assert backlog.read(store) is None
        store.set_meta(backlog.META_BACKLOG, "{not json")
        assert backlog.read(store) is None


def test_the_notice_counts_with_separators() -> None:
    entry = backlog.Backlog(8760, backlog.INDEXING, 1, 0.0, "h", 0.0)
    assert entry.notice(1240) == "searched 1,240 of 10,000 photos; indexing continues"
    paused = backlog.Backlog(5, backlog.PAUSED, 1, 0.0, "h", 0.0)
    assert paused.notice(3) == "searched 3 of 8 photos; indexing is paused on battery"


class Battery:
    def __init__(self, on_battery: bool) -> None:
        self.state = on_battery

    def on_battery(self) -> bool | None:
        return self.state


def test_on_battery_nothing_is_embedded_until_the_charger_is_back(tmp_path: Path, small_embedder) -> None:
    dated_photos(tmp_path / "photos", 3)
    db = tmp_path / "index.db"
    power = Battery(True)
    done = threading.Event()
    with Store.open(db) as store:
        model = CountingEmbedder(small_embedder)
        gate = PowerGate("pause", power, poll=0.02)
        indexer = Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=8, power=gate)
        thread = threading.Thread(target=lambda: (indexer.sync([str(tmp_path / "photos")]), done.set()))
        thread.start()

        def paused_and_recorded() -> bool:
            with Store.open(db, create=False) as other:
                entry = backlog.read(other)
                return entry is not None and entry.state == backlog.PAUSED

        wait_for(paused_and_recorded, 30, "the pause to be recorded")
        assert model.images == 0 and not done.is_set()
        power.state = False
        thread.join(60)
        assert done.is_set() and model.images == 3
        assert store.counts().indexed == 3 and backlog.read(store) is None


def test_a_stop_while_paused_on_battery_leaves_the_photos_for_later(tmp_path: Path, small_embedder) -> None:
    dated_photos(tmp_path / "photos", 3)
    stop = threading.Event()
    results = []
    with Store.open(tmp_path / "index.db") as store:
        model = CountingEmbedder(small_embedder)
        gate = PowerGate("pause", Battery(True), poll=0.02)
        indexer = Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=8, power=gate)
        thread = threading.Thread(
            target=lambda: results.append(indexer.sync([str(tmp_path / "photos")], should_stop=stop.is_set))
        )
        thread.start()
        wait_for(lambda: gate.paused, 30, "the battery pause")
        stop.set()
        thread.join(30)
        (result,) = results
        assert result.summary.interrupted and len(result.deferred) == 3
        assert model.images == 0 and store.counts().indexed == 0
        assert backlog.read(store) is None


def test_a_cli_query_during_a_run_says_what_it_searched(tmp_path: Path, tiny_model_dir) -> None:
    from typer.testing import CliRunner

    from umsearch.cli import app

    runner = CliRunner()
    dated_photos(tmp_path / "photos", 3)
    db = tmp_path / "index.db"
    common = ["--db", str(db), "--model", str(tiny_model_dir)]
    assert runner.invoke(app, ["index", str(tmp_path / "photos"), *common], catch_exceptions=False).exit_code == 0
    with Store.open(db) as store:
        backlog.record(store, 5)  # as a run in this (live) process would
    result = runner.invoke(app, ["query", "a red sofa", *common, "--json"], catch_exceptions=False)
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 3
    assert "searched 3 of 8 photos; indexing continues" in result.stderr
    with Store.open(db) as store:
        backlog.clear(store)
    quiet = runner.invoke(app, ["query", "a blue sofa", *common, "--json"], catch_exceptions=False)
    assert "searched" not in quiet.stderr


def test_the_tui_search_carries_the_notice(tmp_path: Path, tiny_embedder) -> None:
    from umsearch.session import Session
    from umsearch.tui.service import SearchService

    dated_photos(tmp_path / "photos", 2)
    db = tmp_path / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=MAX_PIXELS).index([str(tmp_path / "photos")])
        backlog.record(store, 7)
    service = SearchService(Session(Store.open(db), embedder_factory=lambda *a: tiny_embedder))
    try:
        assert len(service.run("a red sofa")) == 2
        assert service.last_notice == "searched 2 of 9 photos; indexing continues"
    finally:
        service.close()
