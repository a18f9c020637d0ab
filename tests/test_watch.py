"""The watcher keeps the index equal to the folder as photos arrive, change, move and disappear.

Real file system events in temporary folders, the tiny model through the real loading path. Every test
waits with a deadline for the index to equal a fresh scan of the folder, never for a fixed time.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.photos import picture, write_photo
from tests.watch_support import (
    MAX_PIXELS,
    CountingEmbedder,
    folder_state,
    index_state,
    relative,
    row_ids,
    wait_for,
    wait_in_step,
)
from umsearch.errors import UmsearchError
from umsearch.index import Indexer
from umsearch.store import Store
from umsearch.watch import Watcher, WatchOptions
from umsearch.watchstate import WatcherLock, read_status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    # watchdog re-registers a new subfolder's watch and says so; harmless.
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    return root


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "index.db"


class Running:
    """A watcher on its own thread with its own store connection, and the counting embedder it uses."""

    def __init__(self, db: Path, root: Path, embedder, **options) -> None:
        self.store = Store.open(db)
        self.model = CountingEmbedder(embedder)
        self.indexer = Indexer(self.store, lambda: self.model, max_pixels=MAX_PIXELS, batch_size=16)
        settings = {"quiet_period": 0.5, "debounce": 0.1, **options}
        self.watcher = Watcher(self.indexer, [str(root)], WatchOptions(**settings))
        self.watcher.start()
        wait_for(self.watcher.caught_up.is_set, 60, "the start-up reconciliation")

    def stop(self) -> None:
        try:
            self.watcher.stop()
        finally:
            self.store.close()


@pytest.fixture
def watching(db, photos, small_embedder):
    running: list[Running] = []

    def start(**options) -> Running:
        running.append(Running(db, photos, small_embedder, **options))
        return running[-1]

    yield start
    for item in running:
        item.stop()


def test_catches_up_at_start_then_indexes_new_photos(db, photos, watching):
    write_photo(photos / "before.jpg", seed=1)
    watch = watching()
    assert relative(wait_in_step(db, photos), photos) == {"before.jpg"}
    write_photo(photos / "new.png", seed=2)
    write_photo(photos / "deeper" / "new" / "folder.jpg", seed=3)  # a subfolder made after start is watched
    assert relative(wait_in_step(db, photos), photos) == {"before.jpg", "new.png", "deeper/new/folder.jpg"}
    assert watch.model.images == 3


def test_a_modified_photo_is_embedded_again(db, photos, watching):
    write_photo(photos / "a.jpg", seed=1)
    watch = watching()
    wait_in_step(db, photos)
    with Store.open(db) as store:
        before = store.file_by_path(str(photos / "a.jpg")).hash
    write_photo(photos / "a.jpg", seed=99, size=(80, 80))
    wait_in_step(db, photos)
    with Store.open(db) as store:
        assert store.file_by_path(str(photos / "a.jpg")).hash != before
    assert watch.model.images == 2


def test_renames_and_moves_across_folders_keep_their_vectors(db, photos, watching):
    write_photo(photos / "a.jpg", seed=1)
    write_photo(photos / "trip" / "b.jpg", seed=2)
    watch = watching()
    ids = row_ids(db, photos)
    os.rename(photos / "a.jpg", photos / "renamed.jpg")
    (photos / "elsewhere").mkdir()
    os.rename(photos / "trip" / "b.jpg", photos / "elsewhere" / "b.jpg")
    assert relative(wait_in_step(db, photos), photos) == {"renamed.jpg", "elsewhere/b.jpg"}
    after = row_ids(db, photos)
    assert after[str(photos / "renamed.jpg")] == ids[str(photos / "a.jpg")]
    assert after[str(photos / "elsewhere" / "b.jpg")] == ids[str(photos / "trip" / "b.jpg")]
    assert watch.model.images == 2  # only the start-up embeddings


def test_a_renamed_or_moved_folder_keeps_its_vectors(db, photos, watching):
    for i in range(6):
        write_photo(photos / "2024" / "summer" / f"img{i}.jpg", seed=i)
    watch = watching()
    ids = set(row_ids(db, photos).values())
    os.rename(photos / "2024" / "summer", photos / "2024" / "Summer in Portugal")
    wait_in_step(db, photos)
    os.makedirs(photos / "archive")
    os.rename(photos / "2024", photos / "archive" / "2024")
    state = wait_in_step(db, photos)
    assert all(p.startswith(str(photos / "archive" / "2024" / "Summer in Portugal")) for p in state)
    assert set(row_ids(db, photos).values()) == ids
    assert watch.model.images == 6


def test_deleted_photos_and_folders_are_removed(db, photos, watching):
    write_photo(photos / "keep.jpg", seed=1)
    write_photo(photos / "gone.jpg", seed=2)
    for i in range(3):
        write_photo(photos / "old" / "sub" / f"x{i}.png", seed=10 + i)
    watching()
    assert len(wait_in_step(db, photos)) == 5
    (photos / "gone.jpg").unlink()
    shutil.rmtree(photos / "old")
    assert relative(wait_in_step(db, photos), photos) == {"keep.jpg"}


def test_temporary_files_are_ignored_until_renamed_to_their_final_name(db, photos, watching):
    watching()
    write_photo(photos / "download.jpg.part", seed=1, format="JPEG")
    write_photo(photos / "photo.jpg~", seed=2, format="JPEG")
    write_photo(photos / ".hidden" / "secret.jpg", seed=3)
    write_photo(photos / "visible.jpg", seed=4)  # the index catches up with this one after the others' events
    wait_in_step(db, photos)
    assert relative(index_state(db, photos), photos) == {"visible.jpg"}
    os.rename(photos / "download.jpg.part", photos / "download.jpg")
    assert relative(wait_in_step(db, photos), photos) == {"visible.jpg", "download.jpg"}


def test_a_file_written_in_slow_chunks_is_embedded_once_when_complete(db, photos, watching, tmp_path):
    watch = watching(quiet_period=2.0)
    source = tmp_path / "source.png"
    picture(7, (120, 90)).save(source)
    data = source.read_bytes()
    target = photos / "arriving.png"
    with open(target, "wb") as fh:
        for start in range(0, len(data), len(data) // 6 + 1):
            fh.write(data[start : start + len(data) // 6 + 1])
            fh.flush()
            time.sleep(0.2)
            assert index_state(db, photos) == {}, "a photo was indexed before it was complete"
    wait_in_step(db, photos)
    assert watch.model.images == 1
    with Store.open(db) as store:
        assert store.counts().failed == 0


def test_a_burst_is_embedded_in_batches_while_queries_keep_working(db, photos, watching, small_embedder):
    from tests.plain_search import rank

    watch = watching()
    query = small_embedder.embed_images([picture(0, (32, 32))])[0]
    errors: list[BaseException] = []
    queries = 0
    done = threading.Event()

    def ask_continuously() -> None:
        nonlocal queries
        with Store.open(db) as store:
            while not done.is_set():
                try:
                    rank(store, query, 5)
                    store.counts()
                    queries += 1
                except BaseException as exc:
                    errors.append(exc)
                    return

    asker = threading.Thread(target=ask_continuously)
    asker.start()
    try:
        for i in range(500):
            write_photo(photos / f"roll{i // 100}" / f"IMG_{i:04d}.png", seed=1000 + i, size=(24, 16))
        state = wait_in_step(db, photos, timeout=150)
    finally:
        done.set()
        asker.join()
    assert len(state) == 500
    assert not errors, errors[0]
    assert queries > 0
    assert watch.model.images == 500
    assert watch.model.calls <= 500 / 4  # batches, not one model call per photo


def test_missed_events_are_repaired_at_start_and_after_an_overflow(db, photos, watching):
    write_photo(photos / "a.jpg", seed=1)
    write_photo(photos / "b.jpg", seed=2)
    first = watching()
    wait_in_step(db, photos)
    first.stop()
    # While no watcher runs: one photo added, one renamed, one deleted.
    write_photo(photos / "c.jpg", seed=3)
    os.rename(photos / "a.jpg", photos / "a2.jpg")
    (photos / "b.jpg").unlink()
    second = watching()
    assert relative(wait_in_step(db, photos), photos) == {"a2.jpg", "c.jpg"}
    assert second.model.images == 1
    # The index drifts without any event (as if the kernel queue overflowed and dropped them)...
    with Store.open(db) as store:
        store.delete_files([store.file_by_path(str(photos / "c.jpg")).id])
    assert relative(index_state(db, photos), photos) == {"a2.jpg"}
    # ...and watchdog's overflow report (a log record: it repairs its own watches, but not our index) makes the
    # watcher compare everything again.
    if sys.platform.startswith("linux"):
        from watchdog.observers import inotify_c

        assert inotify_c.logger.name == "watchdog.observers.inotify_c"
        assert "overflowed" in Path(inotify_c.__file__).read_text()
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; filesystem events were lost")
    assert relative(wait_in_step(db, photos), photos) == {"a2.jpg", "c.jpg"}


def test_periodic_rescans_catch_changes_no_event_reported(db, photos, watching):
    write_photo(photos / "a.jpg", seed=1)
    watching(rescan_interval=1.0)
    wait_in_step(db, photos)
    with Store.open(db) as store:
        store.delete_files([store.file_by_path(str(photos / "a.jpg")).id])
    assert relative(wait_in_step(db, photos), photos) == {"a.jpg"}


def test_polling_mode_follows_changes_too(db, photos, watching):
    watching(polling=True)
    write_photo(photos / "a.jpg", seed=1)
    wait_in_step(db, photos)
    os.rename(photos / "a.jpg", photos / "b.jpg")
    assert relative(wait_in_step(db, photos), photos) == {"b.jpg"}


def test_only_one_watcher_per_index_and_status_sees_it(db, photos):
    Store.open(db).close()
    assert read_status(db) is None
    with WatcherLock(db, (str(photos),)) as lock:
        lock.report("watching")
        running = read_status(db)
        assert running.pid == os.getpid() and running.activity == "watching"
        with pytest.raises(UmsearchError, match="another watcher"):
            WatcherLock(db, (str(photos),)).acquire()
    assert read_status(db) is None


def test_a_missing_folder_is_refused(db, tmp_path, small_embedder):
    with Store.open(db) as store:
        indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS)
        with pytest.raises(UmsearchError, match="no such file or folder"):
            Watcher(indexer, [str(tmp_path / "nowhere")])


def test_sync_reconciles_only_the_paths_it_is_given(db, photos, small_embedder):
    write_photo(photos / "a" / "1.jpg", seed=1)
    write_photo(photos / "b" / "2.jpg", seed=2)
    with Store.open(db) as store:
        indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS)
        result = indexer.sync([str(photos / "a")])
        assert result.summary.added == 1
        assert relative(index_state(db, photos), photos) == {"a/1.jpg"}
        os.rename(photos / "a", photos / "c")
        result = indexer.sync([str(photos / "a"), str(photos / "c"), str(photos / "b")])
        assert (result.summary.moved, result.summary.added, result.summary.removed) == (1, 1, 0)
    assert index_state(db, photos) == folder_state(photos)


def test_a_folder_given_with_files_inside_it_is_scanned_once():
    from umsearch.planning import outermost_paths

    assert outermost_paths(["/a/b", "/a/b/c.jpg", "/a/bc.jpg", "/x/y/z", "/x"]) == ["/a/b", "/a/bc.jpg", "/x"]


def test_a_file_is_ready_when_closed_after_writing_or_still_for_the_quiet_period(tmp_path):
    from umsearch.scan import FoundFile
    from umsearch.watch import Stability

    stability = Stability(quiet_period=0.3)
    now_ns = time.time_ns()
    fresh = FoundFile(str(tmp_path / "a.jpg"), 10, now_ns)
    assert not stability.ready(fresh)  # just written, not known to be closed
    stability.closed(fresh.path)
    assert stability.ready(fresh)
    stability.writing(fresh.path)  # opened for writing again
    assert not stability.ready(fresh)
    grown = FoundFile(fresh.path, 20, now_ns)
    assert not stability.ready(grown)  # still growing: the quiet period starts again
    wait_for(lambda: stability.ready(grown), 5, "the quiet period to pass")
    assert stability.ready(FoundFile(str(tmp_path / "old.jpg"), 10, now_ns - 10**10))  # untouched for 10 s


def test_a_broken_photo_is_recorded_as_failed_and_the_watcher_carries_on(db, photos, watching):
    watch = watching()
    (photos / "broken.jpg").write_bytes(b"not a picture at all")
    write_photo(photos / "fine.jpg", seed=5)

    def recorded() -> bool:
        with Store.open(db) as store:
            row = store.file_by_path(str(photos / "broken.jpg"))
            return (
                row is not None and row.status == "failed" and store.file_by_path(str(photos / "fine.jpg")) is not None
            )

    wait_for(recorded, 60, "the broken photo to be recorded as failed")
    os.rename(photos / "fine.jpg", photos / "still fine.jpg")
    wait_for(lambda: relative(index_state(db, photos), photos) == {"still fine.jpg"}, 60, "the rename")
    assert watch.model.images == 1


def test_a_moved_file_not_ready_yet_keeps_its_old_row_until_it_is_read(db, photos, small_embedder):
    write_photo(photos / "a.jpg", seed=1)
    with Store.open(db) as store:
        indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS)
        indexer.sync([str(photos)])
        row_id = store.file_by_path(str(photos / "a.jpg")).id
        os.rename(photos / "a.jpg", photos / "b.jpg")
        waiting = indexer.sync([str(photos / "a.jpg"), str(photos / "b.jpg")], ready=lambda item: False)
        assert sorted(waiting.deferred) == [str(photos / "a.jpg"), str(photos / "b.jpg")]
        assert store.file_by_path(str(photos / "a.jpg")).id == row_id  # not removed: it may be b.jpg's source
        done = indexer.sync(waiting.deferred)
        assert (done.summary.moved, done.summary.added, done.deferred) == (1, 0, [])
        assert store.file_by_path(str(photos / "b.jpg")).id == row_id


def test_a_vanished_folder_keeps_its_index_and_is_followed_again_when_it_returns(db, photos, watching):
    write_photo(photos / "a.jpg", seed=1)
    watch = watching()
    wait_in_step(db, photos)
    messages: list[str] = []
    watch.watcher.on_message = messages.append
    shutil.rmtree(photos)  # as an unmounted drive looks
    wait_for(lambda: any("is not there" in m for m in messages), 30, "the watcher to notice")
    assert relative(index_state(db, photos), photos) == {"a.jpg"}
    photos.mkdir()
    write_photo(photos / "b.jpg", seed=2)
    assert relative(wait_in_step(db, photos), photos) == {"b.jpg"}


class SlowModel(CountingEmbedder):
    """The real model behind a call that outlasts the stop grace period (a big batch on a slow CPU)."""

    def embed_images(self, images, batch_size: int = 8):
        return self._slowly(super().embed_images(images, batch_size=batch_size))

    def embed_prepared(self, batch):
        return self._slowly(super().embed_prepared(batch))

    @staticmethod
    def _slowly(result):
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return result


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_abandons_a_batch_that_outlasts_the_grace_period_and_keeps_the_index_whole(db, photos, small_embedder):
    import signal

    from umsearch.watch import install_stop_signals

    for i in range(24):
        write_photo(photos / f"p{i:02d}.png", seed=i, size=(24, 16))
    with Store.open(db) as store:
        model = SlowModel(small_embedder)
        indexer = Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=4)
        watcher = Watcher(indexer, [str(photos)], WatchOptions(quiet_period=0, stop_grace=0.3))
        signalled: list[float] = []

        def terminate_during_the_second_batch() -> None:
            wait_for(lambda: model.calls >= 2, 60, "the second batch to start")
            signalled.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=terminate_during_the_second_batch, daemon=True).start()
        restore = install_stop_signals(watcher)  # the watcher runs on this (the main) thread, as in the CLI
        try:
            with pytest.raises(KeyboardInterrupt):
                watcher.run()
        finally:
            restore()
        assert watcher.stopping and time.monotonic() - signalled[0] < 1.5  # well before the batch would end
        assert len(index_state(db, photos)) == 4  # the first batch, committed; the second never landed
        ok_ids = {r[0] for r in store.db.execute("SELECT id FROM files WHERE status = 'ok'")}
        assert ok_ids == {r[0] for r in store.db.execute("SELECT id FROM embeddings")}
        summary = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS).index([str(photos)])
        assert (summary.added, summary.unchanged) == (20, 4)


def test_excluded_paths_are_never_indexed(db, photos, watching):
    watching(excludes=("cache", "*_thumb.jpg"))
    write_photo(photos / "cache" / "x.jpg", seed=1)
    write_photo(photos / "y_thumb.jpg", seed=2)
    write_photo(photos / "y.jpg", seed=3)  # indexed after the others' events were seen
    wait_for(lambda: relative(index_state(db, photos), photos) == {"y.jpg"}, 60, "y.jpg alone to be indexed")
    os.rename(photos / "y.jpg", photos / "cache" / "y.jpg")  # moved into an excluded folder: leaves the index
    wait_for(lambda: index_state(db, photos) == {}, 60, "the moved photo to leave the index")
