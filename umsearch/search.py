"""Turn a query (words, a picture, or both) into a vector and rank the indexed photos against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ImageLoadError, UmsearchError
from .imageload import load_image
from .store import Store

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

    from .filters import Filters


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float | None  # cosine similarity; None for a photo listed without a query (recent photos)
    path: str
    file_id: int
    taken: int | None = None  # wall-clock seconds (metadata.wall_clock_seconds)
    camera: str | None = None
    place: str | None = None
    kind: str = "photo"  # photo, screenshot, document, video (kinds.KINDS)
    time: float | None = None  # a video: seconds into it of the best-matching frame
    page: int | None = None  # a document: the best-matching page
    rerank: float | None = None  # the reranker's probability (0-1), when `query --rerank` rescored this hit

    def as_dict(self) -> dict:
        found: dict = {
            "rank": self.rank,
            "score": None if self.score is None else round(self.score, 6),
            "path": self.path,
            "id": self.file_id,
            "kind": self.kind,
        }
        if self.time is not None:
            found["time"] = self.time
        if self.page is not None:
            found["page"] = self.page
        if self.rerank is not None:
            found["rerank"] = round(self.rerank, 6)
        if self.taken is not None:
            found.update(taken=taken_text(self.taken), camera=self.camera, place=self.place)
        return found

    @property
    def where(self) -> str:
        """Where in the file the match is, for people: "▶ 1:23" in a video, "p. 3" in a document, else ""."""
        if self.time is not None:
            return f"▶ {clock(self.time)}"
        return f"p. {self.page}" if self.page is not None else ""


def clock(seconds: float) -> str:
    """1:23, or 1:02:03 past an hour (whole seconds, as players show them)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def taken_text(taken: int) -> str:
    from .metadata import wall_clock_datetime

    return wall_clock_datetime(taken).strftime("%Y-%m-%d %H:%M:%S")


def load_query_image(path: str, max_pixels: int) -> PILImage:
    try:
        return load_image(path, max_pixels).image
    except ImageLoadError as exc:
        raise UmsearchError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise UmsearchError(f"{path}: no such file") from None


# ---- search with filters and query arithmetic -----------------------------------------------------
def combine(positives: list[tuple[np.ndarray, float]], negatives: list[tuple[np.ndarray, float]]) -> np.ndarray:
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
    vector: np.ndarray,
    limit: int,
    filters: Filters | None = None,
    *,
    min_score: float | None = None,
    sort: str = "score",
) -> list[Hit]:
    """The `limit` best matches that pass the filters (inside the vector scan), then ordered by
    score or by date taken (newest first)."""
    nearest = store.knn_vectors(vector, limit, filters)  # a video or PDF once, by its best frame or page
    if min_score is not None:
        nearest = [item for item in nearest if item[1] >= min_score]
    rows = store.files_by_id(file_id for file_id, _, _ in nearest)
    facts = store.facts_by_id(file_id for file_id, _, _ in nearest)
    positions = store.positions([vector_id for _, _, vector_id in nearest])
    found = [item for item in nearest if item[0] in rows]
    if sort == "date":
        found.sort(key=lambda item: -(facts[item[0]].taken or 0) if item[0] in facts else 0)
    hits: list[Hit] = []
    for file_id, score, vector_id in found:
        fact = facts.get(file_id)
        position = positions.get(vector_id)
        hits.append(
            Hit(
                len(hits) + 1,
                score,
                rows[file_id].path,
                file_id,
                fact.taken if fact else None,
                fact.camera if fact else None,
                fact.place if fact else None,
                kind=rows[file_id].kind,
                time=position.time if position else None,
                page=position.page if position else None,
            )
        )
    return hits
