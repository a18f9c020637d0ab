"""The resident service under faults: its index file deleted or replaced (it stops; the next query is answered from
the index at the path), its model files removed while it runs (it keeps answering from memory) and damaged at the
next start (one line). Real service processes over real sockets, with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.photos import write_photo
from tests.service_support import Processes, copy_index, service_env, umsearch, wait_for
from umsearch.index import Indexer
from umsearch.service.client import find_service
from umsearch.service.paths import service_paths
from umsearch.settings import max_pixels
from umsearch.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.name == "nt", reason="Unix sockets and signals"),
]


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracked = Processes()
    yield tracked
    tracked.cleanup()


@pytest.fixture
def library(tmp_path, tiny_model_dir, tiny_embedder) -> tuple[Path, Path, Path]:
    """An index of four photos made with a private copy of the tiny model (which a test may then damage)."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    photos = tmp_path / "photos"
    for seed in range(4):
        write_photo(photos / f"p{seed}.jpg", seed)
    db = tmp_path / "home" / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280)).index([str(photos)])
        store.db.execute("UPDATE meta SET value = ? WHERE key = 'model_id'", (str(model),))
    return db, photos, model


def query(env: dict[str, str], text: str) -> list[str]:
    done = umsearch(env, "query", "--json", text)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return [Path(hit["path"]).name for hit in json.loads(done.stdout)]


def service_log(db: Path) -> str:
    return service_paths(db).log.read_text(encoding="utf-8", errors="replace")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:  # reaped or a zombie: gone either way
        return handle.read().split(")")[-1].split()[0] == "Z"


def test_a_service_whose_index_is_replaced_stops_and_the_next_query_reads_the_new_file(library, processes):
    db, photos, _ = library
    env = service_env(db.parent, processes.index(db))
    assert sorted(query(env, "a photo")) == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]
    first = processes.service_pid(db)
    assert first is not None
    restored = copy_index(db, db.parent / "restored" / "index.db")  # a backup restored over it, one photo less
    with Store.open(restored) as store:
        store.forget_below(str(photos / "p3.jpg"))
    os.replace(restored, db)
    wait_for(lambda: gone(first), 10, "the service of the replaced index to stop")
    assert "was replaced by another file while this process had it open" in service_log(db)
    # A question not yet cached needs the model: a new service, on the file at the path, answers it.
    assert sorted(query(env, "another photo")) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert processes.service_pid(db) not in (None, first)


def test_a_service_whose_index_is_deleted_stops_and_writes_nothing_more(library, processes):
    db, _, _ = library
    env = service_env(db.parent, processes.index(db))
    query(env, "a photo")
    pid = processes.service_pid(db)
    db.unlink()
    wait_for(lambda: gone(pid), 10, "the service of the deleted index to stop")
    assert "was deleted while this process had it open" in service_log(db)
    assert not db.exists()  # nothing made a new index behind the user's back
    done = umsearch(env, "query", "--json", "a photo")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no index at {db}" in done.stderr


def test_model_files_removed_under_a_running_service_and_damaged_at_its_next_start(library, processes):
    db, _, model = library
    env = service_env(db.parent, processes.index(db))
    before = query(env, "a photo")
    pid = processes.service_pid(db)
    # Both parts loaded: a text query loads the decoder, the first image the vision tower (load less).
    similar = umsearch(env, "similar", "--json", str(write_photo(db.parent / "q.png", seed=9)))
    assert similar.returncode == 0, similar.stderr
    shutil.rmtree(model)  # the weights are in the service's memory already
    assert query(env, "a photo") == before
    assert query(env, "something never asked before")  # needs the model: still answered from memory
    similar = umsearch(env, "similar", "--json", str(write_photo(db.parent / "q2.png", seed=8)))
    assert similar.returncode == 0, similar.stderr  # an image through the vision tower, also from memory
    assert processes.service_pid(db) == pid
    stop = umsearch(env, "server", "stop")
    assert stop.returncode == 0, stop.stderr
    wait_for(lambda: find_service(service_paths(db)) is None, 30, "the service to stop")
    # The next start meets the missing model: one line naming it, for the client; no crash loop, no traceback.
    for _ in range(2):
        started = time.monotonic()
        done = umsearch(env, "query", "--json", "yet another question")
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and f"model directory {model} does not exist" in lines[0], done.stderr
        assert time.monotonic() - started < 60
