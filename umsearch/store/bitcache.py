"""The sign bits of every vector as one numpy matrix, for the unfiltered coarse scan.

Why not sqlite-vec for this: its k-nearest search keeps the top k by repeated selection per chunk, so
its cost grows with N x k (100k photos: 8 ms at k=20 but 25 ms at k=200; 1M: ~110 ms at k=20), and a
shortlist of a few hundred is needed for recall@20 >= 0.99. A numpy Hamming scan over 64-bit words
costs the same for any k (argpartition). Filtered searches still use sqlite-vec, whose metadata columns
apply the filter inside its scan (there the shortlist is only drawn from matching photos).

The matrix is saved next to the index (`<index>.bits.npz`, ~200 bytes per photo) with the index's
vector generation, and rebuilt from the `embeddings.bits` column whenever the index has changed since.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .schema import FLOAT_TABLE

if TYPE_CHECKING:
    import apsw
    import numpy as np


@dataclass
class BitMatrix:
    generation: int
    ids: np.ndarray  # int64, one per photo
    words: np.ndarray  # uint64, shape (words per vector, photos): word-major, so each pass is contiguous

    def nearest_sorted(self, query_bits: bytes, count: int) -> np.ndarray:
        """Ids of the `count` photos with the fewest differing sign bits, nearest first."""
        import numpy as np

        distance = self._distances(query_bits)
        if count < len(distance):
            part = np.argpartition(distance, count)[:count]
            return self.ids[part[np.argsort(distance[part], kind="stable")]]
        return self.ids[np.argsort(distance, kind="stable")]

    def nearest(self, query_bits: bytes, count: int) -> np.ndarray:
        """Ids of the `count` photos with the fewest differing sign bits (unordered)."""
        import numpy as np

        total = len(self.ids)
        if count >= total:
            return self.ids
        return self.ids[np.argpartition(self._distances(query_bits), count)[:count]]

    def _distances(self, query_bits: bytes) -> np.ndarray:
        import numpy as np

        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.uint16)
        padded = np.zeros(self.words.shape[0] * 8, dtype=np.uint8)
        padded[: len(query_bits)] = np.frombuffer(query_bits, dtype=np.uint8)
        query = padded.view(np.uint64)
        total = len(self.ids)
        distance = np.zeros(total, dtype=np.uint16)
        scratch = np.empty(total, dtype=np.uint64)
        for w in range(self.words.shape[0]):
            np.bitwise_xor(self.words[w], query[w], out=scratch)
            distance += np.bitwise_count(scratch)
        return distance


def cache_path(db_path: Path) -> Path:
    return Path(f"{db_path}.bits.npz")


def load(db: apsw.Connection, db_path: Path, generation: int) -> BitMatrix:
    """The bit matrix of the index at `generation`: from the side file when current, else rebuilt and saved."""
    import numpy as np

    path = cache_path(db_path)
    try:
        with np.load(path) as saved:
            if int(saved["generation"]) == generation:
                return BitMatrix(generation, saved["ids"], saved["words"])
    except (OSError, KeyError, ValueError):
        pass  # missing, stale format or damaged: rebuild
    matrix = build(db, generation)
    _save(path, matrix)
    return matrix


def build(db: apsw.Connection, generation: int) -> BitMatrix:
    import numpy as np

    ids: list[int] = []
    chunks: list[bytes] = []
    for file_id, bits in db.execute(f"SELECT id, bits FROM {FLOAT_TABLE} ORDER BY id"):
        ids.append(file_id)
        chunks.append(bits)
    if not ids:
        return BitMatrix(generation, np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.uint64))
    width = len(chunks[0])
    padded = (width + 7) // 8 * 8  # whole 64-bit words; zero padding never differs
    raw = np.zeros((len(ids), padded), dtype=np.uint8)
    raw[:, :width] = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(len(ids), width)
    words = np.ascontiguousarray(raw.view(np.uint64).T)
    return BitMatrix(generation, np.asarray(ids, dtype=np.int64), words)


def _save(path: Path, matrix: BitMatrix) -> None:
    import numpy as np

    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp.npz", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, generation=np.int64(matrix.generation), ids=matrix.ids, words=matrix.words)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass  # a read-only folder: the matrix lives in memory for this process only
