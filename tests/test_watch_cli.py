"""`umsearch watch` as a user runs it: a subprocess that follows changes, shows in `status`, and stops
cleanly on SIGTERM (exit 0 within 5 s), even with a batch in flight, leaving a consistent index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.photos import write_photo
from tests.watch_support import MAX_PIXELS, MAX_TOKENS, MIN_TOKENS, index_state, relative, wait_for, wait_in_step
from umsearch.embed import load_embedder
from umsearch.index import Indexer
from umsearch.store import Store
from umsearch.store.schema import FLOAT_TABLE
from umsearch.watchstate import read_status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

REPO = Path(__file__).resolve().parent.parent


def umsearch(*args: str) -> list[str]:
    return [sys.executable, "-m", "umsearch", *args]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
    }


def start_watch(photos: Path, db: Path, model: Path, *extra: str) -> subprocess.Popen:
    command = umsearch(
        "watch",
        str(photos),
        "--db",
        str(db),
        "--model",
        str(model),
        "--json",
        "--quiet-period",
        "0.5",
        "--min-image-tokens",
        str(MIN_TOKENS),
        "--max-image-tokens",
        str(MAX_TOKENS),
        *extra,
    )
    return subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_watching(db: Path, process: subprocess.Popen) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"watch exited early ({process.returncode}): {process.stderr.read()}")
        running = read_status(db) if db.exists() else None
        return running is not None and running.activity == "watching"

    wait_for(ready, 90, "the watcher to catch up")


def stop(process: subprocess.Popen) -> tuple[int, float, str]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, time.monotonic() - started, process.stderr.read()


def status(db: Path) -> dict:
    done = subprocess.run(
        umsearch("status", "--db", str(db), "--json"), env=environment(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_consistent(db: Path) -> None:
    with Store.open(db, create=False) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ok_ids = {r[0] for r in store.db.execute("SELECT id FROM files WHERE status = 'ok'")}
        vector_ids = {r[0] for r in store.db.execute(f"SELECT id FROM {FLOAT_TABLE}")}
        assert ok_ids == vector_ids  # every indexed photo has exactly one vector, and no vector is orphaned


def test_watch_follows_changes_shows_in_status_and_stops_on_sigterm(tmp_path, tiny_model_dir):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    write_photo(photos / "first.jpg", seed=1)
    process = start_watch(photos, db, tiny_model_dir)
    try:
        wait_watching(db, process)
        wait_in_step(db, photos)
        write_photo(photos / "album" / "second.png", seed=2)
        os.rename(photos / "first.jpg", photos / "album" / "first.jpg")
        assert relative(wait_in_step(db, photos), photos) == {"album/first.jpg", "album/second.png"}

        wait_for(lambda: read_status(db).activity == "watching", 30, "the watcher to report it is idle")
        report = status(db)
        assert report["indexed"] == 2
        assert report["watcher"]["pid"] == process.pid
        assert report["watcher"]["roots"] == [str(photos)]
        assert report["watcher"]["activity"] == "watching"

        second = subprocess.run(
            umsearch("watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir)),
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"another watcher (pid {process.pid})" in second.stderr
    finally:
        code, seconds, stderr = stop(process)
    assert code == 0, stderr
    assert seconds < 5
    assert "Traceback" not in stderr
    rounds = [json.loads(line) for line in process.stdout.read().splitlines()]
    assert sum(r["added"] for r in rounds) == 2 and sum(r["moved"] for r in rounds) == 1
    assert status(db)["watcher"] is None


def test_sigterm_with_a_batch_in_flight_exits_promptly_and_loses_nothing(tmp_path, tiny_model_dir):
    photos, db = tmp_path / "photos", tmp_path / "index.db"
    photos.mkdir()
    process = start_watch(photos, db, tiny_model_dir, "--batch-size", "4")
    try:
        wait_watching(db, process)
        for i in range(200):
            write_photo(photos / f"IMG_{i:04d}.png", seed=i, size=(24, 16))
        wait_for(lambda: len(index_state(db, photos)) > 0, 90, "the first batch to land")
    finally:
        code, seconds, stderr = stop(process)
    assert code == 0, stderr
    assert seconds < 5
    assert_consistent(db)
    indexed_at_stop = len(index_state(db, photos))
    # The next run picks up exactly what was left.
    embedder = load_embedder(
        str(tiny_model_dir),
        device="cpu",
        quant="none",
        dtype="float32",
        min_image_tokens=MIN_TOKENS,
        max_image_tokens=MAX_TOKENS,
    )
    with Store.open(db) as store:
        summary = Indexer(store, lambda: embedder, max_pixels=MAX_PIXELS, batch_size=32).index([str(photos)])
    assert summary.added == 200 - indexed_at_stop and summary.removed == 0
    wait_in_step(db, photos, timeout=1)
    assert_consistent(db)
