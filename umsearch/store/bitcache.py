"""The coarse scan's data in memory: every photo's SimHash bits as one numpy matrix, with its filter codes
(date taken, folder, type, camera, place, kind, hemisphere) beside it, so that filters cost a mask, not a query.

Why numpy and not sqlite-vec's scan: its k-nearest search keeps the top k by repeated selection per chunk,
so its cost grows with N x k (100k photos: 8 ms at k=20 but 25 ms at k=200; 1M: ~110 ms at k=20), and a
filtered scan at 1M took 120-240 ms. A Hamming scan over 64-bit words costs the same for any k
(argpartition), and a filter is a boolean mask over integer arrays (a few ms at 1M): a selective filter
scans only the photos that pass, a broad one masks the full scan.

The matrix is saved next to the index (`<index>.bits.npz`, ~220 bytes per photo) with the index's search
generation. When the index has changed since, the rows changed after that generation (`embeddings.changed`)
and the deleted ones (`vector_deletions`) are patched in; it is rebuilt from `embeddings` only when it is
older than the index's `matrix_floor` (all bits remade, or the deletion log cleared).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .schema import FILTER_CODE_COLUMNS, FLOAT_TABLE
from .sql import scalar

if TYPE_CHECKING:
    import apsw
    import numpy as np

FORMAT = 3  # of the side file: an older one is rebuilt (3: the kind code)
CODE_COLUMNS = FILTER_CODE_COLUMNS
SELECTIVE = 0.25  # a filter passing fewer than this share of photos: only those are scanned, else all are


@dataclass
class BitMatrix:
    generation: int
    ids: np.ndarray  # int64 vector ids, one per photo (a video or a PDF: one per frame or page)
    words: np.ndarray  # uint64, shape (words per vector, photos): word-major, so each pass is contiguous
    taken: np.ndarray  # int64 wall-clock seconds (0: unknown)
    folder: np.ndarray  # int32 label codes (0: none), like the labels table's ids
    ext: np.ndarray
    camera: np.ndarray
    place: np.ndarray
    kind: np.ndarray
    hemisphere: np.ndarray  # int8: schema.NORTH, SOUTH or NOWHERE

    def __len__(self) -> int:
        return len(self.ids)

    def shortlist(self, projected: np.ndarray, passing: np.ndarray | None, count: int, wide: int) -> np.ndarray:
        """Ids of about `count` photos nearest to the query (given as its SimHash projections) among those
        that pass (`passing`: a boolean mask, None for all): the `wide` fewest differing bits, re-ranked by
        the query's projections against their bits."""
        import numpy as np

        from . import simhash

        rows = None if passing is None else np.flatnonzero(passing)
        if rows is not None and len(rows) < SELECTIVE * len(self):
            distance = self._distances(simhash.pack(projected), rows)  # a selective filter: those photos only
        else:
            distance = self._distances(simhash.pack(projected))
            if passing is not None:
                distance[~passing] = np.iinfo(distance.dtype).max
            rows = None
        nearest = np.argpartition(distance, wide)[:wide] if wide < len(distance) else np.arange(len(distance))
        if rows is None and passing is not None:
            nearest = nearest[passing[nearest]]
        positions = nearest if rows is None else rows[nearest]
        if count < len(positions):
            estimate = simhash.estimate(simhash.byte_tables(projected), self._bytes(positions))
            positions = positions[np.argpartition(-estimate, count)[:count]]
        return self.ids[positions]

    def _distances(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Differing bits per photo (or per photo at `rows`), as uint16."""
        import numpy as np

        total = len(self) if rows is None else len(rows)
        distance = np.zeros(total, dtype=np.uint16)
        if total == 0:
            return distance
        padded = np.zeros(self.words.shape[0] * 8, dtype=np.uint8)
        padded[: len(query)] = query
        query_words = padded.view(np.uint64)
        scratch = np.empty(total, dtype=np.uint64)
        for w in range(self.words.shape[0]):
            word = self.words[w] if rows is None else self.words[w].take(rows)
            np.bitwise_xor(word, query_words[w], out=scratch)
            distance += np.bitwise_count(scratch)
        return distance

    def _bytes(self, positions: np.ndarray) -> np.ndarray:
        """The packed bits of the photos at `positions`, one row each (uint8)."""
        import numpy as np

        return np.ascontiguousarray(self.words[:, positions].T).view(np.uint8)


def cache_path(db_path: Path) -> Path:
    return Path(f"{db_path}.bits.npz")


def load(
    db: apsw.Connection, db_path: Path, generation: int, floor: int = 0, cached: BitMatrix | None = None
) -> BitMatrix:
    """The bit matrix of the index at `generation`: `cached` (this process's) or the side file's, patched
    with what changed since when it is not older than `floor`, else rebuilt; saved for other processes."""
    import numpy as np

    path = cache_path(db_path)
    if cached is None or cached.generation < floor or cached.generation > generation:
        cached = None
        try:
            with np.load(path) as saved:
                if int(saved["format"]) == FORMAT and floor <= int(saved["generation"]) <= generation:
                    cached = BitMatrix(
                        int(saved["generation"]), saved["ids"], saved["words"], *(saved[c] for c in CODE_COLUMNS)
                    )
        except (OSError, KeyError, ValueError):
            pass  # missing, stale format or damaged: rebuild
    if cached is not None and cached.generation == generation:
        return cached
    matrix = _patched(db, cached, generation) if cached is not None else build(db, generation)
    _save(path, matrix)
    return matrix


_ROW_COLUMNS = f"id, bits, {', '.join(CODE_COLUMNS)}"


def build(db: apsw.Connection, generation: int, batch: int = 50_000) -> BitMatrix:
    """Every photo's bits and filter codes from `embeddings`, read in batches into preallocated arrays (at
    1M photos a list of all rows would hold ~0.5 GB)."""

    count = int(scalar(db, f"SELECT count(*) FROM {FLOAT_TABLE}"))
    parts: list[BitMatrix] = []
    done, last = 0, -1
    while done < count:
        rows: list[Any] = db.execute(
            f"SELECT {_ROW_COLUMNS} FROM {FLOAT_TABLE} WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
        ).fetchall()
        if not rows:
            break
        parts.append(_from_rows(rows, generation))
        done, last = done + len(rows), rows[-1][0]
    return _joined(parts, generation) if parts else _from_rows([], generation)


def _patched(db: apsw.Connection, old: BitMatrix, generation: int) -> BitMatrix:
    """`old` with the rows deleted or changed since its generation dropped and the changed ones added."""
    import numpy as np

    since = old.generation
    changed = db.execute(f"SELECT {_ROW_COLUMNS} FROM {FLOAT_TABLE} WHERE changed > ?", (since,)).fetchall()
    gone = [r[0] for r in db.execute("SELECT id FROM vector_deletions WHERE generation > ?", (since,))]
    drop = np.isin(old.ids, np.asarray(gone + [r[0] for r in changed], dtype=np.int64))
    kept = BitMatrix(
        generation,
        old.ids[~drop],
        old.words[:, ~drop] if drop.any() else old.words,
        *(getattr(old, c)[~drop] for c in CODE_COLUMNS),
    )
    return _joined([kept, _from_rows(changed, generation)], generation) if changed else kept


def _from_rows(rows: list, generation: int) -> BitMatrix:
    import numpy as np

    count = len(rows)
    width = len(rows[0][1]) if rows else 0
    raw = np.zeros((count, (width + 7) // 8 * 8), dtype=np.uint8)  # whole 64-bit words; padding never differs
    if count:
        raw[:, :width] = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(count, width)
    codes = [np.fromiter((r[2 + i] for r in rows), dtype=dtype, count=count) for i, dtype in enumerate(_DTYPES)]
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=count)
    return BitMatrix(generation, ids, np.ascontiguousarray(raw.view(np.uint64).T), *codes)


def _joined(parts: list[BitMatrix], generation: int) -> BitMatrix:
    import numpy as np

    parts = [p for p in parts if len(p)] or parts[:1]
    words = parts[0].words if len(parts) == 1 else np.concatenate([p.words for p in parts], axis=1)
    return BitMatrix(
        generation,
        np.concatenate([p.ids for p in parts]),
        np.ascontiguousarray(words),
        *(np.concatenate([getattr(p, c) for p in parts]) for c in CODE_COLUMNS),
    )


_DTYPES = ("int64", "int32", "int32", "int32", "int32", "int32", "int8")


def _save(path: Path, matrix: BitMatrix) -> None:
    import numpy as np

    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp.npz", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            codes = {c: getattr(matrix, c) for c in CODE_COLUMNS}
            np.savez(
                fh,
                format=np.int64(FORMAT),
                generation=np.int64(matrix.generation),
                ids=matrix.ids,
                words=matrix.words,
                **codes,
            )
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass  # a read-only folder: the matrix lives in memory for this process only
