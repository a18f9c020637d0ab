"""A disk that fills up under the index: one line in words, exit 1, a consistent index, and the next run resumes.

The full disk is real: a small tmpfs (root only; skipped elsewhere), filled with a file until the kernel says
ENOSPC, so SQLite meets its own SQLITE_FULL exactly as on a user's disk. One test needs no root: SQLite's
max_page_count makes the same SQLITE_FULL from a size limit of the database itself.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from tests.fault_support import (
    assert_consistent,
    budget_args,
    error_lines,
    fill_disk,
    indexed_count,
    json_lines,
    resize,
    run,
    small_disk,
)
from tests.photos import write_photo
from tests.watch_support import MAX_PIXELS, folder_state, index_state, wait_for, wait_in_step
from umsearch.errors import DiskFullError
from umsearch.index import Indexer
from umsearch.store import Store
from umsearch.watch import Watcher, WatchOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # real disks and processes: see CONTRIBUTING.md

FULL_LINE = re.compile(
    r"^error: the disk holding the index \((?P<folder>.+)\) is full; (?P<saved>\d+) photos? (?:was|were) saved; "
    r"free space and run again$"
)


def make_photos(root: Path, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        write_photo(root / f"roll{i // 20}" / f"IMG_{i:04d}.jpg", seed=i, size=(48 + i % 7, 40))


class FillAfter:
    """Progress that fills the disk once `batches` batches have landed: the next commit meets a full disk."""

    def __init__(self, folder: Path, batches: int) -> None:
        self.folder = folder
        self.batches = batches
        self.filler: Path | None = None

    def start(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        self.batches -= 1
        if self.batches == 0:
            self.filler = fill_disk(self.folder)

    def note(self, text: str | None) -> None:
        pass

    def finish(self) -> None:
        pass


@pytest.mark.parametrize("batches_before", [1, 3])
def test_a_disk_filling_up_mid_run_keeps_what_was_saved_and_the_next_run_resumes(
    tmp_path, small_embedder, batches_before
):
    photos = tmp_path / "photos"
    make_photos(photos, 24)
    with small_disk(tmp_path / "disk", "4m") as disk:
        db = disk / "index.db"
        filling = FillAfter(disk, batches_before)
        with Store.open(db) as store:
            indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS, batch_size=4, progress=filling)
            with pytest.raises(DiskFullError) as caught:
                indexer.index([str(photos)])
        message = str(caught.value)
        assert message == (
            f"the disk holding the index ({disk}) is full; {4 * batches_before} photos were saved; "
            "free space and run again"
        )
        assert indexed_count(db) == 4 * batches_before  # exactly what the message says
        assert_consistent(db)

        filling.filler.unlink()  # free space, run again: it resumes with what is missing
        with Store.open(db) as store:
            summary = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS, batch_size=4).index([str(photos)])
        assert (summary.added, summary.unchanged) == (24 - 4 * batches_before, 4 * batches_before)
        assert index_state(db, photos) == folder_state(photos)
        assert_consistent(db)


def test_umsearch_index_on_a_full_disk_prints_one_line_and_exits_1(tmp_path, tiny_model_dir):
    photos = tmp_path / "photos"
    make_photos(photos, 36)
    with small_disk(tmp_path / "disk", "640k") as disk:
        db = disk / "index.db"
        args = ("index", str(photos), "--db", str(db), "--model", str(tiny_model_dir), "--batch-size", "2")
        first = run(*args, *budget_args())
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        [line] = error_lines(first.stderr)
        match = FULL_LINE.match(line)
        assert match, line
        assert match["folder"] == str(disk)
        saved = int(match["saved"])
        assert 0 < saved < 36  # the disk was chosen to fill part of the way through
        assert indexed_count(db) == saved
        assert_consistent(db)

        resize(disk, "16m")  # free space, run again
        second = run(*args, *budget_args(), "--json")
        assert second.returncode == 0, second.stderr
        [summary] = json_lines(second.stdout)
        assert (summary["added"], summary["unchanged"]) == (36 - saved, saved)
        assert index_state(db, photos) == folder_state(photos)
        assert_consistent(db)


def test_sqlite_full_from_a_size_limit_is_reported_the_same_way_without_root(tmp_path, small_embedder):
    """SQLite's max_page_count caps the database: the same SQLITE_FULL, on any machine, for any user."""
    photos = tmp_path / "photos"
    make_photos(photos, 40)
    db = tmp_path / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS, batch_size=4).index([str(photos / "roll0")])
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages}")  # no room to grow
        indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS, batch_size=4)
        with pytest.raises(DiskFullError) as caught:
            indexer.index([str(photos)])
        saved = caught.value.saved
        assert saved is not None and saved < 20
        assert store.counts().indexed == 20 + saved
        # The connection is still usable (no transaction left open by the failed commit).
        store.db.execute("PRAGMA max_page_count = 1000000")
        summary = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS, batch_size=4).index([str(photos)])
        assert summary.added == 20 - saved
    assert index_state(db, photos) == folder_state(photos)
    assert_consistent(db)


def test_a_watcher_on_a_full_disk_pauses_says_so_once_and_resumes_when_space_is_freed(tmp_path, small_embedder):
    photos = tmp_path / "photos"
    make_photos(photos, 4)
    with small_disk(tmp_path / "disk", "4m") as disk:
        db = disk / "index.db"
        messages: list[str] = []
        with Store.open(db) as store:
            indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS, batch_size=4)
            watcher = Watcher(
                indexer, [str(photos)], WatchOptions(quiet_period=0.2, debounce=0.05), on_message=messages.append
            )
            watcher.start()
            try:
                wait_in_step(db, photos)
                filler = fill_disk(disk)
                make_photos(photos, 16, start=100)
                wait_for(lambda: any("is full" in m for m in messages), 60, "the watcher to say the disk is full")
                make_photos(photos, 8, start=200)  # more arrive while paused: no more lines, no writes
                paused_at = len(index_state(db, photos))
                threading.Event().wait(3)
                [line] = [m for m in messages if "is full" in m]  # said once, however many rounds wait
                match = re.fullmatch(
                    rf"the disk holding the index \({re.escape(str(disk))}\) is full(?:; (\d+) photos? (?:was|were) "
                    r"saved)?; indexing paused until space is freed \(queries keep working\)",
                    line,
                )
                assert match, line
                assert int(match[1]) == paused_at  # photos this watcher saved (since it started) before the disk filled
                assert len(index_state(db, photos)) == paused_at
                assert_consistent(db)  # readers (queries) see a whole index meanwhile

                filler.unlink()
                state = wait_in_step(db, photos, timeout=90)
                assert len(state) == 28
                assert any("has room again: indexing resumed" in m for m in messages), messages
            finally:
                watcher.stop()
        assert_consistent(db)
        assert not any("Traceback" in m or "retrying" in m for m in messages), messages
