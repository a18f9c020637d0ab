"""Several vectors per file (a video's frames, a PDF's pages), kinds, and the migration that adds them."""

from __future__ import annotations

import numpy as np
import pytest

from umsearch.filters import Filters
from umsearch.store import IndexSettings, Store
from umsearch.store.segments import SEGMENT_BASE, Position, Segment, file_id_of, vector_id

DIM = 16
SETTINGS = IndexSettings("some/model", DIM, 256, 1280)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def axis(i: int, tilt: float = 0.0) -> np.ndarray:
    v = np.full(DIM, tilt, dtype=np.float32)
    v[i] = 1.0
    return unit(v)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "index.db") as s:
        s.bind(SETTINGS)
        yield s


def put_video(store: Store, path: str, axes: list[int], digest: str = "hv") -> int:
    frames = [Segment(axis(a), time=2.0 * i) for i, a in enumerate(axes)]
    return store.put_file(path, size=1, mtime_ns=1, digest=digest, segments=frames, kind="video")


def vector_rows(store: Store) -> tuple[int, int, int]:
    db = store.db
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("embeddings", "vectors", "segments"))


def test_vector_ids_map_back_to_their_file():
    assert vector_id(7, 0) == 7 and file_id_of(7) == 7
    assert vector_id(7, 3) > SEGMENT_BASE and file_id_of(vector_id(7, 3)) == 7
    assert file_id_of(vector_id(2**40, 1023)) == 2**40
    with pytest.raises(ValueError):
        vector_id(7, 1024)


def test_a_video_ranks_once_by_its_best_frame_and_says_which(store):
    photo = store.put_file("/p/a.jpg", size=1, mtime_ns=1, digest="ha", vector=axis(3, 0.05))
    video = put_video(store, "/p/clip.mp4", [0, 1, 2, 3])  # frame at 6 s looks like axis 3
    hits = store.knn_vectors(axis(3), 5)
    assert [file_id for file_id, _, _ in hits] == [video, photo]  # the video once, not four times
    _, score, matched = hits[0]
    assert score == pytest.approx(1.0, abs=1e-5)
    assert store.positions([matched]) == {matched: Position(time=6.0)}
    assert store.best_positions(axis(3), [video, photo]) == {video: Position(time=6.0)}
    assert store.knn(axis(1), 1) == [(video, pytest.approx(1.0, abs=1e-5))]
    assert store.counts().kinds == {"photo": 1, "video": 1}


def test_replacing_and_deleting_a_video_leaves_no_frame_behind(store):
    video = put_video(store, "/p/clip.mp4", [0, 1, 2, 3])
    assert vector_rows(store) == (4, 4, 4)
    assert put_video(store, "/p/clip.mp4", [5, 6], digest="hv2") == video  # changed: fewer frames now
    assert vector_rows(store) == (2, 2, 2)
    assert store.knn(axis(2), 5)[0][1] < 0.5  # the old frames are gone
    store.delete_files([video])
    assert vector_rows(store) == (0, 0, 0)
    assert store.knn(axis(5), 5) == []


def test_a_pdf_keeps_page_numbers_and_a_copy_keeps_every_page(store):
    pages = [Segment(axis(i), page=i + 1) for i in range(3)]
    doc = store.put_file("/p/letter.pdf", size=1, mtime_ns=1, digest="hd", segments=pages, kind="document")
    copy = store.copy_vector_to(doc, "/q/letter copy.pdf", size=1, mtime_ns=2, digest="hd")
    assert [s.page for s in store.segments(copy)] == [1, 2, 3]
    assert store.files_by_id([copy])[copy].kind == "document"
    assert store.best_positions(axis(2), [doc, copy]) == {doc: Position(page=3), copy: Position(page=3)}
    assert {f for f, _ in store.knn(axis(2), 5)} == {doc, copy}


def test_kind_filter_applies_to_every_frame_and_follows_moves(store):
    store.put_file("/p/shot.png", size=1, mtime_ns=1, digest="hs", vector=axis(0, 0.1), kind="screenshot")
    video = put_video(store, "/p/clip.mp4", [4, 0])
    only_videos = Filters(kinds=("video",))
    assert [f for f, _ in store.knn(axis(0), 5, only_videos)] == [video]
    assert [f for f, _ in store.knn(axis(0), 5, Filters(kinds=("document",)))] == []
    store.move_file(video, "/elsewhere/clip.mp4", size=1, mtime_ns=1)
    assert [f for f, _ in store.knn(axis(0), 5, Filters(folders=("/elsewhere",)))] == [video]
    assert [f for f, _ in store.knn(axis(0), 5, Filters(folders=("/p",)))] != [video]
    assert [f for f, _ in store.knn(axis(0), 5, Filters(exclude_ids=frozenset({video})))] != [video]


def test_whole_index_maths_sees_one_vector_per_file(store):
    put_video(store, "/p/clip.mp4", [0, 1, 2])
    store.put_file("/p/a.jpg", size=1, mtime_ns=1, digest="ha", vector=axis(5))
    ids = np.concatenate([block_ids for block_ids, _ in store.iter_vectors()])
    assert len(ids) == 2 and (ids < SEGMENT_BASE).all()


def test_an_index_from_before_kinds_migrates(tmp_path):
    """An m003 index: a kind for every row (screenshots by name and screen size) and a kind filter column."""
    from umsearch.store import schema

    db_path = tmp_path / "old.db"
    newest = schema.MIGRATIONS[:]
    try:
        schema.MIGRATIONS[:] = [m for m in newest if m.__name__ != "m005_media_segments_and_kinds"]
        with Store.open(db_path) as old:
            old.bind(SETTINGS)
            old.db.execute("DROP TABLE vectors")  # as m003's bind made it: without the kind column
            schema.create_bit_table(old.db, DIM, ("taken", "folder", "ext", "camera", "place"))
            for i, name in enumerate(["IMG_1.jpg", "Screenshot_20240101-101010.png", "plain.png"]):
                path, vec = f"/p/{name}", axis(i).tobytes()
                old.db.execute(
                    "INSERT INTO files (path, folder, size, mtime_ns, hash, status, width, height, indexed_at, ext)"
                    " VALUES (?, '/p', 1, 1, ?, 'ok', ?, ?, 0, ?)",
                    (path, name, 1170 if name == "plain.png" else 100, 2532 if name == "plain.png" else 80, name[-3:]),
                )
                file_id = old.db.last_insert_rowid()
                old.db.execute(
                    "INSERT INTO embeddings (id, vector, bits) VALUES (?, ?, ?)", (file_id, vec, schema.sign_bits(vec))
                )
                old.db.execute(
                    "INSERT INTO vectors (rowid, embedding, taken, folder, ext, camera, place) "
                    "VALUES (?, vec_bit(?), 0, 0, 0, 0, 0)",
                    (file_id, schema.sign_bits(vec)),
                )
    finally:
        schema.MIGRATIONS[:] = newest
    with Store.open(db_path) as store:
        kinds = {row.path.rsplit("/", 1)[1]: row.kind for row in store.iter_files()}
        assert kinds == {
            "IMG_1.jpg": "photo",
            "Screenshot_20240101-101010.png": "screenshot",
            "plain.png": "screenshot",
        }
        shots = [f for f, _ in store.knn(axis(0), 5, Filters(kinds=("screenshot",)))]
        assert sorted(store.files_by_id(shots)[f].path for f in shots) == [
            "/p/Screenshot_20240101-101010.png",
            "/p/plain.png",
        ]
        assert store.counts().kinds == {"photo": 1, "screenshot": 2}
