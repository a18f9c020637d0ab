"""Vectors: stored as float32 (exact) plus SimHash sign bits (a coarse scan), searched in two steps.

The coarse step ranks vectors by Hamming distance between sign bits over a numpy bit matrix (bitcache),
with the filters applied as a mask over the codes kept beside it, and re-ranks the nearest few thousand
by the query's projections against their bits (simhash); that shortlist is then rescored exactly with
the float vectors. A video or a PDF has one vector per frame or page (segments.py) and ranks once, by its
best one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from ..settings import rescore_shortlist
from .base import StoreBase
from .filtersql import filter_plan
from .schema import FLOAT_TABLE, bump_generation, chunks, rebuild_bits, set_matrix_floor, sign_bits, write_filter_codes
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

# The coarse scan keeps this many candidates at 100k photos (at least 4 x the page), which are then rescored
# exactly; they are the best by the bits-and-projections estimate among the WIDENING x as many nearest by
# Hamming distance. Larger libraries hold more near-equal candidates around a query, so the shortlist grows
# with N^0.3 (800 at 1M). Chosen with benchmarks/search_scale.py: recall@20 >= 0.99 (worst query >= 0.9) on
# clustered and on anisotropic (LLM-like) 1536-d vectors at 100k and 1M photos (see BENCHMARKS.md).
RESCORE_SHORTLIST = rescore_shortlist()  # 400 unless UMSEARCH_SHORTLIST says otherwise
WIDENING = 10
# A selective filter (bitcache.SELECTIVE) spares most of the bit scan; the time saved goes to comparing up to
# this many of the photos that pass exactly. Among a few thousand photos the best matches of a query are
# often weak and nearly equal (cosines ~0.1 apart by 0.01), which only exact scores can order.
SELECTIVE_RESCORE = 2000
DELETION_LOG = 100_000  # deleted ids remembered for patching saved bit matrices


class VectorTable(StoreBase):
    """Each photo's float32 vector and sign bits, and the two-step k-nearest search over them."""

    # ---- vectors -------------------------------------------------------------------------------
    def _insert_vector(self, file_id: int, vector: np.ndarray) -> None:
        self._insert_vectors(file_id, [Segment(vector)])

    def _insert_vectors(self, file_id: int, segments: Sequence[Segment]) -> None:
        """A file's vectors: one for a photo; a video's frames or a PDF's pages, with where each comes from."""
        if not self.has_vectors_table():
            raise StoreError(f"index {self.path} has no vector table yet (no model bound)")
        several = len(segments) > 1 or any(s.time is not None or s.page is not None for s in segments)
        for position, segment in enumerate(segments):
            vid = vector_id(file_id, position)
            blob = _blob(segment.vector)
            self.db.execute(
                f"INSERT INTO {FLOAT_TABLE} (id, vector, bits) VALUES (?, ?, ?)", (vid, blob, sign_bits(blob))
            )
            if several:
                self.db.execute(
                    f"INSERT INTO {SEGMENTS_TABLE} (vector_id, file_id, position, time, page) VALUES (?, ?, ?, ?, ?)",
                    (vid, file_id, position, segment.time, segment.page),
                )
        self._facts_changed(file_id)

    def _vectors_changed(self) -> int:
        """Bump the generation that tells a saved bit matrix (bitcache) it is out of date; the new one."""
        return bump_generation(self.db)

    def vectors_generation(self) -> int:
        return int(self.meta("vectors_generation") or 0)

    def _delete_vectors(self, file_ids: Sequence[int]) -> None:
        """All vectors of these files (a video's every frame) and where they came from."""
        ids = [*file_ids, *segment_vector_ids(self.db, file_ids)]
        gone: list[int] = []
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            gone.extend(r[0] for r in self.db.execute(f"SELECT id FROM {FLOAT_TABLE} WHERE id IN ({marks})", chunk))
            self.db.execute(f"DELETE FROM {FLOAT_TABLE} WHERE id IN ({marks})", list(chunk))
        for chunk in chunks(list(file_ids), 500):
            self.db.execute(f"DELETE FROM {SEGMENTS_TABLE} WHERE file_id IN ({','.join('?' * len(chunk))})", chunk)
        if not gone:
            return
        generation = self._vectors_changed()
        # The log lets a saved bit matrix drop these rows; past DELETION_LOG rows it is cleared, and saved
        # matrices older than that are rebuilt instead.
        self.db.executemany(
            "INSERT INTO vector_deletions (id, generation) VALUES (?, ?)", ((i, generation) for i in gone)
        )
        span = scalar(self.db, "SELECT max(rowid) - min(rowid) FROM vector_deletions")
        if span is not None and span >= DELETION_LOG:
            self.db.execute("DELETE FROM vector_deletions")
            set_matrix_floor(self.db, generation)

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

    def _facts_changed(self, file_id: int) -> None:
        """A file's vectors or filterable facts changed: its filter codes are written next to its bits (each of
        its vectors'), marked with a new generation (a saved bit matrix patches in the rows changed since its own)."""
        write_filter_codes(self.db, file_id, self._vectors_changed())

    def knn(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k nearest files by cosine similarity, best first, as (file id, similarity).

        Two steps: the SimHash bits of the vectors that pass the filters give a shortlist (bitcache), which
        is then rescored exactly with the float vectors. A video or a PDF ranks once, by its best frame or
        page (`knn_vectors` says which).
        """
        return [(file_id, score) for file_id, score, _ in self.knn_vectors(vector, k, filters)]

    def knn_vectors(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float, int]]:
        """`knn` with the vector that matched: (file id, similarity, vector id), best first."""
        import numpy as np

        from . import bitcache, simhash

        if not self.has_vectors_table() or k <= 0:
            return []
        plan = filter_plan(self.db, filters)
        if plan is None:
            return []
        excluded = filters.exclude_ids if filters else frozenset()
        query = np.ascontiguousarray(vector, dtype=np.float32)
        matrix = self._bit_matrix()
        passing = plan.mask(matrix)
        count = max(shortlist_size(len(matrix)), 4 * k)
        if passing is not None:
            passed = int(np.count_nonzero(passing))
            if passed < bitcache.SELECTIVE * len(matrix):
                count = max(count, min(passed, SELECTIVE_RESCORE))
        shortlist = count + len(excluded)
        candidates = matrix.shortlist(simhash.project(query), passing, shortlist, shortlist * WIDENING)
        ids = [vid for vid in candidates.tolist() if file_id_of(vid) not in excluded]
        if not ids:
            return []
        found_ids, floats = self._vectors_for(ids)
        # einsum, not BLAS: for a few hundred rows BLAS's thread start-up costs more than the sums.
        norms = np.sqrt(np.einsum("ij,ij->i", floats, floats)) * (float(np.sqrt(query @ query)) or 1.0)
        scores = np.einsum("ij,j->i", floats, query) / np.where(norms == 0, 1.0, norms)
        return best_per_file(found_ids.tolist(), scores.tolist(), k)

    def _bit_matrix(self) -> BitMatrix:
        from . import bitcache, simhash

        dim = int(self.meta("dim") or 0)
        if dim and self.meta("bits") != simhash.fingerprint(dim):  # bits from another transform: remake them
            with self.transaction():
                rebuild_bits(self.db, dim)
        with self.read_snapshot():
            generation = self.vectors_generation()
            cached = getattr(self, "_bits", None)
            if cached is None or cached.generation != generation:
                floor = int(self.meta("matrix_floor") or 0)
                self._bits = bitcache.load(self.db, self.path, generation, floor, cached)
        return self._bits

    def _vectors_for(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        rows: list = []
        for chunk in chunks(list(ids), 900):
            marks = ",".join("?" * len(chunk))
            rows.extend(self.db.execute(f"SELECT id, vector FROM {FLOAT_TABLE} WHERE id IN ({marks})", chunk))
        found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return found, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)


def shortlist_size(photos: int) -> int:
    """How many photos a search rescores exactly in an index of `photos` (RESCORE_SHORTLIST at 100k or fewer)."""
    return round(RESCORE_SHORTLIST * max(1.0, photos / 100_000) ** 0.3)


def _blob(vector: np.ndarray) -> bytes:
    import numpy as np

    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
