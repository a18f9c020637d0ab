"""kill -9 while videos are being indexed: each video is in the index with all its frames or not at all."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from umsearch.store import Store
from umsearch.store.segments import file_id_of

from .media_support import Scene, write_pdf, write_video
from .test_crash import ROOT, _kill_when, _start_index

pytest.importorskip("av")
pytest.importorskip("pypdfium2")

KILLS = 4
COLOURS = [(210, 30, 30), (30, 190, 40), (30, 40, 200), (220, 210, 40), (200, 40, 200)]


def consistent(db: Path) -> dict[str, int]:
    """Every stored vector belongs to a stored file; a video or PDF has every frame/page it was given, numbered
    0..n-1; the bit table matches the float table. Returns frames per indexed file name."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        files = {
            fid: (Path(path).name, status) for fid, path, status in con.execute("SELECT id, path, status FROM files")
        }
        vectors = [r[0] for r in con.execute("SELECT id FROM embeddings")]
        assert all(file_id_of(v) in files and files[file_id_of(v)][1] == "ok" for v in vectors)
        per_file: dict[int, list[int]] = {}
        for v in vectors:
            per_file.setdefault(file_id_of(v), []).append(v)
        for fid, (_, status) in files.items():
            assert (fid in per_file) == (status == "ok")
        for fid, positions in con.execute(
            "SELECT file_id, group_concat(position) FROM segments GROUP BY file_id"
        ).fetchall():
            numbers = sorted(int(p) for p in positions.split(","))
            assert numbers == list(range(len(numbers))) == list(range(len(per_file[fid])))
        return {files[fid][0]: len(ids) for fid, ids in per_file.items()}
    finally:
        con.close()


def bit_rows(db: Path) -> set[int]:
    """The vector ids of the bit matrix the coarse scan reads (as another process loads it)."""
    with Store.open(db, create=False) as store:
        return set(store._bit_matrix().ids.tolist())


@pytest.mark.timeout(600)
def test_kill_9_while_indexing_videos_leaves_whole_videos_or_none(tmp_path, tiny_model_dir):
    random.seed(11)
    folder, db = tmp_path / "media", tmp_path / "index.db"
    for i in range(5):
        scenes = [Scene(COLOURS[(i + j) % 5], 1.5, pattern=i * 5 + j) for j in range(4)]
        write_video(folder / f"v{i}.mp4", scenes)
    write_pdf(folder / "doc.pdf", [["one"], ["two"], ["three"]])
    killed = 0
    partial = []
    for round_ in range(KILLS):
        proc = _start_index(db, tiny_model_dir, folder)  # batch size 2: each video spans two batches
        # 23 frames and pages in all: kill after 3..18 of them, whatever the machine's speed
        # polled closely and killed at once: a fast machine embeds a tiny model's frame in milliseconds
        frames = 3 + 4 * round_ + random.randint(0, 3)
        killed += _kill_when(proc, db, frames, table="embeddings", jitter_s=0, poll_s=0.005, deadline_s=120)
        if db.exists():
            partial.append(len(consistent(db)))
    assert killed >= KILLS // 2
    assert any(0 < n < 6 for n in partial), partial  # some runs really stopped between and within videos
    final = subprocess.run(
        [sys.executable, "-m", "umsearch", "index", "--db", str(db), "--model", str(tiny_model_dir), str(folder)],
        cwd=ROOT,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert final.returncode == 0, final.stderr
    frames = consistent(db)
    assert frames == {**{f"v{i}.mp4": 4 for i in range(5)}, "doc.pdf": 3}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert bit_rows(db) == {r[0] for r in con.execute("SELECT id FROM embeddings")}
