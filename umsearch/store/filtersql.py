"""Filters (folder, date, type, camera, place, kind) as SQL over the bit table's integer columns and the files table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .paths import path_to_db
from .sql import scalar

if TYPE_CHECKING:
    import apsw

    from ..filters import Filters

FILTER_COLUMNS = ("taken", "folder", "ext", "camera", "place", "kind")  # integer metadata columns of the bit table


class Labels:
    """Small integer codes for filter values (folders, extensions, cameras, places)."""

    def __init__(self, db: apsw.Connection) -> None:
        self.db = db

    def code(self, kind: str, text: str | None) -> int:
        if not text:
            return 0
        row = self.db.execute("SELECT id FROM labels WHERE kind = ? AND text = ?", (kind, text)).fetchone()
        if row:
            return row[0]
        return int(scalar(self.db, "INSERT INTO labels (kind, text) VALUES (?, ?) RETURNING id", (kind, text)))

    def matching(self, kind: str, wanted: str) -> list[int]:
        """Codes whose text contains `wanted`, ignoring case (Python's casefold also handles non-ASCII)."""
        needle = wanted.casefold()
        rows = self.db.execute("SELECT id, text FROM labels WHERE kind = ?", (kind,))
        return [label_id for label_id, text in rows if needle in text.casefold()]

    def exact(self, kind: str, texts: Sequence[str]) -> list[int]:
        marks = ",".join("?" * len(texts))
        return [
            r[0] for r in self.db.execute(f"SELECT id FROM labels WHERE kind = ? AND text IN ({marks})", (kind, *texts))
        ]

    def folders_under(self, root: str) -> list[int]:
        prefix = root.rstrip(os.sep) + os.sep
        rows = self.db.execute(
            "SELECT id FROM labels WHERE kind = 'folder' AND (text = ? OR (text >= ? AND text < ?))",
            (root, prefix, prefix + "\U0010ffff"),
        )
        return [r[0] for r in rows]


def filter_sql(db: apsw.Connection, filters: Filters | None) -> tuple[str | None, list, str, list]:
    """The filters as conditions on the bit table's columns and, equivalently, on the files table;
    (None, [], "", []) when nothing can match."""
    nothing: tuple[None, list, str, list] = (None, [], "", [])
    if filters is None:
        return "", [], "", []
    labels = Labels(db)
    clauses: list[str] = []
    params: list = []
    file_clauses: list[str] = []
    file_params: list = []

    def one_of(column: str, codes: list[int]) -> bool:
        if not codes:
            return False
        marks = ",".join("?" * len(codes))
        clauses.append(f" AND {column} IN ({marks})")
        params.extend(codes)
        file_clauses.append(f" AND {column} IN (SELECT text FROM labels WHERE id IN ({marks}))")
        file_params.extend(codes)
        return True

    for bound, op in ((filters.after, ">="), (filters.before, "<")):
        if bound is not None:
            clauses.append(f" AND taken {op} ?")
            params.append(int(bound))
            file_clauses.append(f" AND taken {op} ?")
            file_params.append(int(bound))
    if filters.folders and not one_of(
        "folder", sorted({c for root in filters.folders for c in labels.folders_under(path_to_db(root))})
    ):
        return nothing
    if filters.types and not one_of("ext", labels.exact("ext", list(filters.types))):
        return nothing
    if filters.camera and not one_of("camera", labels.matching("camera", filters.camera)):
        return nothing
    if filters.place and not one_of("place", labels.matching("place", filters.place)):
        return nothing
    if filters.kinds and not one_of("kind", labels.exact("kind", list(filters.kinds))):
        return nothing
    return "".join(clauses), params, "".join(file_clauses), file_params
