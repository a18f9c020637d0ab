"""Vectors of text queries already asked, so asking again needs no model (and no torch import)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .base import StoreBase

if TYPE_CHECKING:
    import numpy as np

QUERY_CACHE_ROWS = 10_000  # ~6 KB each at 1536-d: the cache stays under ~60 MB however long it is used


class QueryCache(StoreBase):
    def cached_query(self, key: str) -> np.ndarray | None:
        import numpy as np

        row = self.db.execute("SELECT vector FROM query_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def cache_query(self, key: str, vector: np.ndarray) -> None:
        """Remember a query's vector; an index that cannot be written simply does not remember (the query works)."""
        import apsw
        import numpy as np

        if self.read_only:
            return

        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        try:
            with self.transaction():
                self.db.execute(
                    "INSERT INTO query_cache (key, vector, used_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET vector = excluded.vector, used_at = excluded.used_at",
                    (key, blob, time.time()),
                )
                self.db.execute(
                    "DELETE FROM query_cache WHERE key IN (SELECT key FROM query_cache ORDER BY used_at DESC "
                    "LIMIT -1 OFFSET ?)",
                    (QUERY_CACHE_ROWS,),
                )
        except (apsw.ReadOnlyError, apsw.CantOpenError, apsw.BusyError, apsw.FullError, apsw.IOError):
            pass  # a read-only index, a busy writer or a full disk: the answer is still right, just not kept
