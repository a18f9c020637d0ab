"""The incremental indexer, driven through the library API with the tiny random GME model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.plain_search import Query, query_vector, rank
from umsearch.errors import ModelMismatchError, UmsearchError
from umsearch.gme import GmeEmbedder
from umsearch.index import Indexer, IndexSummary
from umsearch.settings import max_pixels
from umsearch.store import Store

from .photos import write_photo

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

MAX_PIXELS = max_pixels(1280)


def make_indexer(store: Store, embedder: GmeEmbedder, batch_size: int = 4) -> Indexer:
    return Indexer(store, lambda: embedder, max_pixels=MAX_PIXELS, batch_size=batch_size, workers=2)


def run(store: Store, embedder: GmeEmbedder, root: Path) -> dict[str, int]:
    return make_indexer(store, embedder).index([str(root)]).counters()


def indexed_paths(store: Store) -> set[str]:
    return {row.path for row in store.iter_files() if row.status == "ok"}


def vector_rows(store: Store) -> int:
    return store.db.execute("SELECT count(*) FROM vectors").fetchone()[0]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "index.db") as opened:
        yield opened


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for seed in range(5):
        write_photo(root / f"p{seed}.jpg", seed)
    write_photo(root / "sub" / "deep.png", 10)
    return root


def test_a_first_run_adds_every_photo_with_one_unit_vector_each(store, tiny_embedder, photos) -> None:
    assert run(store, tiny_embedder, photos) == dict(added=6, updated=0, moved=0, removed=0, unchanged=0, failed=0)
    assert indexed_paths(store) == {str(p) for p in photos.rglob("*.*")}
    assert vector_rows(store) == 6
    for row in store.iter_files():
        assert np.linalg.norm(store.vector(row.id)) == pytest.approx(1.0, abs=1e-4)
        assert (row.width, row.height) in {(96, 64)}


def test_a_second_run_reads_nothing_and_loads_no_model(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)

    def no_model():
        raise AssertionError("the model must not load when nothing changed")

    summary = Indexer(store, no_model, max_pixels=MAX_PIXELS).index([str(photos)])
    assert summary.counters() == dict(added=0, updated=0, moved=0, removed=0, unchanged=6, failed=0)


def test_a_changed_photo_is_re_embedded(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    target = photos / "p0.jpg"
    before = store.vector(store.file_by_path(str(target)).id)
    write_photo(target, seed=99)
    os.utime(target, ns=(1, 10**18))  # a different mtime even on coarse filesystems
    assert run(store, tiny_embedder, photos)["updated"] == 1
    after = store.vector(store.file_by_path(str(target)).id)
    assert float(before @ after) < 0.9999
    assert vector_rows(store) == 6


def test_a_touched_photo_keeps_its_vector_without_the_model(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    os.utime(photos / "p1.jpg", ns=(1, 10**18))
    summary = make_indexer(store, tiny_embedder).index([str(photos)])
    assert summary.counters()["unchanged"] == 6 and summary.updated == 0


def test_a_renamed_or_moved_photo_keeps_its_vector_and_row(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    old = store.file_by_path(str(photos / "p2.jpg"))
    vector = store.vector(old.id)
    (photos / "elsewhere").mkdir()
    (photos / "p2.jpg").rename(photos / "elsewhere" / "renamed.jpg")

    def no_model():
        raise AssertionError("a move must not run the model")

    summary = Indexer(store, no_model, max_pixels=MAX_PIXELS).index([str(photos)])
    assert summary.counters() == dict(added=0, updated=0, moved=1, removed=0, unchanged=5, failed=0)
    moved = store.file_by_path(str(photos / "elsewhere" / "renamed.jpg"))
    assert moved.id == old.id
    np.testing.assert_array_equal(store.vector(moved.id), vector)
    assert store.file_by_path(str(photos / "p2.jpg")) is None


def test_a_deleted_photo_is_removed_with_its_vector(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    (photos / "p3.jpg").unlink()
    shutil.rmtree(photos / "sub")
    assert run(store, tiny_embedder, photos)["removed"] == 2
    assert len(indexed_paths(store)) == 4
    assert vector_rows(store) == 4


def test_a_copy_of_an_indexed_photo_reuses_its_vector(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    shutil.copy(photos / "p0.jpg", photos / "copy.jpg")
    assert run(store, tiny_embedder, photos)["added"] == 1
    original = store.vector(store.file_by_path(str(photos / "p0.jpg")).id)
    copy = store.vector(store.file_by_path(str(photos / "copy.jpg")).id)
    np.testing.assert_array_equal(original, copy)


def test_indexing_one_root_leaves_other_roots_alone(store, tiny_embedder, tmp_path, photos) -> None:
    other = tmp_path / "other"
    write_photo(other / "o.jpg", 42)
    run(store, tiny_embedder, photos)
    run(store, tiny_embedder, other)
    assert run(store, tiny_embedder, photos)["removed"] == 0
    assert len(indexed_paths(store)) == 7


def test_a_missing_root_is_an_error_not_a_mass_deletion(store, tiny_embedder, photos, tmp_path) -> None:
    run(store, tiny_embedder, photos)
    with pytest.raises(UmsearchError, match="no such file or folder"):
        run(store, tiny_embedder, tmp_path / "unmounted")
    assert len(indexed_paths(store)) == 6


def test_an_undecodable_file_is_recorded_with_its_reason_and_not_retried(store, tiny_embedder, photos) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    summary = make_indexer(store, tiny_embedder).index([str(photos)])
    assert summary.failed == 1 and summary.added == 6
    [(path, reason)] = summary.failures
    assert path == str(photos / "broken.jpg") and reason
    [row] = store.failures()
    assert row.path == path and row.error == reason
    # Not retried, and still counted as failed (as `umsearch status` counts it), not as unchanged.
    assert run(store, tiny_embedder, photos) == dict(added=0, updated=0, moved=0, removed=0, unchanged=6, failed=1)
    write_photo(photos / "broken.jpg", seed=7)
    os.utime(photos / "broken.jpg", ns=(1, 10**18))
    assert run(store, tiny_embedder, photos)["updated"] == 1
    assert store.counts().failed == 0


def test_an_interrupted_run_keeps_finished_batches_and_resumes_without_duplicates(
    store, tiny_embedder, tmp_path
) -> None:
    root = tmp_path / "many"
    for seed in range(10):
        write_photo(root / f"{seed:02}.png", seed)
    calls = 0

    class InterruptedOnSecondBatch:
        """The real tiny model, with Ctrl-C arriving while it runs the second batch."""

        info = tiny_embedder.info
        prepare_images = tiny_embedder.prepare_images
        embed_images = tiny_embedder.embed_images

        def embed_prepared(self, batch):
            nonlocal calls
            calls += 1
            if calls == 2:
                raise KeyboardInterrupt
            return tiny_embedder.embed_prepared(batch)

    first = Indexer(store, InterruptedOnSecondBatch, max_pixels=MAX_PIXELS, batch_size=4).index([str(root)])
    assert first.interrupted and first.added == 4
    assert vector_rows(store) == 4
    second = run(store, tiny_embedder, root)
    assert second["added"] == 6 and second["unchanged"] == 4
    assert store.db.execute("SELECT count(*), count(DISTINCT path) FROM files").fetchone() == (10, 10)
    assert vector_rows(store) == 10


def test_an_image_queried_by_itself_ranks_first_with_score_one(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    for target in (photos / "p1.jpg", photos / "sub" / "deep.png"):
        hits = rank(store, query_vector(tiny_embedder, Query(image=str(target)), MAX_PIXELS), limit=3)
        assert hits[0].path == str(target)
        assert hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert [hit.rank for hit in hits] == [1, 2, 3]
        assert hits[0].score >= hits[1].score >= hits[2].score


def test_text_and_fused_queries_rank_every_photo_once(store, tiny_embedder, photos) -> None:
    run(store, tiny_embedder, photos)
    for query in (Query(text="red bike by a lake"), Query(text="at night", image=str(photos / "p0.jpg"))):
        hits = rank(store, query_vector(tiny_embedder, query, MAX_PIXELS), limit=20)
        assert len(hits) == 6 and len({hit.path for hit in hits}) == 6
        assert all(-1.0 <= hit.score <= 1.0 for hit in hits)


def test_a_fused_query_differs_from_its_image_alone(tiny_embedder, photos) -> None:
    image_only = query_vector(tiny_embedder, Query(image=str(photos / "p0.jpg")), MAX_PIXELS)
    fused = query_vector(tiny_embedder, Query(text="at night", image=str(photos / "p0.jpg")), MAX_PIXELS)
    assert float(image_only @ fused) < 0.9999


def test_an_index_refuses_a_different_model(store, tiny_embedder, photos, tmp_path) -> None:
    run(store, tiny_embedder, photos)
    with pytest.raises(ModelMismatchError, match=tiny_embedder.info.model_id):
        store.check_model(str(tmp_path / "another-model"))


def test_summary_counters_are_exactly_the_documented_six() -> None:
    assert list(IndexSummary().counters()) == ["added", "updated", "moved", "removed", "unchanged", "failed"]
