"""Videos, PDFs and screenshots through the real indexer and the tiny random GME model: found, kinded,
each ranked once with its frame time or page, incremental and consistent like photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from umsearch.filters import Filters
from umsearch.gme import GmeEmbedder
from umsearch.index import Indexer
from umsearch.kinds import DOCUMENT, PHOTO, SCREENSHOT, VIDEO
from umsearch.settings import QUALITY_PRESETS, text_budget
from umsearch.store import Store
from umsearch.store.segments import Position
from umsearch.video import sample_video

from .media_support import Scene, write_pdf, write_screenshot, write_video
from .photos import write_photo

pytest.importorskip("av")
pytest.importorskip("pypdfium2")

BUDGET = QUALITY_PRESETS["fast"]
MAX_PIXELS = BUDGET[1] * 28 * 28
SCENES = [Scene((210, 30, 30), 2.5), Scene((30, 190, 40), 3, pattern=1), Scene((30, 40, 200), 2.5, pattern=2)]


def at_the_cuts(times: list[float]) -> bool:
    """The start, then the first compared frame after each cut (at 2.5 s and 5.5 s)."""
    return len(times) == 3 and times[0] == 0.0 and all(c <= t <= c + 0.3 for t, c in zip(times[1:], (2.5, 5.5)))


def make_indexer(store: Store, embedder: GmeEmbedder) -> Indexer:
    return Indexer(store, lambda: embedder, max_pixels=MAX_PIXELS, batch_size=3, workers=2, image_budget=BUDGET)


def run(store: Store, embedder: GmeEmbedder, root: Path) -> dict[str, int]:
    return make_indexer(store, embedder).index([str(root)]).counters()


def counts(store: Store) -> tuple[int, int, int]:
    db = store.db
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("embeddings", "vectors", "segments"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "index.db") as opened:
        yield opened


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    write_photo(root / "IMG_0001.jpg", 1, size=(120, 90))
    write_photo(root / "IMG_0002.jpg", 2, size=(120, 90))
    write_video(root / "clips" / "holiday.mp4", SCENES)
    write_screenshot(root / "Screenshot_20240101-101010.png", ["Wi-Fi password: hunter2"], size=(390, 844))
    write_pdf(root / "docs" / "letter.pdf", [["Dear Sir,"], ["Page two", "of the letter"], ["Three", "x", "y"]])
    return root


def test_one_run_indexes_photos_videos_screenshots_and_pdfs(store, tiny_embedder, library) -> None:
    assert run(store, tiny_embedder, library) == dict(added=5, updated=0, moved=0, removed=0, unchanged=0, failed=0)
    kinds = {Path(row.path).name: row.kind for row in store.iter_files()}
    assert kinds == {
        "IMG_0001.jpg": PHOTO,
        "IMG_0002.jpg": PHOTO,
        "holiday.mp4": VIDEO,
        "Screenshot_20240101-101010.png": SCREENSHOT,
        "letter.pdf": DOCUMENT,
    }
    assert store.counts().kinds == {PHOTO: 2, VIDEO: 1, SCREENSHOT: 1, DOCUMENT: 1}
    video = store.file_by_path(str(library / "clips" / "holiday.mp4"))
    assert at_the_cuts([s.time for s in store.segments(video.id)])
    assert (video.width, video.height) == (160, 96)
    letter = store.file_by_path(str(library / "docs" / "letter.pdf"))
    assert [s.page for s in store.segments(letter.id)] == [1, 2, 3]
    assert counts(store) == (3 + 3 + 3, 9, 6)  # 2 photos and a screenshot, 3 frames, 3 pages
    for segment in store.segments(video.id):
        assert np.linalg.norm(segment.vector) == pytest.approx(1.0, abs=1e-4)


def test_a_frame_taken_from_a_video_finds_that_video_first_at_its_time(store, tiny_embedder, library, tmp_path) -> None:
    run(store, tiny_embedder, library)
    video_path = library / "clips" / "holiday.mp4"
    frames = sample_video(str(video_path), MAX_PIXELS).frames
    for frame in frames:
        query = tiny_embedder.embed_images([frame.image])[0]
        (best, score, vector_id), *_ = store.knn_vectors(query, 3)
        assert store.files_by_id([best])[best].path == str(video_path)
        assert score > 0.99
        assert store.positions([vector_id])[vector_id].time == frame.time
        assert store.best_positions(query, [best]) == {best: Position(time=frame.time)}
    hits = store.knn(tiny_embedder.embed_images([frames[1].image])[0], 10)
    assert len(hits) == len({file_id for file_id, _ in hits})  # the video once, not once per frame


def test_page_numbers_are_right(store, tiny_embedder, library) -> None:
    from umsearch.pdfpages import render_pdf

    run(store, tiny_embedder, library)
    path = library / "docs" / "letter.pdf"
    low, high = text_budget(*BUDGET)
    pages = render_pdf(str(path), high * 28 * 28).pages
    for page in pages:
        fitted = make_indexer(store, tiny_embedder)._part(page.image, (low, high)).image
        query = tiny_embedder.embed_prepared(tiny_embedder.prepare_images([fitted], max_image_tokens=high))[0]
        (best, _, vector_id), *_ = store.knn_vectors(query, 1)
        assert store.files_by_id([best])[best].path == str(path)
        assert store.positions([vector_id])[vector_id].page == page.number


def test_kind_filter(store, tiny_embedder, library) -> None:
    run(store, tiny_embedder, library)
    query = tiny_embedder.embed_query(text="anything")
    for kind, expected in ((VIDEO, {"holiday.mp4"}), (SCREENSHOT, {"Screenshot_20240101-101010.png"})):
        hits = store.knn(query, 10, Filters(kinds=(kind,)))
        assert {Path(store.files_by_id([f])[f].path).name for f, _ in hits} == expected
    both = store.knn(query, 10, Filters(kinds=(PHOTO, DOCUMENT)))
    assert len(both) == 3


def test_screenshots_and_documents_get_the_text_budget(store, tiny_embedder, library) -> None:
    indexer = make_indexer(store, tiny_embedder)
    shot = indexer._read_image(_job(library / "Screenshot_20240101-101010.png"), "x")
    photo = indexer._read_image(_job(library / "IMG_0001.jpg"), "y")
    low, high = text_budget(*BUDGET)
    assert shot.kind == SCREENSHOT and low <= shot.parts[0].tokens <= high and shot.parts[0].tokens > BUDGET[1]
    assert photo.kind == PHOTO and photo.parts[0].tokens <= BUDGET[1]
    pdf = indexer._read_pdf(_job(library / "docs" / "letter.pdf"), "z")
    assert all(BUDGET[1] < part.tokens <= high for part in pdf.parts)
    # the model sees the screenshot at that size (the processor does not shrink it back)
    inputs = tiny_embedder.prepare_images([shot.parts[0].image], max_image_tokens=high)
    assert int(inputs["image_grid_thw"].prod(-1).item()) // 4 == shot.parts[0].tokens


def _job(path: Path):
    from umsearch.planning import Job
    from umsearch.scan import FoundFile

    st = path.stat()
    return Job(FoundFile(str(path), st.st_size, st.st_mtime_ns), None)


def test_a_changed_video_is_re_embedded_and_a_removed_one_leaves_nothing(store, tiny_embedder, library) -> None:
    run(store, tiny_embedder, library)
    path = library / "clips" / "holiday.mp4"
    video_id = store.file_by_path(str(path)).id
    write_video(path, [Scene((220, 210, 40), 4, still=True)])  # one scene now: one frame
    assert run(store, tiny_embedder, library)["updated"] == 1
    assert store.file_by_path(str(path)).id == video_id
    assert [s.time for s in store.segments(video_id)] == [0.0]
    assert counts(store) == (3 + 1 + 3, 7, 4)
    shutil.move(path, library / "renamed.mp4")  # a move keeps every frame without the model
    assert run(store, tiny_embedder, library)["moved"] == 1
    assert [s.time for s in store.segments(video_id)] == [0.0]
    (library / "renamed.mp4").unlink()
    (library / "docs" / "letter.pdf").unlink()
    assert run(store, tiny_embedder, library)["removed"] == 2
    assert counts(store) == (3, 3, 0)
    assert store.counts().kinds == {PHOTO: 2, SCREENSHOT: 1}


def test_a_copy_of_a_video_reuses_every_frame(store, tiny_embedder, library) -> None:
    run(store, tiny_embedder, library)
    shutil.copy(library / "clips" / "holiday.mp4", library / "copy.mp4")

    def no_model():
        raise AssertionError("a copy must not run the model")

    summary = Indexer(store, no_model, max_pixels=MAX_PIXELS, image_budget=BUDGET).index([str(library)])
    assert summary.added == 1
    copy = store.file_by_path(str(library / "copy.mp4"))
    assert copy.kind == VIDEO and at_the_cuts([s.time for s in store.segments(copy.id)])
    assert store.files_missing_metadata() == []  # the copy's date and size came from its header


def test_broken_media_are_failures_with_a_reason(store, tiny_embedder, tmp_path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mov").write_text("not a video")
    (root / "bad.pdf").write_bytes(b"%PDF-1.4 nothing here")
    write_photo(root / "fine.jpg", 3)
    summary = make_indexer(store, tiny_embedder).index([str(root)])
    assert (summary.added, summary.failed) == (1, 3)
    reasons = {Path(path).name: reason for path, reason in summary.failures}
    assert reasons["empty.mp4"] == "not a recognised video format (empty file)"
    assert reasons["text.mov"].startswith("not a recognised video format")
    assert reasons["bad.pdf"].startswith("not a readable PDF")
    again = run(store, tiny_embedder, root)  # not retried until they change (counted as failed, like status)
    assert (again["unchanged"], again["failed"], again["added"]) == (1, 3, 0)


def test_without_the_extra_videos_and_pdfs_are_unsupported_with_the_fix(
    store, tiny_embedder, library, monkeypatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    summary = make_indexer(store, tiny_embedder).index([str(library)])
    reasons = {Path(path).name: reason for path, reason in summary.failures}
    assert reasons == {
        "holiday.mp4": "unsupported format video (pip install 'umsearch[all]')",
        "letter.pdf": "unsupported format PDF (pip install 'umsearch[all]')",
    }
    assert summary.added == 3


def test_frames_in_flight_are_bounded(store, tiny_embedder, tmp_path) -> None:
    """Read-ahead counts pictures, not files: many videos never queue more than a window's worth of frames."""
    import dataclasses

    from umsearch.video import SamplingPolicy

    root = tmp_path / "many"
    for i in range(6):
        write_video(root / f"v{i}.mp4", SCENES[i % 3 :] + SCENES[: i % 3])
    indexer = make_indexer(store, tiny_embedder)
    indexer.video_policy = dataclasses.replace(SamplingPolicy(), max_frames=3)
    indexer.window = 6
    outstanding = {"now": 0, "most": 0}
    load, resolve = indexer._load, indexer._resolve_without_model

    def counting_load(job):
        outstanding["now"] += 1  # submitted to a loader thread (called there; the count is what matters)
        outstanding["most"] = max(outstanding["most"], outstanding["now"])
        return load(job)

    def counting_resolve(loaded, summary):
        outstanding["now"] -= 1  # taken from the read-ahead queue
        return resolve(loaded, summary)

    indexer._load, indexer._resolve_without_model = counting_load, counting_resolve
    summary = indexer.index([str(root)])
    assert summary.added == 6
    assert counts(store)[0] == 18
    # depth = max(window, workers * 2) = 6 pictures: two 3-frame videos read ahead at a time, not six
    assert outstanding["most"] <= 3
