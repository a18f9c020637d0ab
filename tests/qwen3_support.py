"""Fixtures for the Qwen3-VL family: tiny random Embedding and Reranker models in the real hub layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from umsearch.devmodel_qwen3 import build_qwen3_model_dir
from umsearch.embed import load_embedder
from umsearch.qwen3vl import Qwen3VLEmbedder


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen3-VL-Embedding model directory (built once per session)."""
    return build_qwen3_model_dir(tmp_path_factory.mktemp("tiny-qwen3"), "tiny")


@pytest.fixture(scope="session")
def tiny_qwen3(tiny_qwen3_dir: Path) -> Qwen3VLEmbedder:
    """The tiny Qwen3-VL-Embedding model in float32 on the CPU, at the reference image budget."""
    return load_embedder(str(tiny_qwen3_dir), device="cpu", quant="none", dtype="float32")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen3-VL-Reranker directory (untied output head, so its rows are its own)."""
    return build_qwen3_model_dir(tmp_path_factory.mktemp("tiny-reranker"), "tiny", seed=1, reranker=True)


def make_frames(count: int, width: int, height: int, seed: int) -> tuple[Image.Image, ...]:
    """A short synthetic clip: a coloured block moving over a gradient, so frames differ but belong together."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 90)], axis=-1)
    colour = rng.integers(0, 256, 3)
    frames = []
    for i in range(count):
        pixels = base.astype(np.uint8).copy()
        x0 = (i * width // max(count, 1)) % max(width - width // 4, 1)
        pixels[height // 4 : height // 2, x0 : x0 + width // 4] = colour
        frames.append(Image.fromarray(pixels, "RGB"))
    return tuple(frames)
