"""The watcher follows videos and PDFs like photos: an arriving video is indexed with all its frames once
complete, a replaced one again, a deleted one disappears with every frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_watch import Running
from tests.watch_support import relative, wait_for, wait_in_step
from umsearch.store import Store

from .media_support import Scene, write_pdf, write_video

pytest.importorskip("av")
pytest.importorskip("pypdfium2")
pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")]


def frame_times(db: Path, path: Path) -> list[float]:
    with Store.open(db, create=False) as store:
        row = store.file_by_path(str(path))
        return [s.time for s in store.segments(row.id)] if row else []


def test_videos_and_pdfs_arrive_change_and_leave(tmp_path, small_embedder):
    root, db = tmp_path / "media", tmp_path / "index.db"
    root.mkdir()
    watch = Running(db, root, small_embedder, quiet_period=0.5, debounce=0.1)
    try:
        clip = write_video(root / "clip.mp4", [Scene((210, 30, 30), 1.5), Scene((30, 40, 200), 1.5, pattern=1)])
        write_pdf(root / "sub" / "letter.pdf", [["one"], ["two"]])
        assert relative(wait_in_step(db, root), root) == {"clip.mp4", "sub/letter.pdf"}
        assert len(frame_times(db, clip)) == 2
        write_video(clip, [Scene((30, 190, 40), 1, still=True)])  # replaced by a one-scene video
        wait_for(lambda: frame_times(db, clip) == [0.0], 60, "the changed video to be re-embedded")
        clip.unlink()
        assert relative(wait_in_step(db, root), root) == {"sub/letter.pdf"}
        with Store.open(db, create=False) as store:
            assert store.db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 2  # the PDF's pages
    finally:
        watch.stop()
