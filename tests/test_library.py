"""A library that moves: photos moved to another disk keep their vectors and leave no stale rows; `status` names
folders that are gone; `forget` drops them; an unplugged drive (watched or not) keeps its index and is picked up
again when it is back. The drives are real: ext4 images on loop devices (root only; skipped elsewhere)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.fault_support import assert_consistent, command, environment, error_lines, external_drive, run
from tests.photos import write_photo
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
from umsearch.index import Indexer
from umsearch.library import gone_folders
from umsearch.store import Store
from umsearch.watch import Watcher, WatchOptions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]


def make_library(root: Path, count: int = 6, first_seed: int = 0, *, broken: bool = True) -> None:
    for i in range(count):
        write_photo(root / f"{2020 + i % 2}" / f"IMG_{first_seed + i:04d}.jpg", seed=first_seed + i)
    if broken:  # a file that fails: it has a row but no vector
        (root / "2020" / "broken.jpg").write_bytes(b"not a photo")


def photos_state(root: Path) -> dict:
    """The folder as the index should hold it: every photo but the broken file."""
    return {path: state for path, state in folder_state(root).items() if not path.endswith("broken.jpg")}


def index(store: Store, model, *roots: Path, messages: list | None = None):
    indexer = Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=4)
    on_error = (lambda path, reason: messages.append(f"{path}: {reason}")) if messages is not None else None
    return indexer.index([str(r) for r in roots], on_scan_error=on_error)


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    return run(*args, "--db", str(db))


def test_a_library_copied_to_another_disk_keeps_its_vectors_and_the_old_root_does_not_linger(tmp_path, small_embedder):
    model = CountingEmbedder(small_embedder)
    db = tmp_path / "index.db"
    with external_drive(tmp_path, "old") as old, external_drive(tmp_path, "new") as new:
        library = old.mount_point / "Photos"
        make_library(library)
        with Store.open(db) as store:
            first = index(store, model, library)
            assert (first.added, first.failed) == (6, 1)
            vectors = {Path(p).relative_to(library): i for p, i in row_ids(db, library).items()}
            shutil.copytree(library, new.mount_point / "Photos", copy_function=shutil.copy)  # new file times
            old.unplug()
            embedded = model.images
            moved = index(store, model, new.mount_point / "Photos")
            assert (moved.moved, moved.added, moved.removed) == (6, 0, 0)
            assert model.images == embedded  # no photo went through the model again
            after = {
                Path(p).relative_to(new.mount_point / "Photos"): i for p, i in row_ids(db, new.mount_point).items()
            }
            assert {k: v for k, v in after.items() if k.name != "broken.jpg"} == {
                k: v for k, v in vectors.items() if k.name != "broken.jpg"
            }  # each photo kept its row, and so its vector
            # The failed file was not moved (it has no vector to keep): it lingers below the old root, so
            # status names that root, and forget drops it.
            assert [(g.path, g.photos, g.failed) for g in gone_folders(store)] == [(str(library), 0, 1)]
            assert store.forget_below(str(library)) == 1
            assert gone_folders(store) == []
            assert str(library) not in store.roots()
            assert index_state(db, new.mount_point / "Photos") == photos_state(new.mount_point / "Photos")
        assert_consistent(db)


def test_moving_a_library_between_folders_on_the_same_disk_needs_no_model_either(tmp_path, small_embedder):
    model = CountingEmbedder(small_embedder)
    old, new, db = tmp_path / "old" / "Photos", tmp_path / "new" / "Photos", tmp_path / "index.db"
    make_library(old)
    with Store.open(db) as store:
        index(store, model, old)
        embedded = model.images
        new.parent.mkdir()
        os.rename(old, new)
        summary = index(store, model, new)
        assert (summary.moved, summary.added) == (6, 0) and model.images == embedded
        assert relative(index_state(db, tmp_path / "old"), old) == set()
        assert [g.path for g in gone_folders(store)] == [str(old)]  # broken.jpg's row is still there
        store.forget_below(str(old))
        index(store, model, new)
        assert str(old) not in store.roots()  # a root that is gone and holds nothing is dropped


def test_status_names_a_gone_root_and_forget_drops_it(tmp_path, small_embedder):
    db = tmp_path / "index.db"
    with external_drive(tmp_path, "usb") as drive:
        kept, away = tmp_path / "home" / "Photos", drive.mount_point / "Photos"
        make_library(kept, 2)
        make_library(away, 3, first_seed=10)
        with Store.open(db) as store:
            for root in (kept, away):
                index(store, small_embedder, root)
        drive.unplug()
        status = cli("status", "--json", db=db)
        assert json.loads(status.stdout)["gone"] == [
            {"path": str(away), "photos": 3, "failed": 1, "reason": "not found"}
        ]
        text = cli("status", db=db).stdout
        assert (
            f"gone      {away}: 3 photos and 1 failed file, folder not found (an unplugged drive? "
            f"'umsearch forget {away}' drops them)"
        ) in text

        asked = subprocess.run(
            command("forget", str(away), "--db", str(db)),
            env=environment(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert asked.returncode == 1
        assert error_lines(asked.stderr) == [
            f"error: forget 3 photos and 1 failed file at or below {away}? add --yes to confirm without a terminal"
        ]
        confirmed = cli("forget", str(away), "--yes", db=db)
        assert confirmed.returncode == 0, confirmed.stderr
        assert confirmed.stdout.strip() == f"forgot 3 photos and 1 failed file at or below {away}"
        report = json.loads(cli("status", "--json", db=db).stdout)
        assert report["gone"] == [] and report["indexed"] == 2
        again = cli("forget", str(away), "--yes", db=db)
        assert again.returncode == 1
        assert error_lines(again.stderr) == [f"error: nothing in the index at or below {away}"]
        # A subfolder of a present root can be forgotten too (it comes back with the next index of its root).
        sub = cli("forget", str(kept / "2021"), "--yes", db=db)
        assert sub.returncode == 0 and "still on disk" in sub.stderr
    assert_consistent(db)


def test_index_of_an_unplugged_drive_keeps_its_photos_and_finds_them_unchanged_when_it_is_back(
    tmp_path, small_embedder
):
    model = CountingEmbedder(small_embedder)
    db = tmp_path / "index.db"
    with external_drive(tmp_path, "usb") as drive:
        root = drive.mount_point  # the mount point itself: unplugged, it is an empty folder
        make_library(root / "Photos")
        with Store.open(db) as store:
            index(store, model, root)
            embedded, before = model.images, index_state(db, root)
            drive.unplug()
            messages: list[str] = []
            summary = index(store, model, root, messages=messages)
            assert summary.removed == 0
            assert messages == [
                f"{root}: is empty, but the index holds photos there (an unmounted drive?): they are kept; "
                "'umsearch forget' drops them"
            ]
            assert index_state(db, root) == before
            assert [(g.path, g.reason) for g in gone_folders(store)] == [(str(root), "empty")]
            drive.plug_in()
            back = index(store, model, root)
            assert (back.added, back.removed, back.unchanged, back.failed) == (0, 0, 6, 1)
            assert model.images == embedded and gone_folders(store) == []


def test_a_watched_drive_unplugged_and_plugged_back_keeps_its_index_and_is_followed_again(tmp_path, small_embedder):
    model = CountingEmbedder(small_embedder)
    db = tmp_path / "index.db"
    with external_drive(tmp_path, "usb") as drive:
        photos = drive.mount_point / "Photos"  # unplugged, this folder is not there at all
        make_library(photos, 4, broken=False)
        messages: list[str] = []
        with Store.open(db) as store:
            indexer = Indexer(store, lambda: model, max_pixels=MAX_PIXELS, batch_size=4)
            watcher = Watcher(
                indexer, [str(photos)], WatchOptions(quiet_period=0.2, debounce=0.05), on_message=messages.append
            )
            watcher.start()
            try:
                wait_in_step(db, photos)
                embedded, before = model.images, index_state(db, photos)
                drive.unplug()
                wait_for(lambda: any("is not there" in m for m in messages), 30, "the watcher to notice")
                threading.Event().wait(6)  # a few observer checks later: said once, index untouched
                assert [m for m in messages if "is not there" in m] == [
                    f"{photos} is not there (unmounted?); its index is kept as it is"
                ]
                assert index_state(db, photos) == before
                drive.plug_in()
                wait_for(lambda: any("is back" in m for m in messages), 30, "the watcher to see the drive back")
                write_photo(photos / "after" / "new.jpg", seed=99)  # followed again, through new watches
                state = wait_in_step(db, photos)
                assert len(state) == 5 and model.images == embedded + 1
            finally:
                watcher.stop()
    assert not [m for m in messages if "observer stopped" in m]


def test_a_watcher_starts_while_its_drive_is_unplugged_and_picks_it_up_when_plugged_in(tmp_path, small_embedder):
    model = CountingEmbedder(small_embedder)
    db = tmp_path / "index.db"
    with external_drive(tmp_path, "usb") as drive:
        photos = drive.mount_point / "Photos"
        make_library(photos, 3, broken=False)
        with Store.open(db) as store:
            index(store, model, photos)
            drive.unplug()
            messages: list[str] = []
            watcher = Watcher(
                Indexer(store, lambda: model, max_pixels=MAX_PIXELS),
                [str(photos)],
                WatchOptions(quiet_period=0.2, debounce=0.05),
                on_message=messages.append,
            )
            watcher.start()
            try:
                wait_for(lambda: any("is not there" in m for m in messages), 30, "the watcher to say so")
                drive.plug_in()
                write_photo(photos / "2021" / "late.jpg", seed=50)
                wait_in_step(db, photos)
            finally:
                watcher.stop()
        assert model.images == 3 + 1


def test_a_root_whose_photos_were_all_deleted_is_emptied_in_the_index_too(tmp_path, small_embedder):
    """Only an empty root on another device (a mount point with nothing mounted) keeps its photos."""
    root = tmp_path / "photos"
    make_library(root, 3, broken=False)
    with Store.open(tmp_path / "index.db") as store:
        index(store, small_embedder, root)
        for photo in list(root.rglob("*.jpg")):
            photo.unlink()
        for folder in sorted(root.iterdir()):
            folder.rmdir()  # the root itself stays, empty, on the same disk
        messages: list[str] = []
        summary = index(store, small_embedder, root, messages=messages)
        assert (summary.removed, messages) == (3, [])
        assert list(store.iter_files()) == [] and gone_folders(store) == []
