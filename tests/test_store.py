"""The index file: settings, files, vectors, transactions, and refusing what is not ours."""

import sqlite3

import numpy as np
import pytest

from umsearch.errors import ModelMismatchError, StoreError
from umsearch.store import IndexSettings, Store

SETTINGS = IndexSettings("some/model", 4, 256, 1280)


def unit(*values):
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "index.db") as s:
        s.bind(SETTINGS)
        yield s


def test_settings_are_recorded_and_a_different_model_is_refused(store):
    assert store.settings() == SETTINGS
    store.bind(SETTINGS)  # the same settings: fine
    with pytest.raises(ModelMismatchError, match="some/model"):
        store.bind(IndexSettings("other/model", 4, 256, 1280))
    with pytest.raises(ModelMismatchError, match="image budget"):
        store.bind(IndexSettings("some/model", 4, 256, 576))


def test_put_replace_and_knn(store):
    a = store.put_file("/p/a.jpg", size=1, mtime_ns=1, digest="ha", vector=unit(1, 0, 0, 0))
    b = store.put_file("/p/b.jpg", size=1, mtime_ns=1, digest="hb", vector=unit(0, 1, 0, 0))
    assert [fid for fid, _ in store.knn(unit(1, 0.1, 0, 0), 2)] == [a, b]
    # Replacing a file's vector (vec0 has no INSERT OR REPLACE) keeps one row per file.
    assert store.put_file("/p/a.jpg", size=2, mtime_ns=2, digest="ha2", vector=unit(0, 0, 1, 0)) == a
    ((best_id, score),) = store.knn(unit(0, 0, 1, 0), 1)
    assert best_id == a and score == pytest.approx(1.0, abs=1e-6)
    assert store.counts().indexed == 2


def test_failed_files_have_no_vector_and_are_counted(store):
    store.put_file("/p/bad.jpg", size=1, mtime_ns=1, digest=None, error="truncated file")
    assert store.counts().failed == 1
    assert [(r.path, r.error) for r in store.failures()] == [("/p/bad.jpg", "truncated file")]
    assert store.knn(unit(1, 0, 0, 0), 5) == []


def test_move_keeps_the_vector_and_delete_removes_it(store):
    fid = store.put_file("/p/a.jpg", size=1, mtime_ns=1, digest="ha", vector=unit(1, 0, 0, 0))
    store.move_file(fid, "/q/renamed.jpg", size=1, mtime_ns=5)
    assert store.file_by_path("/p/a.jpg") is None
    assert store.file_by_path("/q/renamed.jpg").id == fid
    np.testing.assert_allclose(store.vector(fid), unit(1, 0, 0, 0))
    store.delete_files([fid])
    assert store.knn(unit(1, 0, 0, 0), 5) == [] and store.counts().indexed == 0


def test_iter_files_under_a_folder_does_not_match_siblings_with_the_same_prefix(store):
    for path in ("/p/a.jpg", "/p/sub/b.jpg", "/p2/c.jpg", "/p.jpg"):
        store.put_file(path, size=1, mtime_ns=1, digest=path, vector=unit(1, 1, 0, 0))
    assert [r.path for r in store.iter_files(["/p"])] == ["/p/a.jpg", "/p/sub/b.jpg"]


def test_a_failed_transaction_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.put_file("/p/a.jpg", size=1, mtime_ns=1, digest="ha", vector=unit(1, 0, 0, 0))
        raise RuntimeError("interrupted")
    assert store.counts().indexed == 0 and store.knn(unit(1, 0, 0, 0), 1) == []


def test_reopening_keeps_everything(tmp_path):
    path = tmp_path / "index.db"
    with Store.open(path) as s:
        s.bind(SETTINGS)
        s.put_file("/p/a.jpg", size=1, mtime_ns=1, digest="ha", vector=unit(1, 0, 0, 0))
    with Store.open(path, create=False) as s:
        assert s.settings() == SETTINGS and s.counts().indexed == 1


def test_missing_index_is_a_clear_error_when_not_creating(tmp_path):
    with pytest.raises(StoreError, match="no index at"):
        Store.open(tmp_path / "nope.db", create=False)


def test_foreign_and_garbage_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not an umsearch index"):
        Store.open(garbage)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="another application"):
        Store.open(foreign)


def test_index_folder_is_created_private(tmp_path):
    path = tmp_path / "new" / "index.db"
    Store.open(path).close()
    assert (path.parent.stat().st_mode & 0o777) == 0o700
