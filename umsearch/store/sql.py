"""Reading single values from SQLite, typed: what every module of the store shares below the schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import apsw


def scalar(db: apsw.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first value of a statement that always returns a row (count(*), a PRAGMA, INSERT … RETURNING)."""
    row = db.execute(sql, params).fetchone()
    if row is None:  # cannot happen for such statements; a clear error beats an opaque TypeError
        raise LookupError(f"no row from: {sql}")
    return row[0]
