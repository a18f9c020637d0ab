"""The index file deleted, replaced or made read-only under a running watcher: one line, no crash loop, and never
a silent write to a file that is no longer the index."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import threading
from pathlib import Path

import pytest

from tests.fault_support import assert_consistent, budget_args, error_lines, start, stop_process, wait_for_holder
from tests.photos import write_photo
from tests.watch_support import MAX_PIXELS, index_state, relative, wait_for, wait_in_step
from umsearch.errors import IndexGoneError
from umsearch.index import Indexer
from umsearch.store import Store
from umsearch.watch import Watcher, WatchOptions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]


class Running:
    def __init__(self, db: Path, photos: Path, embedder) -> None:
        self.messages: list[str] = []
        self.store = Store.open(db)
        self.indexer = Indexer(self.store, lambda: embedder, max_pixels=MAX_PIXELS, batch_size=4)
        options = WatchOptions(quiet_period=0.2, debounce=0.05)
        self.watcher = Watcher(self.indexer, [str(photos)], options, on_message=self.messages.append)
        self.watcher.start()
        wait_for(self.watcher.caught_up.is_set, 60, "the start-up reconciliation")

    def rows(self) -> set[str]:
        """What the watcher's own open connection holds (the file it would write to)."""
        return {row.path for row in self.store.iter_files()}

    def finished(self) -> bool:
        return self.watcher._thread is None or not self.watcher._thread.is_alive()


@pytest.fixture
def running(tmp_path, small_embedder):
    photos = tmp_path / "photos"
    write_photo(photos / "a.jpg", seed=1)
    started: list[Running] = []

    def begin() -> Running:
        started.append(Running(tmp_path / "index.db", photos, small_embedder))
        return started[-1]

    yield begin
    for item in started:
        try:
            item.watcher.stop()
        except IndexGoneError:
            pass
        finally:
            item.store.close()


def test_an_index_deleted_under_the_watcher_stops_it_with_one_line_and_nothing_more_is_written(tmp_path, running):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    watch = running()
    assert relative(wait_in_step(db, photos), photos) == {"a.jpg"}
    db.unlink()  # as `rm index.db` does: the -wal and -shm files stay
    write_photo(photos / "b.jpg", seed=2)
    wait_for(watch.finished, 30, "the watcher to stop")
    with pytest.raises(IndexGoneError, match=r"was deleted while this process had it open; the watcher stopped"):
        watch.watcher.stop()
    assert watch.rows() == {str(photos / "a.jpg")}  # b.jpg never went into the deleted file
    assert not db.exists()  # nor into a new one made behind the user's back


def test_an_index_replaced_under_the_watcher_stops_it_and_the_new_file_is_left_alone(tmp_path, running):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    watch = running()
    wait_in_step(db, photos)
    backup = tmp_path / "restored.db"
    with Store.open(db) as store:  # a consistent copy, as a backup tool restores one
        store.db.execute(f"VACUUM INTO '{backup}'")
    os.replace(backup, db)
    before = db.read_bytes()
    write_photo(photos / "b.jpg", seed=2)
    wait_for(watch.finished, 30, "the watcher to stop")
    with pytest.raises(IndexGoneError, match=r"was replaced by another file while this process had it open"):
        watch.watcher.stop()
    assert watch.rows() == {str(photos / "a.jpg")}
    assert db.read_bytes() == before
    assert relative(index_state(db, photos), photos) == {"a.jpg"}


def test_an_index_made_read_only_pauses_the_watcher_until_it_is_writable_again(tmp_path, running):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    watch = running()
    wait_in_step(db, photos)
    mode = stat.S_IMODE(db.stat().st_mode)
    os.chmod(db, 0o400)  # root could still write through the open descriptor: the watcher must not
    try:
        write_photo(photos / "b.jpg", seed=2)
        wait_for(lambda: any("read-only" in m for m in watch.messages), 30, "the watcher to notice")
        write_photo(photos / "c.jpg", seed=3)
        threading.Event().wait(2.5)  # several pause checks: still one line, still nothing written
        assert [m for m in watch.messages if "read-only" in m] == [
            f"the index {db} is read-only; indexing paused until it is writable again (queries keep working)"
        ]
        assert watch.rows() == {str(photos / "a.jpg")}
        assert not watch.finished()
    finally:
        os.chmod(db, mode)
    assert relative(wait_in_step(db, photos), photos) == {"a.jpg", "b.jpg", "c.jpg"}
    assert f"the index {db} is writable again: indexing resumed" in watch.messages
    assert_consistent(db)


def test_umsearch_watch_whose_index_is_deleted_exits_1_with_one_line(tmp_path, tiny_model_dir, processes):
    photos, db = tmp_path / "photos", tmp_path / "data" / "index.db"
    write_photo(photos / "a.jpg", seed=1)
    process = start("watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir), *budget_args())
    processes.append(process)
    wait_for_holder(db, process, "watch", "watching")
    shutil.rmtree(db.parent)  # the whole data folder, as a clean-up script might
    write_photo(photos / "b.jpg", seed=2)
    try:
        code = process.wait(timeout=30)
    except Exception:
        stop_process(process, signal.SIGKILL)
        raise
    stderr = process.stderr.read()
    assert code == 1, stderr
    assert "Traceback" not in stderr
    [line] = error_lines(stderr)
    assert line == (
        f"error: the index {db} was deleted while this process had it open; the watcher stopped without writing "
        "to it (start it again to use the index at that path)"
    )
    assert not db.exists()
