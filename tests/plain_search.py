"""The plainest search, as a reference for tests: one query (text, image or both) embedded as it is, and the
index ranked by it with no filters and no query arithmetic. The real paths (Session.search, the TUI, the
watcher's queries) must agree with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from umsearch.search import Hit, load_query_image
from umsearch.store import Store

if TYPE_CHECKING:
    import numpy as np

    from umsearch.embed import Embedder


@dataclass(frozen=True)
class Query:
    text: str | None = None
    image: str | None = None  # a path
    instruction: str | None = None


def query_vector(embedder: Embedder, query: Query, max_pixels: int) -> np.ndarray:
    """One GME input: text alone, image alone, or image and text fused into a single vector."""
    image = load_query_image(query.image, max_pixels) if query.image else None
    text = query.text if query.text and query.text.strip() else None
    return embedder.embed_query(text=text, image=image, instruction=query.instruction)


def rank(store: Store, vector: np.ndarray, limit: int) -> list[Hit]:
    """The indexed photos nearest to `vector`, best first, with cosine similarity as the score."""
    nearest = store.knn(vector, limit)
    rows = store.files_by_id(file_id for file_id, _ in nearest)
    return [
        Hit(rank, score, rows[file_id].path, file_id)
        for rank, (file_id, score) in enumerate(((i, s) for i, s in nearest if i in rows), 1)
    ]
