"""Vectors: stored as float32 (exact) plus sign bits (a coarse scan), searched in two steps.

The coarse step ranks photos by Hamming distance between sign bits — over a numpy bit matrix (bitcache)
for unfiltered searches, inside sqlite-vec's scan (filter columns on the bit table) for selective
filters — and keeps a shortlist that is then rescored exactly with the float vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .base import StoreBase
from .filtersql import FILTER_COLUMNS, Labels, filter_sql
from .schema import BIT_TABLE, FLOAT_TABLE, chunks, sign_bits
from .segments import (
    SEGMENT_BASE,
    SEGMENTS_TABLE,
    Position,
    Segment,
    best_per_file,
    file_id_of,
    segment_vector_ids,
    vector_id,
)
from .sql import scalar

if TYPE_CHECKING:
    import numpy as np

    from ..filters import Filters
    from .bitcache import BitMatrix

# The coarse scan keeps this many candidates (at least 4 x the page), which are then rescored exactly.
# Chosen with benchmarks/search_scale.py: recall@20 >= 0.99 on clustered 1536-d vectors (see BENCHMARKS.md).
RESCORE_SHORTLIST = 400
VEC0_MAX_K = 4096
FILTER_WIDENING = 10  # a filter passing >= ~1/10 of the nearest photos is applied to a numpy shortlist


class VectorTable(StoreBase):
    """Each photo's float32 vector and sign bits, and the two-step k-nearest search over them."""

    # ---- vectors -------------------------------------------------------------------------------
    def _insert_vector(self, file_id: int, vector: np.ndarray) -> None:
        self._insert_vectors(file_id, [Segment(vector)])

    def _insert_vectors(self, file_id: int, segments: Sequence[Segment]) -> None:
        """A file's vectors: one for a photo; a video's frames or a PDF's pages, with where each comes from."""
        if not self.has_vectors_table():
            raise StoreError(f"index {self.path} has no vector table yet (no model bound)")
        codes = self._filter_codes(file_id) or (0,) * len(FILTER_COLUMNS)
        several = len(segments) > 1 or any(s.time is not None or s.page is not None for s in segments)
        for position, segment in enumerate(segments):
            vid = vector_id(file_id, position)
            blob = _blob(segment.vector)
            bits = sign_bits(blob)
            self.db.execute(f"INSERT INTO {FLOAT_TABLE} (id, vector, bits) VALUES (?, ?, ?)", (vid, blob, bits))
            self.db.execute(
                f"INSERT INTO {BIT_TABLE} (rowid, embedding, {', '.join(FILTER_COLUMNS)}) "
                f"VALUES (?, vec_bit(?), {', '.join('?' * len(FILTER_COLUMNS))})",
                (vid, bits, *codes),
            )
            if several:
                self.db.execute(
                    f"INSERT INTO {SEGMENTS_TABLE} (vector_id, file_id, position, time, page) VALUES (?, ?, ?, ?, ?)",
                    (vid, file_id, position, segment.time, segment.page),
                )
        self._vectors_changed()

    def _vectors_changed(self) -> None:
        """Bump the generation that tells a saved bit matrix (bitcache) it is out of date."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('vectors_generation', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1"
        )

    def vectors_generation(self) -> int:
        return int(self.meta("vectors_generation") or 0)

    def _delete_vectors(self, file_ids: Sequence[int]) -> None:
        """All vectors of these files (a video's every frame) and where they came from."""
        # vec0 has no INSERT OR REPLACE: a replaced vector is deleted first.
        ids = [*file_ids, *segment_vector_ids(self.db, file_ids)]
        changed = False
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            self.db.execute(f"DELETE FROM {FLOAT_TABLE} WHERE id IN ({marks})", list(chunk))
            changed = changed or bool(self.db.changes())
            if self.has_vectors_table():
                self.db.execute(f"DELETE FROM {BIT_TABLE} WHERE rowid IN ({marks})", list(chunk))
        for chunk in chunks(list(file_ids), 500):
            self.db.execute(f"DELETE FROM {SEGMENTS_TABLE} WHERE file_id IN ({','.join('?' * len(chunk))})", chunk)
        if changed:
            self._vectors_changed()

    def vector(self, file_id: int) -> np.ndarray:
        import numpy as np

        row = self.db.execute(f"SELECT vector FROM {FLOAT_TABLE} WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise StoreError(f"no vector stored for file id {file_id}")
        return np.frombuffer(row[0], dtype=np.float32).copy()

    def vector_count(self) -> int:
        return int(scalar(self.db, f"SELECT count(*) FROM {FLOAT_TABLE}"))

    def segments(self, file_id: int) -> list[Segment]:
        """A video's frames or a PDF's pages with their vectors, in order; [] for a photo (one vector)."""
        import numpy as np

        rows: list[Any] = self.db.execute(
            f"SELECT e.vector, s.time, s.page FROM {SEGMENTS_TABLE} s JOIN {FLOAT_TABLE} e ON e.id = s.vector_id "
            "WHERE s.file_id = ? ORDER BY s.position",
            (file_id,),
        ).fetchall()
        return [Segment(np.frombuffer(blob, dtype=np.float32).copy(), time, page) for blob, time, page in rows]

    def positions(self, vector_ids: Sequence[int]) -> dict[int, Position]:
        """Where each of these vectors lies in its file (frame time, page); photos' vectors are left out."""
        found: dict[int, Position] = {}
        for chunk in chunks(list(vector_ids), 500):
            marks = ",".join("?" * len(chunk))
            for vid, time, page in self.db.execute(
                f"SELECT vector_id, time, page FROM {SEGMENTS_TABLE} WHERE vector_id IN ({marks})", chunk
            ):
                found[vid] = Position(time, page)
        return found

    def best_positions(self, vector: np.ndarray, file_ids: Sequence[int]) -> dict[int, Position]:
        """For each multi-vector file, the frame or page nearest to `vector` (a query's), for showing a hit."""
        import numpy as np

        best: dict[int, tuple[float, Position]] = {}
        query = np.asarray(vector, dtype=np.float32)
        for chunk in chunks(list(file_ids), 200):
            marks = ",".join("?" * len(chunk))
            for file_id, blob, time, page in self.db.execute(
                f"SELECT s.file_id, e.vector, s.time, s.page FROM {SEGMENTS_TABLE} s "
                f"JOIN {FLOAT_TABLE} e ON e.id = s.vector_id WHERE s.file_id IN ({marks})",
                chunk,
            ):
                row = np.frombuffer(blob, dtype=np.float32)
                score = float(row @ query) / (float(np.sqrt(row @ row)) or 1.0)
                if file_id not in best or score > best[file_id][0]:
                    best[file_id] = (score, Position(time, page))
        return {file_id: position for file_id, (_, position) in best.items()}

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each file's own vector (a video's first frame, a PDF's first page) in blocks of (file ids, float32
        matrix), in id order (for whole-index maths like near-duplicates)."""
        import numpy as np

        last = -1
        while True:
            rows: list[Any] = self.db.execute(
                f"SELECT id, vector FROM {FLOAT_TABLE} WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
                (last, SEGMENT_BASE, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            yield ids, matrix
            last = int(ids[-1])

    def _filter_codes(self, file_id: int) -> tuple[int, ...] | None:
        row = self.db.execute(
            "SELECT taken, folder, ext, camera, place, kind FROM files WHERE id = ?", (file_id,)
        ).fetchone()
        if row is None:
            return None
        labels = Labels(self.db)
        return (
            row[0] or 0,
            labels.code("folder", row[1]),
            labels.code("ext", row[2]),
            labels.code("camera", row[3]),
            labels.code("place", row[4]),
            labels.code("kind", row[5]),
        )

    def _sync_filter_columns(self, file_id: int) -> None:
        if not self.has_vectors_table():
            return
        codes = self._filter_codes(file_id)
        if codes is None:
            return
        sets = ", ".join(f"{name} = ?" for name in FILTER_COLUMNS)
        for vid in [file_id, *segment_vector_ids(self.db, [file_id])]:
            self.db.execute(f"UPDATE {BIT_TABLE} SET {sets} WHERE rowid = ?", (*codes, vid))

    def knn(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k nearest files by cosine similarity, best first, as (file id, similarity).

        Two steps: sqlite-vec scans the sign bits (Hamming distance), with the filters applied inside that
        scan, and keeps a shortlist; the shortlist is then rescored exactly with the float vectors. A video
        or a PDF ranks once, by its best frame or page (`knn_vectors` says which).
        """
        return [(file_id, score) for file_id, score, _ in self.knn_vectors(vector, k, filters)]

    def knn_vectors(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float, int]]:
        """`knn` with the vector that matched: (file id, similarity, vector id), best first."""
        import numpy as np

        if not self.has_vectors_table() or k <= 0:
            return []
        excluded = filters.exclude_ids if filters else frozenset()
        where, params, file_where, file_params = filter_sql(self.db, filters)
        if where is None:
            return []
        shortlist = min(VEC0_MAX_K, max(RESCORE_SHORTLIST, 4 * k) + len(excluded))
        query = np.ascontiguousarray(vector, dtype=np.float32)
        query_bits = sign_bits(query)
        if not where:
            candidates = self._bit_matrix().nearest(query_bits, shortlist).tolist()
        else:
            candidates = self._filtered_shortlist(query_bits, shortlist, file_where, file_params)
            if candidates is None:  # a selective filter: sqlite-vec scans only the matching photos
                candidates = [
                    r[0]
                    for r in self.db.execute(
                        f"SELECT rowid FROM {BIT_TABLE} WHERE embedding MATCH vec_bit(?) AND k = ?{where}",
                        (query_bits, shortlist, *params),
                    )
                ]
        ids = [vid for vid in candidates if file_id_of(vid) not in excluded]
        if not ids:
            return []
        found_ids, matrix = self._vectors_for(ids)
        # einsum, not BLAS: for a few hundred rows BLAS's thread start-up costs more than the sums.
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix)) * (float(np.sqrt(query @ query)) or 1.0)
        scores = np.einsum("ij,j->i", matrix, query) / np.where(norms == 0, 1.0, norms)
        return best_per_file(found_ids.tolist(), scores.tolist(), k)

    def _filtered_shortlist(self, query_bits: bytes, shortlist: int, where: str, params: list) -> list[int] | None:
        """For a broad filter: the `shortlist` Hamming-nearest photos that pass it, taken from a 10x wider
        unfiltered shortlist (the same set sqlite-vec would return, without its N x k cost). None when too
        few pass, i.e. the filter is selective; sqlite-vec then finds them quickly."""
        bits = self._bit_matrix()
        wide = bits.nearest_sorted(query_bits, shortlist * FILTER_WIDENING).tolist()
        passing: set[int] = set()
        for start, chunk in enumerate(chunks(wide, 900)):
            files = sorted({file_id_of(vid) for vid in chunk})  # a video's frames pass or fail together
            marks = ",".join("?" * len(files))
            passing.update(
                r[0] for r in self.db.execute(f"SELECT id FROM files WHERE id IN ({marks}){where}", (*files, *params))
            )
            passed = sum(1 for vid in chunk if file_id_of(vid) in passing)
            if start == 0 and passed * len(wide) < shortlist * len(chunk) and len(wide) < len(bits.ids):
                return None  # the pass rate of the nearest 900 says the wide list will not hold enough
        kept = [vid for vid in wide if file_id_of(vid) in passing][:shortlist]
        return kept if len(kept) >= shortlist or len(wide) >= len(bits.ids) else None

    def _bit_matrix(self) -> BitMatrix:
        from . import bitcache

        with self.read_snapshot():
            generation = self.vectors_generation()
            cached = getattr(self, "_bits", None)
            if cached is None or cached.generation != generation:
                self._bits = bitcache.load(self.db, self.path, generation)
        return self._bits

    def _vectors_for(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        rows: list = []
        for chunk in chunks(list(ids), 900):
            marks = ",".join("?" * len(chunk))
            rows.extend(self.db.execute(f"SELECT id, vector FROM {FLOAT_TABLE} WHERE id IN ({marks})", chunk))
        found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return found, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)


def _blob(vector: np.ndarray) -> bytes:
    import numpy as np

    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
