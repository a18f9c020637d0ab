"""kill -9 at random points while indexing, then rerun: the index is intact and exact."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from umsearch.store import Store

from .photos import write_photo

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

ROOT = Path(__file__).resolve().parent.parent
KILLS = 6


def _start_index(db: Path, model: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "umsearch",
            "index",
            "--db",
            str(db),
            "--model",
            str(model),
            "--batch-size",
            "2",
            str(folder),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _rows(db: Path, table: str = "files") -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return -1  # not created yet, or mid-migration


def _kill_when(
    proc: subprocess.Popen,
    db: Path,
    rows_at_least: int,
    *,
    table: str = "files",
    jitter_s: float = 0.3,
    poll_s: float = 0.02,
    deadline_s: float = 60,
) -> bool:
    """SIGKILL once `table` has that many rows (plus a random moment up to `jitter_s`); True if it was still
    running."""
    end = time.monotonic() + deadline_s
    while proc.poll() is None and time.monotonic() < end and _rows(db, table) < rows_at_least:
        time.sleep(poll_s)
    time.sleep(random.uniform(0, jitter_s))  # land anywhere: mid-batch, mid-commit, mid-load
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


@pytest.mark.timeout(600)
def test_repeated_kill_9_during_indexing_always_recovers(tmp_path, tiny_model_dir):
    random.seed(7)
    folder, db = tmp_path / "photos", tmp_path / "index.db"
    for k in range(30):
        write_photo(folder / f"p{k:02d}.jpg", k, size=(64 + k, 48))
    (folder / "bad.jpg").write_bytes(b"not a photo")
    next_seed = 100
    killed = 0
    for round_ in range(KILLS):
        proc = _start_index(db, tiny_model_dir, folder)
        killed += _kill_when(proc, db, rows_at_least=random.randint(0, 28))
        # the library changes between runs too: new photos, deletions, a rename
        write_photo(folder / f"new{round_}.jpg", next_seed)
        next_seed += 1
        victims = sorted(folder.glob("p*.jpg"))
        victims[random.randrange(len(victims))].unlink()
        victim = sorted(folder.glob("p*.jpg"))[0]
        victim.rename(folder / f"renamed{round_}.jpg")

    assert killed >= KILLS // 2  # most runs really were cut short
    final = subprocess.run(
        [sys.executable, "-m", "umsearch", "index", "--db", str(db), "--model", str(tiny_model_dir), str(folder)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    # finished (3 when bad.jpg was first met in this run, 0 when an earlier run had already recorded it)
    assert final.returncode in (0, 3), final.stderr

    on_disk = {str(p) for p in folder.iterdir()}
    with Store.open(db, create=False) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        files = {row.path: row for row in store.iter_files()}
        assert set(files) == on_disk
        assert [p for p, row in files.items() if row.status == "failed"] == [str(folder / "bad.jpg")]
        ok_ids = {row.id for row in files.values() if row.status == "ok"}
        vector_ids = {r[0] for r in store.db.execute("SELECT id FROM embeddings")}
        assert vector_ids == ok_ids  # no file without its vector, no vector without its file
        assert store.counts().indexed == len(on_disk) - 1
        paths = [r[0] for r in store.db.execute("SELECT path FROM files")]
        assert len(paths) == len(set(paths))
