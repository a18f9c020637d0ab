"""Turn a query (words, a picture, or both) into a vector and rank the indexed photos against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ImageLoadError, UmsearchError
from .imageload import load_image
from .store import Store

if TYPE_CHECKING:
    import numpy as np

    from .embed import Embedder


@dataclass(frozen=True)
class Query:
    text: str | None = None
    image: str | None = None  # a path
    instruction: str | None = None

    def __post_init__(self) -> None:
        if not (self.text and self.text.strip()) and not self.image:
            raise UmsearchError("give a text query, --image PATH, or both")


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    path: str
    file_id: int

    def as_dict(self) -> dict:
        return {"rank": self.rank, "score": round(self.score, 6), "path": self.path, "id": self.file_id}


def load_query_image(path: str, max_pixels: int) -> "PIL.Image.Image":  # noqa: F821
    try:
        return load_image(path, max_pixels).image
    except ImageLoadError as exc:
        raise UmsearchError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise UmsearchError(f"{path}: no such file") from None


def query_vector(embedder: "Embedder", query: Query, max_pixels: int) -> "np.ndarray":
    """One GME input: text alone, image alone, or image and text fused into a single vector."""
    image = load_query_image(query.image, max_pixels) if query.image else None
    text = query.text if query.text and query.text.strip() else None
    return embedder.embed_query(text=text, image=image, instruction=query.instruction)


def rank(store: Store, vector: "np.ndarray", limit: int) -> list[Hit]:
    """The indexed photos nearest to `vector`, best first, with cosine similarity as the score."""
    nearest = store.knn(vector, limit)
    rows = store.files_by_id(file_id for file_id, _ in nearest)
    hits = []
    for file_id, score in nearest:
        row = rows.get(file_id)
        if row is not None:
            hits.append(Hit(len(hits) + 1, score, row.path, file_id))
    return hits
