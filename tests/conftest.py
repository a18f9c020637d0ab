from __future__ import annotations

from pathlib import Path

import pytest

from tests.qwen3_support import tiny_qwen3, tiny_qwen3_dir, tiny_reranker_dir  # noqa: F401  (shared fixtures)
from tests.watch_support import MAX_TOKENS, MIN_TOKENS
from umsearch.devmodel import build_model_dir
from umsearch.embed import load_embedder
from umsearch.gme import GmeEmbedder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight gme-Qwen2-VL model directory in the real hub layout (built once per session)."""
    return build_model_dir(tmp_path_factory.mktemp("tiny-gme"), "tiny")


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dir: Path) -> GmeEmbedder:
    """The tiny model loaded in float32 on the CPU, so results do not depend on the test machine's GPU."""
    return load_embedder(str(tiny_model_dir), device="cpu", quant="none", dtype="float32")


@pytest.fixture(scope="session")
def small_embedder(tiny_model_dir: Path) -> GmeEmbedder:
    """The tiny model at a small image budget (watch_support.MIN_TOKENS..MAX_TOKENS): the watcher and fault tests embed many photos."""
    return load_embedder(
        str(tiny_model_dir),
        device="cpu",
        quant="none",
        dtype="float32",
        min_image_tokens=MIN_TOKENS,
        max_image_tokens=MAX_TOKENS,
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test touches the real user data folder or the network: a private home and an offline hub. No test
    starts a background service unless it asks for one (tests/test_service.py), so none is left running.
    Commands compute in float32 without quantisation unless a test says otherwise: the CPU default depends on
    the machine's vector units (bfloat16 or int8), and tests compare with the float32 reference."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("UMSEARCH_DTYPE", "float32")
    monkeypatch.setenv("UMSEARCH_QUANT", "none")
    monkeypatch.setenv("UMSEARCH_SERVER", "off")
    monkeypatch.delenv("UMSEARCH_IDLE_TIMEOUT", raising=False)
    monkeypatch.delenv("UMSEARCH_SERVICE_TRANSPORT", raising=False)
    monkeypatch.setenv("UMSEARCH_HOME", str(home))
    monkeypatch.delenv("UMSEARCH_DB", raising=False)
    monkeypatch.delenv("UMSEARCH_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    return home


@pytest.fixture
def processes():
    """umsearch processes a test starts (append them); any still running at its end are killed with their group."""
    from tests.fault_support import close_all

    started: list = []
    yield started
    close_all(started)
