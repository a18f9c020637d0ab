"""The TUI on a Qwen3-VL-Embedding index, and its reranking toggle (ctrl+r)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("textual")

from tests.tui_support import build_index, embedder_factory, run_async, settle, write_photos
from umsearch.rerank import load_reranker
from umsearch.tui.app import UmsearchApp, make_app

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def qwen3_library(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("tui-qwen3")
    write_photos(root / "photos")
    return build_index(root / "index.db", root / "photos", tiny_qwen3_dir)


@pytest.fixture
def app(qwen3_library: Path, tiny_qwen3_dir: Path, tiny_reranker_dir: Path) -> UmsearchApp:
    def reranker(model_id: str, budget: tuple[int, int], runtime: object):
        assert model_id == str(tiny_reranker_dir)
        return load_reranker(
            model_id,
            device="cpu",
            quant="none",
            dtype="float32",
            min_image_tokens=budget[0],
            max_image_tokens=budget[1],
        )

    return make_app(
        qwen3_library,
        None,
        image_mode="halfcell",
        embedder_factory=embedder_factory,
        reranker_factory=reranker,
        rerank_model=str(tiny_reranker_dir),
    )


def message(app: UmsearchApp) -> str:
    return str(app.query_one("#message").render())


@run_async
async def test_a_qwen3_index_searches_and_ctrl_r_reranks_the_best_matches(app: UmsearchApp) -> None:
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*"red boat", "enter")
        await settle(pilot)
        plain = list(app.results)
        assert len(plain) == 6 and "6 results for “red boat”" in message(app)
        app.service.rerank_top = 4
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "rerank top 4" in str(app.query_one("#status").render())
        reranked = list(app.results)
        head = reranked[:4]
        assert {r.file_id for r in head} == {r.file_id for r in plain[:4]}
        scores = [r.score for r in head]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        assert [r.file_id for r in reranked[4:]] == [r.file_id for r in plain[4:]]
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert [r.file_id for r in app.results] == [r.file_id for r in plain]
        assert "reranking off" in message(app) or "results" in message(app)
