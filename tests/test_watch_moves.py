"""A move reported in two halves (the kernel's pair handed over apart on a busy machine, or a photo moved out and
back in through a folder nobody watches) keeps its row and vector: the watcher drops a vanished file's row only
after a moment, in which the other half can still arrive."""

from __future__ import annotations

import os
import time

import pytest

from tests.photos import write_photo
from tests.watch_support import MAX_PIXELS, CountingEmbedder, row_ids, wait_for, wait_in_step
from umsearch.index import Indexer
from umsearch.store import Store
from umsearch.watch import GONE_GRACE_SECONDS, Watcher, WatchOptions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]


def test_sync_keeps_a_vanished_row_until_it_is_settled_so_the_second_half_of_a_move_finds_it(tmp_path, small_embedder):
    photos = tmp_path / "photos"
    write_photo(photos / "a.jpg", seed=1)
    with Store.open(tmp_path / "index.db") as store:
        indexer = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS)
        indexer.sync([str(photos)])
        row_id = store.file_by_path(str(photos / "a.jpg")).id
        os.rename(photos / "a.jpg", photos / "b.jpg")
        first = indexer.sync([str(photos / "a.jpg")], settled=lambda row: False)  # only the source reported yet
        assert (first.summary.removed, first.deferred) == (0, [str(photos / "a.jpg")])
        second = indexer.sync([str(photos / "b.jpg"), *first.deferred], settled=lambda row: True)
        assert (second.summary.moved, second.summary.added, second.summary.removed) == (1, 0, 0)
        assert store.file_by_path(str(photos / "b.jpg")).id == row_id


def test_a_photo_moved_out_and_back_in_through_an_unwatched_folder_keeps_its_vector(tmp_path, small_embedder):
    photos, elsewhere, db = tmp_path / "photos", tmp_path / "elsewhere", tmp_path / "index.db"
    write_photo(photos / "a.jpg", seed=1)
    elsewhere.mkdir()
    model = CountingEmbedder(small_embedder)
    with Store.open(db) as store:
        watcher = Watcher(
            Indexer(store, lambda: model, max_pixels=MAX_PIXELS),
            [str(photos)],
            WatchOptions(quiet_period=0.2, debounce=0.05),
        )
        watcher.start()
        try:
            wait_for(watcher.caught_up.is_set, 60, "the start-up reconciliation")
            wait_in_step(db, photos)
            before = row_ids(db, photos)[str(photos / "a.jpg")]
            os.rename(photos / "a.jpg", elsewhere / "a.jpg")  # looks deleted to the watcher...
            time.sleep(0.6 * GONE_GRACE_SECONDS)  # ...for a moment: watchdog has given up pairing (0.5 s)
            os.rename(elsewhere / "a.jpg", photos / "back.jpg")
            wait_in_step(db, photos)
            assert row_ids(db, photos) == {str(photos / "back.jpg"): before}
            assert model.images == 1  # embedded once, at start-up
            os.unlink(photos / "back.jpg")  # a real deletion still leaves the index, a moment later
            wait_in_step(db, photos)
        finally:
            watcher.stop()
