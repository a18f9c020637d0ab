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
    from .filters import Filters


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
    score: float | None  # cosine similarity; None for a photo listed without a query (recent photos)
    path: str
    file_id: int
    taken: int | None = None  # wall-clock seconds (metadata.wall_clock_seconds)
    camera: str | None = None
    place: str | None = None

    def as_dict(self) -> dict:
        found = {
            "rank": self.rank,
            "score": None if self.score is None else round(self.score, 6),
            "path": self.path,
            "id": self.file_id,
        }
        if self.taken is not None:
            found.update(taken=taken_text(self.taken), camera=self.camera, place=self.place)
        return found


def taken_text(taken: int) -> str:
    from .metadata import wall_clock_datetime

    return wall_clock_datetime(taken).strftime("%Y-%m-%d %H:%M:%S")


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


# ---- search with filters and query arithmetic -----------------------------------------------------
def combine(positives: "list[tuple[np.ndarray, float]]", negatives: "list[tuple[np.ndarray, float]]") -> "np.ndarray":
    """Query arithmetic: the weighted sum of the normalised positive vectors minus the weighted
    normalised negative ones, normalised again (so scores stay cosine similarities)."""
    import numpy as np

    total = None
    for vectors, sign in ((positives, 1.0), (negatives, -1.0)):
        for vector, weight in vectors:
            unit = np.asarray(vector, dtype=np.float32)
            unit = unit / (np.linalg.norm(unit) or 1.0)
            total = sign * weight * unit if total is None else total + sign * weight * unit
    if total is None:
        raise UmsearchError("give something to search for")
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UmsearchError("the query's terms cancel each other out; change their weights")
    return (total / norm).astype(np.float32)


def search(
    store: Store,
    vector: "np.ndarray",
    limit: int,
    filters: "Filters | None" = None,
    *,
    min_score: float | None = None,
    sort: str = "score",
) -> list[Hit]:
    """The `limit` best matches that pass the filters (inside the vector scan), then ordered by
    score or by date taken (newest first)."""
    nearest = store.knn(vector, limit, filters)
    if min_score is not None:
        nearest = [(file_id, score) for file_id, score in nearest if score >= min_score]
    rows = store.files_by_id(file_id for file_id, _ in nearest)
    facts = store.facts_by_id(file_id for file_id, _ in nearest)
    found = [(file_id, score) for file_id, score in nearest if file_id in rows]
    if sort == "date":
        found.sort(key=lambda item: -(facts[item[0]].taken or 0) if item[0] in facts else 0)
    hits = []
    for file_id, score in found:
        fact = facts.get(file_id)
        hits.append(
            Hit(
                len(hits) + 1,
                score,
                rows[file_id].path,
                file_id,
                fact.taken if fact else None,
                fact.camera if fact else None,
                fact.place if fact else None,
            )
        )
    return hits
