"""A Qwen3-VL index (with --dim) and reranking through the resident service, and their wire form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from umsearch.querylang import parse_search_text
from umsearch.search import Hit
from umsearch.service import protocol
from umsearch.service.paths import service_paths
from umsearch.service.route import Route
from umsearch.session import SearchQuery, SearchResult, Session

from .photos import write_photo
from .service_support import Processes, service_env, umsearch


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracked = Processes()
    yield tracked
    tracked.cleanup()


def test_rerank_crosses_the_wire() -> None:
    query = SearchQuery(parse_search_text("a red bike"), limit=5, rerank=30)
    assert protocol.decode_query(protocol.loads(protocol.dumps(protocol.encode_query(query)))) == query
    result = SearchResult([Hit(1, 0.25, "/p/a.jpg", 3, rerank=0.875)], 4)
    assert protocol.decode_result(protocol.loads(protocol.dumps(protocol.encode_result(result)))) == result
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_query({**protocol.encode_query(query), "rerank": 0})


def test_a_service_with_another_reranker_is_not_used(tmp_path: Path) -> None:
    import os

    from umsearch import __version__

    db = tmp_path / "index.db"
    db.write_bytes(b"")
    info = os.stat(db)
    identity = {
        "protocol": protocol.PROTOCOL,
        "version": __version__,
        "index": str(service_paths(db).db),
        "index_id": [info.st_dev, info.st_ino],
        "model": "/models/a",
        "rerank_model": "/models/r1",
        "runtime": {"device": "auto", "quant": "auto", "dtype": "auto"},
        "loaded": None,
        "budget": [4, 1800],
        "index_budget": [4, 1800],
        "watching": False,
    }
    assert Route(db=db, open_session=Session.open, rerank_model="/models/r1").unfit(identity) is None
    assert "reranks with" in Route(db=db, open_session=Session.open, rerank_model="/models/r2").unfit(identity)


@pytest.mark.slow
def test_a_shortened_qwen3_index_queried_and_reranked_through_its_service(
    tmp_path: Path, tiny_qwen3_dir: Path, tiny_reranker_dir: Path, processes: Processes
) -> None:
    photos, home = tmp_path / "photos", tmp_path / "home"
    for seed in range(5):
        write_photo(photos / f"p{seed}.jpg", seed)
    db = processes.index(home / "index.db")
    env = service_env(home, db)
    built = umsearch(env, "index", str(photos), "--model", str(tiny_qwen3_dir), "--dim", "32")
    assert built.returncode == 0, built.stderr
    first = umsearch(env, "query", "--json", "snow at night", "--limit", "3")  # needs the model: starts the service
    assert first.returncode == 0, first.stderr
    assert processes.service_pid(db) is not None, first.stderr
    assert len(json.loads(first.stdout)) == 3
    target = str(photos / "p2.jpg")
    fused = umsearch(env, "query", "--json", "at night", "--image", target, "--limit", "3")
    assert fused.returncode == 0, fused.stderr  # the service's model shortens to the index's 32 values too
    reranked = umsearch(
        env, "query", "--json", "a red bike", "--rerank", "4", "--rerank-model", str(tiny_reranker_dir), "--limit", "4"
    )
    assert reranked.returncode == 0, reranked.stderr
    scores = [hit["rerank"] for hit in json.loads(reranked.stdout)]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
