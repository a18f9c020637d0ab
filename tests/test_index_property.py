"""Property: after any sequence of create / modify / rename / delete (files or a folder) and an index run, the index equals the folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from umsearch.index import Indexer
from umsearch.planning import content_hash
from umsearch.settings import max_pixels
from umsearch.store import Store

from .photos import write_photo

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

NAMES = ["a.jpg", "b.jpg", "sub/c.jpg", "sub/d.png", "e.txt.jpg"]
name = st.sampled_from(NAMES)
operation = st.one_of(
    st.tuples(st.just("create"), name, st.integers(0, 5)),
    st.tuples(st.just("modify"), name, st.integers(0, 5)),
    st.tuples(st.just("corrupt"), name, st.just(0)),
    st.tuples(st.just("rename"), name, name),
    st.tuples(st.just("delete"), name, st.just(0)),
    st.tuples(st.just("delete folder"), st.just("sub"), st.just(0)),
    st.tuples(st.just("index"), st.just(""), st.just(0)),
)


class Folder:
    """The folder under test; every write gets a later mtime, as real edits do (size+mtime detect change)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = 1_600_000_000

    def _stamp(self, path: Path) -> None:
        self.clock += 10
        os.utime(path, (self.clock, self.clock))

    def apply(self, op: str, a: str, b) -> None:
        path = self.root / a
        if op in ("create", "modify") and (op == "create") != path.exists():
            write_photo(path, seed=b, size=(40 + b, 30), format="PNG" if a.endswith(".png") else "JPEG")
            self._stamp(path)
        elif op == "corrupt" and path.exists():
            path.write_bytes(b"broken")
            self._stamp(path)
        elif op == "rename" and path.exists() and a != b:
            target = self.root / b
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        elif op == "delete" and path.exists():
            path.unlink()
        elif op == "delete folder" and path.exists():
            shutil.rmtree(path)

    def files(self) -> set[str]:
        return {str(p) for p in self.root.rglob("*") if p.is_file()}


def check_index_equals_folder(store: Store, folder: Folder) -> None:
    rows = {row.path: row for row in store.iter_files()}
    assert set(rows) == folder.files()
    for path, row in rows.items():
        assert row.hash == content_hash(path)  # the stored entry describes the current bytes
        assert row.status == ("failed" if Path(path).read_bytes() == b"broken" else "ok"), (path, row)
    ok_ids = {row.id for row in rows.values() if row.status == "ok"}
    vector_ids = {r[0] for r in store.db.execute("SELECT rowid FROM vectors")} if store.has_vectors_table() else set()
    assert vector_ids == ok_ids


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=12))
def test_index_always_equals_the_folder(tiny_embedder, ops):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Folder(Path(tmp) / "photos")
        folder.root.mkdir()
        with Store.open(Path(tmp) / "i.db") as store:
            indexer = Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280), batch_size=3, workers=2)
            for op, a, b in [*ops, ("index", "", 0)]:
                if op == "index":
                    indexer.index([str(folder.root)])
                    check_index_equals_folder(store, folder)
                else:
                    folder.apply(op, a, b)
