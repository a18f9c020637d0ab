"""Near-duplicate photos: every pair above a cosine threshold, joined into groups (union-find).

Blocked matrix products over the stored vectors (numpy/BLAS), never a Python loop over pairs; each block
only meets the blocks after it, so each pair is scored once. Memory: all vectors as float32 (6 KB per
photo at 1536-d, so ~600 MB at 100k) plus one block's score matrix (at most 128 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .store import Store

if TYPE_CHECKING:
    import numpy as np

SCORES_PER_BLOCK = 1 << 25  # a block's score matrix holds at most this many floats (128 MB)


@dataclass(frozen=True)
class DuplicateGroup:
    paths: tuple[str, ...]  # best-connected first, then by path
    ids: tuple[int, ...]
    similarity: float  # the lowest similarity of a linking pair in the group

    def as_dict(self) -> dict:
        return {"paths": list(self.paths), "ids": list(self.ids), "min_similarity": round(self.similarity, 6)}


class _UnionFind:
    def __init__(self, size: int) -> None:
        import numpy as np

        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        parent = self.parent
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:  # path compression
            parent[item], item = root, parent[item]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def similar_pairs(matrix: np.ndarray, threshold: float, block: int | None = None):
    """(i, j, similarity) with i < j for all rows of unit-norm `matrix` at or above `threshold`, by blocks."""
    import numpy as np

    count = len(matrix)
    block = block or max(16, min(1024, SCORES_PER_BLOCK // max(1, count)))
    for start in range(0, count, block):
        stop = min(count, start + block)
        scores = matrix[start:stop] @ matrix[start:].T  # this block against itself and everything after it
        rows, cols = np.nonzero(scores >= threshold)
        keep = cols > rows  # upper triangle: i < j, each pair once, no self-pairs
        for r, c in zip(rows[keep].tolist(), cols[keep].tolist(), strict=True):
            yield start + r, start + c, float(scores[r, c])


def find_duplicates(store: Store, threshold: float = 0.95) -> list[DuplicateGroup]:
    import numpy as np

    count = store.vector_count()
    if count == 0:
        return []
    ids = np.empty(count, dtype=np.int64)
    matrix: np.ndarray | None = None
    filled = 0
    for block_ids, block in store.iter_vectors():  # filled in place: no second copy of all vectors
        block = block[: count - filled]
        if matrix is None:
            matrix = np.empty((count, block.shape[1]), dtype=np.float32)
        ids[filled : filled + len(block)] = block_ids[: len(block)]
        matrix[filled : filled + len(block)] = block
        filled += len(block)
    if matrix is None:
        return []  # emptied by another process since it was counted
    ids, matrix = ids[:filled], matrix[:filled]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms == 0, 1.0, norms)
    groups = _UnionFind(len(ids))
    weakest: dict[int, float] = {}
    linked: list[tuple[int, int, float]] = []
    for i, j, score in similar_pairs(matrix, threshold):
        groups.union(i, j)
        linked.append((i, j, score))
    members: dict[int, list[int]] = {}
    for i, _j, score in linked:
        root = groups.find(i)
        weakest[root] = min(weakest.get(root, 1.0), score)
        members.setdefault(root, [])
    for index in {i for pair in linked for i in pair[:2]}:
        members[groups.find(index)].append(index)
    rows = store.files_by_id(int(ids[i]) for group in members.values() for i in group)
    result = []
    for root, indexes in members.items():
        found = sorted((rows[int(ids[i])].path, int(ids[i])) for i in indexes if int(ids[i]) in rows)
        if len(found) > 1:
            result.append(DuplicateGroup(tuple(p for p, _ in found), tuple(i for _, i in found), weakest[root]))
    result.sort(key=lambda g: (-len(g.paths), g.paths[0]))
    return result
