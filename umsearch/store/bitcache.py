"""The coarse scan's data in memory: every photo's SimHash bits as one numpy matrix, with its filter codes
(date taken, folder, type, camera, place, hemisphere) beside it, so that filters cost a mask, not a query.

Why numpy and not sqlite-vec's scan: its k-nearest search keeps the top k by repeated selection per chunk,
so its cost grows with N x k (100k photos: 8 ms at k=20 but 25 ms at k=200; 1M: ~110 ms at k=20), and a
filtered scan at 1M took 120-240 ms. A Hamming scan over 64-bit words costs the same for any k
(argpartition), and a filter is a boolean mask over integer arrays (a few ms at 1M): a selective filter
scans only the photos that pass, a broad one masks the full scan.

The matrix is saved next to the index (`<index>.bits.npz`, ~220 bytes per photo) with the index's search
generation, and rebuilt from the `embeddings.bits` column and the files table whenever the vectors or the
filterable facts have changed since.
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

FORMAT = 2  # of the side file: an older one is rebuilt
NORTH, SOUTH, NOWHERE = 1, -1, 0  # `hemisphere` codes: from the photo's latitude, or none known
CODE_COLUMNS = ("taken", "folder", "ext", "camera", "place", "hemisphere")
SELECTIVE = 0.25  # a filter passing fewer than this share of photos: only those are scanned, else all are


@dataclass
class BitMatrix:
    generation: int
    ids: "np.ndarray"  # int64, one per photo
    words: "np.ndarray"  # uint64, shape (words per vector, photos): word-major, so each pass is contiguous
    taken: "np.ndarray"  # int64 wall-clock seconds (0: unknown)
    folder: "np.ndarray"  # int32 label codes (0: none), like the labels table's ids
    ext: "np.ndarray"
    camera: "np.ndarray"
    place: "np.ndarray"
    hemisphere: "np.ndarray"  # int8: NORTH, SOUTH or NOWHERE

    def __len__(self) -> int:
        return len(self.ids)

    def shortlist(self, projected: "np.ndarray", passing: "np.ndarray | None", count: int, wide: int) -> "np.ndarray":
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
            if rows is not None:
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

    def _distances(self, query: "np.ndarray", rows: "np.ndarray | None" = None) -> "np.ndarray":
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

    def _bytes(self, positions: "np.ndarray") -> "np.ndarray":
        """The packed bits of the photos at `positions`, one row each (uint8)."""
        import numpy as np

        return np.ascontiguousarray(self.words[:, positions].T).view(np.uint8)


def cache_path(db_path: Path) -> Path:
    return Path(f"{db_path}.bits.npz")


def load(db: "apsw.Connection", db_path: Path, generation: int) -> BitMatrix:
    """The bit matrix of the index at `generation`: from the side file when current, else rebuilt and saved."""
    import numpy as np

    path = cache_path(db_path)
    try:
        with np.load(path) as saved:
            if int(saved["format"]) == FORMAT and int(saved["generation"]) == generation:
                return BitMatrix(generation, saved["ids"], saved["words"], *(saved[c] for c in CODE_COLUMNS))
    except (OSError, KeyError, ValueError):
        pass  # missing, stale format or damaged: rebuild
    matrix = build(db, generation)
    _save(path, matrix)
    return matrix


def build(db: "apsw.Connection", generation: int) -> BitMatrix:
    """From the index: each photo's bits, and its filter codes (label ids, as the filters resolve them)."""
    import numpy as np

    rows = db.execute(
        f"""
        SELECT e.id, e.bits, f.taken, lf.id, le.id, lc.id, lp.id, f.latitude
        FROM {FLOAT_TABLE} e JOIN files f ON f.id = e.id
        LEFT JOIN labels lf ON lf.kind = 'folder' AND lf.text = f.folder
        LEFT JOIN labels le ON le.kind = 'ext' AND le.text = f.ext
        LEFT JOIN labels lc ON lc.kind = 'camera' AND lc.text = f.camera
        LEFT JOIN labels lp ON lp.kind = 'place' AND lp.text = f.place
        ORDER BY e.id
        """
    ).fetchall()
    count = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=count)
    width = len(rows[0][1]) if rows else 0
    padded = (width + 7) // 8 * 8  # whole 64-bit words; zero padding never differs
    raw = np.zeros((count, padded), dtype=np.uint8)
    if count:
        raw[:, :width] = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(count, width)
    words = np.ascontiguousarray(raw.view(np.uint64).T)

    def column(index: int, dtype: type) -> "np.ndarray":
        return np.fromiter((r[index] or 0 for r in rows), dtype=dtype, count=count)

    hemisphere = np.fromiter(
        (NOWHERE if r[7] is None else (SOUTH if r[7] < 0 else NORTH) for r in rows), dtype=np.int8, count=count
    )
    codes = [column(2, np.int64), *(column(i, np.int32) for i in (3, 4, 5, 6)), hemisphere]
    return BitMatrix(generation, ids, words, *codes)


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
