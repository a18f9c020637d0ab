"""Filters (folder, date, type, camera, place, kind, season) as SQL over the files table and as a boolean mask
over the codes kept beside the bit matrix (bitcache)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .paths import path_to_db
from .sql import scalar

if TYPE_CHECKING:
    import apsw
    import numpy as np

    from ..filters import Filters
    from .bitcache import BitMatrix


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


def filter_sql(db: apsw.Connection, filters: Filters | None) -> tuple[str, list] | None:
    """The filters as conditions on the files table (" AND ..." and its parameters); None when nothing can
    match. The same conditions as FilterPlan.mask, for listing photos by their facts alone."""
    plan = filter_plan(db, filters)
    if plan is None:
        return None
    clauses: list[str] = []
    params: list = []
    for bound, op in ((plan.after, ">="), (plan.before, "<")):
        if bound is not None:
            clauses.append(f" AND taken {op} ?")
            params.append(int(bound))
    for column, codes in plan.codes:
        marks = ",".join("?" * len(codes))
        clauses.append(f" AND {column} IN (SELECT text FROM labels WHERE id IN ({marks}))")
        params.extend(codes)
    if plan.seasons:
        home = -1.0 if library_is_southern(db) else 1.0
        for north, south in plan.seasons:
            clauses.append(
                " AND (CASE WHEN coalesce(latitude, ?) < 0 THEN taken >= ? AND taken < ? "
                "ELSE taken >= ? AND taken < ? END)"
            )
            params.extend((home, *south, *north))
    return "".join(clauses), params


@dataclass(frozen=True)
class FilterPlan:
    """Filters resolved to label codes and seconds, ready to be applied to a bit matrix's code arrays."""

    after: int | None = None
    before: int | None = None
    codes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (column, codes it must be one of)
    seasons: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()  # ((north start, end), (south start, end))

    def mask(self, matrix: BitMatrix) -> np.ndarray | None:
        """Which photos of the matrix pass (None: all of them)."""
        import numpy as np

        from .schema import NOWHERE, SOUTH

        passing: np.ndarray | None = None

        def both(condition: np.ndarray) -> None:
            nonlocal passing
            passing = condition if passing is None else passing & condition

        if self.after is not None:
            both(matrix.taken >= self.after)
        if self.before is not None:
            both(matrix.taken < self.before)
        for column, codes in self.codes:
            both(np.isin(getattr(matrix, column), np.asarray(codes, dtype=np.int32)))
        if self.seasons:
            placed = matrix.hemisphere != NOWHERE
            home_south = int(np.count_nonzero(matrix.hemisphere == SOUTH)) * 2 > int(np.count_nonzero(placed))
            southern = (matrix.hemisphere == SOUTH) | (~placed if home_south else False)
            for north, south in self.seasons:
                span = np.where(southern, south[0], north[0]), np.where(southern, south[1], north[1])
                both((matrix.taken >= span[0]) & (matrix.taken < span[1]))
        return passing


def filter_plan(db: apsw.Connection, filters: Filters | None) -> FilterPlan | None:
    """The filters with their label codes looked up; None when nothing can match."""
    if filters is None:
        return FilterPlan()
    labels = Labels(db)
    wanted: list[tuple[str, Sequence[int] | set[int]]] = []
    if filters.folders:
        wanted.append(("folder", {c for root in filters.folders for c in labels.folders_under(path_to_db(root))}))
    if filters.types:
        wanted.append(("ext", labels.exact("ext", list(filters.types))))
    if filters.camera:
        wanted.append(("camera", labels.matching("camera", filters.camera)))
    if filters.place:
        wanted.append(("place", labels.matching("place", filters.place)))
    if filters.kinds:
        wanted.append(("kind", labels.exact("kind", list(filters.kinds))))
    if any(not found for _, found in wanted):
        return None  # e.g. a camera no photo was taken with
    codes = tuple((column, tuple(sorted(found))) for column, found in wanted)
    seasons = tuple(
        (_open_bounds(when.north.seconds()), _open_bounds(when.for_south().seconds())) for when in filters.seasonal
    )
    return FilterPlan(filters.after, filters.before, codes, seasons)


def library_is_southern(db: apsw.Connection) -> bool:
    """Whether most geotagged photos lie south of the equator: photos without a place are taken to be from
    there too when a filter depends on the hemisphere (seasons)."""
    south = int(scalar(db, "SELECT count(*) FROM files WHERE latitude < 0"))
    return south * 2 > int(scalar(db, "SELECT count(latitude) FROM files"))


def _open_bounds(span: tuple[int | None, int | None]) -> tuple[int, int]:
    return (-(2**62) if span[0] is None else span[0], 2**62 if span[1] is None else span[1])
