"""Files with several vectors (a video's frames, a PDF's pages): which vector is where in which file.

A photo has one vector whose id is its file id, as always. A video or a PDF has one vector per kept frame or
page: the first keeps the file id (so `similar`, `dupes` and copies treat the file like a photo through its
opening frame or first page), the others get ids from a range no file id reaches,
`SEGMENT_BASE + file_id * MAX_SEGMENTS + position`. A search maps any vector back to its file with
arithmetic alone; the segments table says where in the file each vector is (seconds, or a page number).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import apsw
    import numpy as np

SEGMENTS_TABLE = "segments"
SEGMENT_BASE = 1 << 48  # above any file id (SQLite hands out max(id) + 1), below 2**63 for any file id < 2**53
MAX_SEGMENTS = 1 << 10  # vectors per file; the video cap and the page cap stay far below


@dataclass(frozen=True)
class Segment:
    """One vector of a multi-vector file and where it comes from."""

    vector: np.ndarray
    time: float | None = None  # seconds into a video
    page: int | None = None  # 1-based page of a document


@dataclass(frozen=True)
class Position:
    """Where in a file a vector (a search hit's best match) lies; both None for a photo."""

    time: float | None = None
    page: int | None = None


def vector_id(file_id: int, position: int) -> int:
    """The id of a file's vector at `position` (0 is the file's own id)."""
    if not 0 <= position < MAX_SEGMENTS:
        raise ValueError(f"a file holds at most {MAX_SEGMENTS} vectors, not {position + 1}")
    return file_id if position == 0 else SEGMENT_BASE + file_id * MAX_SEGMENTS + position


def file_id_of(vector: int) -> int:
    return vector if vector < SEGMENT_BASE else (vector - SEGMENT_BASE) // MAX_SEGMENTS


def file_ids_of(vectors: np.ndarray) -> np.ndarray:
    """`file_id_of` for an int64 array of vector ids."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.int64)
    return np.where(vectors < SEGMENT_BASE, vectors, (vectors - SEGMENT_BASE) // MAX_SEGMENTS)


def best_per_file(vector_ids: Sequence[int], scores: Sequence[float], k: int) -> list[tuple[int, float, int]]:
    """(file id, score, vector id) of the k best files, each ranked once by its best vector, best first."""
    order = sorted(range(len(vector_ids)), key=lambda i: -scores[i])
    seen: set[int] = set()
    best: list[tuple[int, float, int]] = []
    for i in order:
        file_id = file_id_of(int(vector_ids[i]))
        if file_id in seen:
            continue
        seen.add(file_id)
        best.append((file_id, float(scores[i]), int(vector_ids[i])))
        if len(best) >= k:
            break
    return best


def create_segments_table(db: apsw.Connection) -> None:
    db.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {SEGMENTS_TABLE} (
            vector_id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            time REAL,
            page INTEGER
        );
        CREATE INDEX IF NOT EXISTS segments_file ON {SEGMENTS_TABLE}(file_id);
        """
    )


def segment_vector_ids(db: apsw.Connection, file_ids: Iterable[int]) -> list[int]:
    """Every vector id of these files beyond their own ids (their extra frames and pages)."""
    ids = list(file_ids)
    found: list[int] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.extend(
            r[0]
            for r in db.execute(
                f"SELECT vector_id FROM {SEGMENTS_TABLE} WHERE file_id IN ({marks}) AND position > 0", chunk
            )
        )
    return found
