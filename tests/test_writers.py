"""One writer per index: a second `index` run waits for the first, `index` beside a watcher joins it (or names it),
and `watch` waits for an `index` run. Never twice the work, never a corrupt index."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.fault_support import (
    Lines,
    assert_consistent,
    budget_args,
    error_lines,
    json_lines,
    run,
    start,
    stop_process,
    wait_for_holder,
)
from tests.photos import write_photo
from tests.watch_support import folder_state, index_state, wait_for, wait_in_step
from umsearch.watchstate import INDEX, IndexLock, holder, read_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.skipif(os.name == "nt", reason="POSIX signals")]


def make_photos(root, count: int, start_seed: int = 0) -> None:
    for i in range(count):
        write_photo(root / f"IMG_{start_seed + i:04d}.png", seed=start_seed + i, size=(24, 16))


def index_args(photos, db, model, *extra: str) -> list[str]:
    return ["index", str(photos), "--db", str(db), "--model", str(model), *budget_args(), "--json", *extra]


def test_a_second_index_run_waits_for_the_first_and_then_finds_nothing_to_do(tmp_path, tiny_model_dir, processes):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    make_photos(photos, 80)
    first = start(*index_args(photos, db, tiny_model_dir, "--batch-size", "2"))
    processes.append(first)
    wait_for_holder(db, first, INDEX)
    second = start(*index_args(photos, db, tiny_model_dir))
    processes.append(second)
    out_first, err_first = first.communicate(timeout=240)
    out_second, err_second = second.communicate(timeout=240)
    assert (first.returncode, second.returncode) == (0, 0), err_first + err_second
    [a], [b] = json_lines(out_first), json_lines(out_second)
    assert a["added"] == 80
    assert (b["added"], b["updated"], b["unchanged"]) == (0, 0, 80)  # every photo embedded exactly once
    assert f"'umsearch index' (pid {first.pid}) is updating this index; waiting for it to finish" in err_second
    assert_consistent(db)
    assert index_state(db, photos) == folder_state(photos)


def test_index_waits_while_another_index_run_holds_the_lock(tmp_path, tiny_model_dir, processes):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    make_photos(photos, 3)
    assert run(*index_args(photos, db, tiny_model_dir)).returncode == 0
    make_photos(photos, 2, start_seed=100)
    with IndexLock(db, (str(photos),), INDEX):  # this test process plays the first run
        waiting = start(*index_args(photos, db, tiny_model_dir))
        processes.append(waiting)
        err = Lines(waiting.stderr)
        err.wait_for(f"'umsearch index' (pid {os.getpid()}) is updating this index; waiting for it to finish")
        time.sleep(1)
        assert waiting.poll() is None
        assert index_state(db, photos) != folder_state(photos)  # it waits: nothing written meanwhile
    out = waiting.stdout.read()
    assert waiting.wait(timeout=120) == 0, err.text()
    assert json_lines(out)[0]["added"] == 2
    assert index_state(db, photos) == folder_state(photos)


def test_index_beside_a_watcher_joins_it_for_its_folders_and_names_it_for_others(tmp_path, tiny_model_dir, processes):
    photos, db, elsewhere = tmp_path / "photos", tmp_path / "index.db", tmp_path / "elsewhere"
    make_photos(photos, 2)
    make_photos(elsewhere, 1)
    watch = start(
        "watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir), "--quiet-period", "0.3", *budget_args()
    )
    processes.append(watch)
    wait_for_holder(db, watch, "watch", "watching")
    make_photos(photos / "new", 20, start_seed=50)
    joined = run(*index_args(photos / "new", db, tiny_model_dir))
    assert joined.returncode == 0, joined.stderr
    assert f"the watcher (pid {watch.pid}) keeps these folders indexed; waiting until it has caught up" in joined.stderr
    [summary] = json_lines(joined.stdout)
    assert summary["added"] == 0 and summary["unchanged"] == 20  # the watcher did the work, once
    assert index_state(db, photos) == folder_state(photos)  # caught up when `index` returned

    refused = run(*index_args(elsewhere, db, tiny_model_dir))
    assert refused.returncode == 1
    assert error_lines(refused.stderr) == [
        f"error: a watcher (pid {watch.pid}) updates this index, watching {photos}; add these folders to it, "
        "or stop it first"
    ]
    code, _ = stop_process(watch)
    assert code == 0
    assert_consistent(db)


def test_watch_waits_for_an_index_run_and_a_signal_while_waiting_stops_it_cleanly(tmp_path, tiny_model_dir, processes):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    make_photos(photos, 2)
    args = ("watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir), *budget_args())
    waiting_line = f"'umsearch index' (pid {os.getpid()}) is updating this index; waiting"
    with IndexLock(db, (str(photos),), INDEX):
        patient = start(*args)
        processes.append(patient)
        Lines(patient.stderr).wait_for(waiting_line)
        assert patient.poll() is None
        assert holder(db).pid == os.getpid()
    wait_for_holder(db, patient, "watch", "watching")  # it goes on once the index run is over
    wait_in_step(db, photos)
    code, _ = stop_process(patient)
    assert code == 0

    with IndexLock(db, (str(photos),), INDEX):
        stopped = start(*args)
        processes.append(stopped)
        Lines(stopped.stderr).wait_for(waiting_line)
        code, seconds = stop_process(stopped, signal.SIGTERM)
    assert code == 0 and seconds < 5
    assert read_status(db) is None
    wait_for(lambda: holder(db) is None, 5, "the lock to be free")
