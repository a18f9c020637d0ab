"""The session core: one index + a lazily loaded model, used by every front-end."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from umsearch.errors import UmsearchError
from umsearch.index import Indexer
from umsearch.querylang import SearchRequest, Term, parse_search_text
from umsearch.session import ModelGate, NeedsModel, SearchQuery, Session
from umsearch.settings import max_pixels
from umsearch.store import Store

from .photos import write_photo

pytestmark = pytest.mark.slow  # processes, whole-pipeline runs: see CONTRIBUTING.md

PACKAGE = Path(__file__).resolve().parent.parent / "umsearch"


@pytest.fixture
def indexed(tmp_path: Path, tiny_embedder) -> tuple[Path, Path]:
    photos = tmp_path / "photos"
    for seed in range(5):
        write_photo(photos / f"p{seed}.jpg", seed)
    db = tmp_path / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280)).index([str(photos)])
    return db, photos


class CountingFactory:
    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.loads = 0

    def __call__(self, model_id, budget, runtime):
        self.loads += 1
        return self.embedder


def refuse_model(*args):
    raise AssertionError("the model must not be loaded for this")


def text_query(text: str, limit: int = 5) -> SearchQuery:
    return SearchQuery(parse_search_text(text), limit=limit)


def test_a_text_query_asked_again_is_answered_from_the_cache_without_the_model(indexed, tiny_embedder) -> None:
    db, _ = indexed
    factory = CountingFactory(tiny_embedder)
    with Session(Store.open(db), embedder_factory=factory) as session:
        first = session.search(text_query("a red square"))
    assert factory.loads == 1
    with Session(Store.open(db), embedder_factory=refuse_model) as session:
        again = session.search(text_query("a red square"), allow_model=False)
    assert [(h.path, h.score) for h in again.hits] == [(h.path, h.score) for h in first.hits]


def test_a_new_text_needs_the_model_and_says_so_when_it_may_not_load_it(indexed) -> None:
    db, _ = indexed
    with Session(Store.open(db), embedder_factory=refuse_model) as session, pytest.raises(NeedsModel):
        session.search(text_query("never asked before"), allow_model=False)


def test_the_cache_is_keyed_by_text_and_instruction(indexed, tiny_embedder) -> None:
    db, _ = indexed
    with Session(Store.open(db), embedder_factory=CountingFactory(tiny_embedder)) as session:
        session.search(text_query("harbour"))
        plain = session.search(text_query("harbour"), allow_model=False)
        with pytest.raises(NeedsModel):
            session.search(SearchQuery(parse_search_text("harbour"), instruction="Find a map."), allow_model=False)
    assert plain.hits


def test_an_indexed_unchanged_photo_as_query_uses_its_stored_vector(indexed) -> None:
    db, photos = indexed
    query = SearchQuery(SearchRequest(positives=(Term(image=str(photos / "p2.jpg")),)), limit=1)
    with Session(Store.open(db), embedder_factory=refuse_model) as session:
        hit = session.search(query, allow_model=False).hits[0]
    assert Path(hit.path).name == "p2.jpg" and hit.score == pytest.approx(1.0, abs=1e-6)


def test_a_changed_photo_is_embedded_afresh_not_taken_from_the_index(indexed) -> None:
    db, photos = indexed
    write_photo(photos / "p2.jpg", 99)  # new bytes, new mtime: the stored vector is stale
    query = SearchQuery(SearchRequest(positives=(Term(image=str(photos / "p2.jpg")),)), limit=1)
    with Session(Store.open(db), embedder_factory=refuse_model) as session, pytest.raises(NeedsModel):
        session.search(query, allow_model=False)


def test_pages_continue_where_the_first_page_ended(indexed, tiny_embedder) -> None:
    db, _ = indexed
    with Session(Store.open(db), embedder_factory=CountingFactory(tiny_embedder)) as session:
        everything = session.search(text_query("a photo", limit=5)).hits
        second = session.search(SearchQuery(parse_search_text("a photo"), limit=2, offset=2)).hits
    assert [(h.rank, h.path) for h in second] == [(h.rank, h.path) for h in everything[2:4]]


def test_a_query_image_that_is_a_folder_or_missing_is_refused_before_any_model_loads(indexed, tmp_path) -> None:
    db, photos = indexed
    with Session(Store.open(db), embedder_factory=refuse_model) as session:
        for path, message in ((photos, "is a folder, not an image"), (tmp_path / "nope.jpg", "no such file")):
            query = SearchQuery(SearchRequest(positives=(Term(text="x", image=str(path)),)))
            with pytest.raises(UmsearchError, match=message):
                session.search(query)


def test_filters_alone_say_what_is_missing(indexed) -> None:
    db, _ = indexed
    with Session(Store.open(db), embedder_factory=refuse_model) as session:
        with pytest.raises(UmsearchError, match="cannot rank photos alone"):
            session.search(text_query("camera:Canon sort:date"))
        with pytest.raises(UmsearchError, match="not only -negative terms"):
            session.search(text_query("-people"))


def test_the_model_gate_serves_a_waiting_query_before_the_next_indexing_batch() -> None:
    gate = ModelGate()
    order: list[str] = []
    first_batch_running = threading.Event()
    release_first = threading.Event()

    def batches() -> None:
        for i in range(2):
            with gate.batch():
                order.append(f"batch {i}")
                if i == 0:
                    first_batch_running.set()
                    release_first.wait(5)

    def query() -> None:
        with gate.query():
            order.append("query")

    indexing = threading.Thread(target=batches)
    indexing.start()
    first_batch_running.wait(5)
    asking = threading.Thread(target=query)
    asking.start()
    time.sleep(0.1)  # the query is now waiting for the batch in flight
    release_first.set()
    indexing.join(5)
    asking.join(5)
    assert order == ["batch 0", "query", "batch 1"]


def imported_parts(source: Path) -> set[str]:
    """The umsearch top-level modules/packages that `source` imports (relative imports resolved)."""
    relative = source.relative_to(PACKAGE)
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(relative.parts[:-1])[: len(relative.parts) - node.level]
                parts = base + (node.module.split(".") if node.module else [a.name for a in node.names][:1])
            elif node.module and node.module.startswith("umsearch."):
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                found.add(parts[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("umsearch."))
    return found


def test_no_module_imports_the_cli_and_the_tui_and_web_never_import_each_other() -> None:
    for source in PACKAGE.rglob("*.py"):
        owner = source.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if owner in ("cli", "__main__"):
            continue  # the entry point launches the front-ends
        imported = imported_parts(source)
        assert "cli" not in imported, f"{source.relative_to(PACKAGE)} imports the CLI"
        for front_end, other in (("tui", "web"), ("web", "tui")):
            if owner == front_end:
                assert other not in imported, f"{source.relative_to(PACKAGE)} imports the {other} front-end"


def test_a_cached_query_in_process_imports_neither_torch_nor_transformers(indexed, tiny_embedder, tmp_path) -> None:
    db, _ = indexed
    with Session(Store.open(db), embedder_factory=CountingFactory(tiny_embedder)) as session:
        session.search(text_query("a blue circle"))
    probe = (
        "import json, sys\n"
        "from umsearch.session import SearchQuery, Session\n"
        "from umsearch.querylang import parse_search_text\n"
        f"session = Session.open(__import__('pathlib').Path({str(db)!r}))\n"
        "hits = session.search(SearchQuery(parse_search_text('a blue circle')), allow_model=False).hits\n"
        "print(json.dumps([len(hits), 'torch' in sys.modules, 'transformers' in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    count, torch_loaded, transformers_loaded = json.loads(out.stdout)
    assert count == 5 and not torch_loaded and not transformers_loaded


def test_recent_and_details_come_from_the_index_alone(indexed) -> None:
    db, photos = indexed
    with Session(Store.open(db), embedder_factory=refuse_model) as session:
        recent = session.recent(3)
        assert len(recent) == 3 and all(hit.score is None for hit in recent)
        details = session.details(recent[0].file_id)
        assert details is not None and details.path == recent[0].path and details.taken is not None
        assert session.details(10_000) is None
        assert session.status()["indexed"] == 5
    assert np.isfinite([hit.file_id for hit in recent]).all()
