"""Model files removed or damaged: at the next start one line names the model and what is wrong (index untouched);
while a process runs with the model loaded nothing changes; a watcher that has not loaded it yet waits (one line,
no exit, no crash loop under a service manager) and indexes again once the files are back."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fault_support import assert_consistent, error_lines, run
from tests.photos import picture, write_photo
from tests.watch_support import MAX_PIXELS, MAX_TOKENS, MIN_TOKENS, folder_state, index_state, wait_for, wait_in_step
from umsearch.embed import load_embedder
from umsearch.index import Indexer
from umsearch.querylang import SearchRequest, Term
from umsearch.session import SearchQuery, Session
from umsearch.store import Store
from umsearch.watch import Watcher, WatchOptions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]

SHARD = "model-00002-of-00003.safetensors"


def damage(model: Path, how: str) -> str:
    """Damage a copy of the model as real failures do; returns what the error line must say."""
    if how == "shard deleted":
        (model / SHARD).unlink()
        return f"model directory {model} is missing weight shard {SHARD} (incomplete download?)"
    if how == "shard truncated":
        with open(model / SHARD, "r+b") as fh:
            fh.truncate(1000)
        return f"cannot load the model in {model}: "
    if how == "config corrupt":
        (model / "config.json").write_text('{"model_type": ')
        return f"cannot read {model / 'config.json'}: "  # read first, to tell the model family
    if how == "tokenizer deleted":
        (model / "tokenizer.json").unlink()
        (model / "vocab.json").unlink()
        return f"model directory {model} is missing tokenizer.json"
    if how == "folder deleted":
        shutil.rmtree(model)
        return f"model directory {model} does not exist"
    raise ValueError(how)


def index_one_photo_with_a_copy_of(tiny_model_dir: Path, tmp_path: Path) -> tuple[Path, Path, Path, Any]:
    """A copy of the tiny model (to damage), and an index of one photo made with it; the loaded embedder."""
    model, photos, db = tmp_path / "model", tmp_path / "photos", tmp_path / "index.db"
    shutil.copytree(tiny_model_dir, model)
    write_photo(photos / "a.jpg", seed=1)
    embedder = load_embedder(
        str(model),
        device="cpu",
        quant="none",
        dtype="float32",
        min_image_tokens=MIN_TOKENS,
        max_image_tokens=MAX_TOKENS,
    )
    with Store.open(db) as store:
        Indexer(store, lambda: embedder, max_pixels=MAX_PIXELS).index([str(photos)])
    return model, photos, db, embedder


DAMAGES = ["shard deleted", "shard truncated", "config corrupt", "tokenizer deleted", "folder deleted"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_model_at_the_next_start_is_one_line_and_the_index_is_untouched(tmp_path, tiny_model_dir, how):
    model, photos, db, embedder = index_one_photo_with_a_copy_of(tiny_model_dir, tmp_path)
    expected = damage(model, how)
    write_photo(photos / "b.jpg", seed=2)  # something to embed: the model must load
    commands = [("index", str(photos))]
    if how == "folder deleted":  # queries load the index's own model the same way
        commands += [("query", "a red bike"), ("similar", str(photos / "b.jpg"))]
    for args in commands:
        done = run(*args, "--db", str(db))
        assert done.returncode == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr
        [line] = error_lines(done.stderr)
        assert expected in line, (args, line)
    assert_consistent(db)
    with Store.open(db, create=False) as store:
        assert [row.path for row in store.iter_files()] == [str(photos / "a.jpg")]


def test_model_files_removed_while_the_model_is_loaded_change_nothing(tmp_path, tiny_model_dir):
    model, photos, db, embedder = index_one_photo_with_a_copy_of(tiny_model_dir, tmp_path)
    with Session(Store.open(db), embedder_factory=lambda *args: embedder) as session:
        first = session.search(SearchQuery(SearchRequest(positives=(Term(text="a red bike"),))))
        shutil.rmtree(model)  # an upgrade, a cache clean-up, a disk error: the weights are already in memory
        again = session.search(SearchQuery(SearchRequest(positives=(Term(text="a red bike"),))))
        assert [h.path for h in again.hits] == [h.path for h in first.hits]
        new_text = session.search(SearchQuery(SearchRequest(positives=(Term(text="snow on a mountain lake"),))))
        assert new_text.hits
        query_image = write_photo(tmp_path / "query.png", seed=7)
        assert session.search(SearchQuery(SearchRequest(positives=(Term(image=str(query_image)),)))).hits
        assert len(session.embed(text="words", image=str(query_image))) == embedder.info.dim
    with Store.open(db) as store:
        write_photo(photos / "b.jpg", seed=2)
        picture(3).save(photos / "c.png")
        summary = Indexer(store, lambda: embedder, max_pixels=MAX_PIXELS).index([str(photos)])
        assert (summary.added, summary.failed) == (2, 0)
    assert index_state(db, photos) == folder_state(photos)


def test_a_watcher_whose_model_cannot_load_waits_says_so_once_and_resumes_when_it_is_back(tmp_path, tiny_model_dir):
    model, photos, db = tmp_path / "model", tmp_path / "photos", tmp_path / "index.db"
    photos.mkdir()
    shutil.copytree(tiny_model_dir, model)
    (model / SHARD).rename(tmp_path / SHARD)  # a download cut short, a clean-up gone wrong
    messages: list[str] = []
    loads: list[int] = []

    def load():
        loads.append(1)
        return load_embedder(
            str(model),
            device="cpu",
            quant="none",
            dtype="float32",
            min_image_tokens=MIN_TOKENS,
            max_image_tokens=MAX_TOKENS,
        )

    with Store.open(db) as store:
        indexer = Indexer(store, load, max_pixels=MAX_PIXELS)
        options = WatchOptions(quiet_period=0.2, debounce=0.05, model_retry=0.5)
        watcher = Watcher(indexer, [str(photos)], options, on_message=messages.append)
        watcher.start()
        try:
            write_photo(photos / "a.jpg", seed=1)
            wait_for(lambda: len(loads) >= 3, 60, "the watcher to try loading the model a few times")
            assert [m for m in messages if "missing weight shard" in m] == [
                f"model directory {model} is missing weight shard {SHARD} (incomplete download?); new photos wait "
                "until it loads (trying again in 0.5 s, then less often)"
            ]
            assert watcher._thread.is_alive()
            (tmp_path / SHARD).rename(model / SHARD)
            wait_in_step(db, photos)
            assert "the model loaded: new photos are indexed again" in messages
        finally:
            watcher.stop()
    assert_consistent(db)
