"""Does the fast search find what an exact scan finds, on this index's own photos? (`umsearch doctor --search`)

The fast search ranks by sign bits before it rescores a shortlist exactly; how well that works depends on
how the vectors are spread. This samples stored photos as queries ("more like this", the photo itself left
out), runs the real search and an exact scan of every stored vector, and reports recall@k: the share of
the exact top k that the fast search returned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .store import Store

GOOD_MEAN, GOOD_WORST = 0.99, 0.9  # the targets the benchmarks hold the search to (BENCHMARKS.md)


@dataclass(frozen=True)
class RecallReport:
    photos: int
    queries: int
    k: int
    mean: float
    worst: float
    mean_cosine: float  # between the sampled photos: near 1 when all vectors crowd into one direction
    seconds: float

    @property
    def healthy(self) -> bool:
        return self.mean >= GOOD_MEAN and self.worst >= GOOD_WORST


def check_recall(store: Store, samples: int = 50, k: int = 20, seed: int = 0) -> RecallReport | None:
    """Recall@k of `store.knn` against an exact scan, with `samples` stored photos as queries; None when the
    index has too few photos to say anything (k + 1)."""
    import numpy as np

    from .filters import Filters

    started = time.perf_counter()
    from .store import FLOAT_TABLE
    from .store.segments import SEGMENT_BASE

    # Each file's own vector (a video's first frame) as a query; the search ranks files by their best vector.
    rows = store.db.execute(f"SELECT id FROM {FLOAT_TABLE} WHERE id < ?", (SEGMENT_BASE,))
    ids = np.asarray([file_id for (file_id,) in rows], dtype=np.int64)
    if len(ids) <= k:
        return None
    chosen = np.sort(np.random.default_rng(seed).choice(ids, min(samples, len(ids)), replace=False))
    queries = np.stack([store.vector(int(file_id)) for file_id in chosen])
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    exact = _exact_top(store, queries, chosen, k)
    recalls = []
    for file_id, query, truth in zip(chosen.tolist(), queries, exact, strict=True):
        found = {hit for hit, _ in store.knn(query, k, Filters(exclude_ids=frozenset({file_id})))}
        recalls.append(len(found & truth) / k)
    cosines = (queries @ queries.T)[np.triu_indices(len(queries), 1)]
    return RecallReport(
        photos=len(ids),
        queries=len(chosen),
        k=k,
        mean=float(np.mean(recalls)),
        worst=float(np.min(recalls)),
        mean_cosine=float(cosines.mean()) if len(cosines) else 1.0,
        seconds=time.perf_counter() - started,
    )


def _exact_top(store: Store, queries: np.ndarray, own: np.ndarray, k: int) -> list[set[int]]:
    """Each query's k most similar stored files by cosine (a video or a PDF by its best frame or page), itself
    left out, in one pass over all vectors."""
    import numpy as np

    from .store.segments import file_ids_of

    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for ids, block in _all_vectors(store):
        files = file_ids_of(ids)
        norms = np.linalg.norm(block, axis=1)
        scores = (queries @ block.T) / np.where(norms == 0, 1.0, norms)
        scores[files[None, :] == own[:, None]] = -np.inf
        best_ids = np.concatenate([best_ids, np.broadcast_to(files, scores.shape)], axis=1)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        if best_scores.shape[1] > k:
            kept = [
                _best_files(row_ids, row_scores, k) for row_ids, row_scores in zip(best_ids, best_scores, strict=True)
            ]
            width = min(len(keep) for keep in kept)
            best_ids = np.stack([row_ids[keep[:width]] for row_ids, keep in zip(best_ids, kept, strict=True)])
            best_scores = np.stack([row[keep[:width]] for row, keep in zip(best_scores, kept, strict=True)])
    return [set(row.tolist()) for row in best_ids]


def _best_files(files: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best distinct files, each at its best score."""
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    _, first = np.unique(files[order], return_index=True)
    return order[np.sort(first)[:k]]


def _all_vectors(store: Store, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every stored vector (a video's every frame) in blocks of (vector ids, float32 matrix)."""
    import numpy as np

    from .store import FLOAT_TABLE

    last = -1
    while True:
        rows: list[Any] = store.db.execute(
            f"SELECT id, vector FROM {FLOAT_TABLE} WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
        ).fetchall()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        last = int(ids[-1])
