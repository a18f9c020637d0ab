"""SIGHUP, SIGINT and SIGTERM at random points of a watcher's life (starting, loading the model, catching up, idle,
indexing a burst, twice in a row): exit 0 within 5 s, a consistent index, and the next run picks up the rest."""

from __future__ import annotations

import random
import signal
import sys
import time

import pytest

from tests.fault_support import Lines, assert_consistent, budget_args, json_lines, run, start, stop_process
from tests.photos import write_photo
from tests.watch_support import folder_state, index_state, wait_for
from umsearch.watchstate import holder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(400),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

# Where in its life the watcher is hit (the activity it reports, then a random moment after that), and with
# which signal: each signal meets several phases.
CASES = [
    ("starting", signal.SIGHUP),
    ("catching up", signal.SIGTERM),
    ("watching", signal.SIGHUP),
    ("indexing", signal.SIGINT),
    ("twice", signal.SIGTERM),
]


def activity_is(db, pid: int, prefix: str) -> bool:
    current = holder(db) if db.exists() else None
    return current is not None and current.pid == pid and current.activity.startswith(prefix)


@pytest.mark.parametrize(("phase", "sig"), CASES, ids=[f"{phase}-{sig.name}" for phase, sig in CASES])
def test_a_stop_signal_at_any_point_exits_0_with_a_consistent_index(tmp_path, tiny_model_dir, processes, phase, sig):
    chance = random.Random(f"signals-{phase}-{sig.name}")
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    count = 40 if phase in ("starting", "catching up") else 3
    for i in range(count):
        write_photo(photos / f"IMG_{i:04d}.png", seed=i, size=(24, 16))
    watch = start(
        "watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir), "--batch-size", "2", *budget_args()
    )
    processes.append(watch)
    err = Lines(watch.stderr)
    if phase == "starting":
        wait_for(lambda: activity_is(db, watch.pid, ""), 120, "the watcher to start")
    elif phase == "catching up":  # once the model is loaded, with most of the 40 photos still to embed
        wait_for(lambda: activity_is(db, watch.pid, "loading model"), 120, "the watcher to load the model")
        wait_for(lambda: activity_is(db, watch.pid, "catching up"), 120, "the watcher to catch up")
    elif phase == "watching":
        wait_for(lambda: activity_is(db, watch.pid, phase), 120, f"the watcher to be {phase}")
    else:
        wait_for(lambda: activity_is(db, watch.pid, "watching"), 120, "the watcher to catch up")
        assert index_state(db, photos) == folder_state(photos)
        for i in range(40):
            write_photo(photos / "burst" / f"B_{i:04d}.png", seed=1000 + i, size=(24, 16))
        wait_for(lambda: activity_is(db, watch.pid, "indexing"), 60, "the watcher to index the burst")
    time.sleep(chance.uniform(0, 0.5))
    if phase == "twice":
        watch.send_signal(sig)
        time.sleep(chance.uniform(0, 0.2))
    code, seconds = stop_process(watch, sig)
    stderr = err.text()
    assert code == 0, f"signal {sig.name} while {phase}: exit {code}\n{stderr}"
    assert seconds < 5, f"signal {sig.name} while {phase}: took {seconds:.1f} s"
    assert "Traceback" not in stderr and "error:" not in stderr, stderr
    assert holder(db) is None
    if db.exists():
        assert_consistent(db)
    # The next run picks up exactly what was left: everything ends up indexed once.
    again = run("index", str(photos), "--db", str(db), "--model", str(tiny_model_dir), *budget_args(), "--json")
    assert again.returncode == 0, again.stderr
    [summary] = json_lines(again.stdout)
    assert summary["removed"] == 0 and summary["failed"] == 0
    assert index_state(db, photos) == folder_state(photos)
    assert_consistent(db)


def test_a_stop_interrupt_that_lands_in_a_finaliser_is_retried_not_printed(monkeypatch) -> None:
    """Python only reports an exception raised inside `__del__`: the rollback must still happen, quietly."""
    from umsearch.watch import StopSignals

    reported: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(unraisable.exc_type))
    previous = sys.unraisablehook
    stopper = StopSignals()
    retried = []
    monkeypatch.setattr(stopper, "_abort_if_busy", lambda: retried.append(True))
    try:

        class Finalised:
            def __del__(self) -> None:
                raise KeyboardInterrupt  # as our signal handler would, had the signal landed here

        stopper.requested.set()
        Finalised()  # collected at once: the interrupt is "unraisable"
        wait_for(lambda: bool(retried), 5, "the interrupt to be retried")
        assert reported == []  # no traceback printed

        stopper.requested.clear()  # not a stop of ours: reported as before
        Finalised()
        assert reported == [KeyboardInterrupt]
    finally:
        stopper.restore()
    assert sys.unraisablehook is previous
