"""What every part of the store stands on: the connection, transactions, consistent reads, the meta table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .health import FileState, file_identity, file_state
from .schema import BIT_TABLE

if TYPE_CHECKING:
    import apsw


class StoreBase:
    def __init__(self, db: apsw.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self.read_only = False  # opened without write permission (Store.open): reads only
        self._in_transaction = False
        self.identity = file_identity(path)  # the file opened, to notice it deleted or replaced later

    def file_state(self) -> FileState:
        """Whether the index file is still the one opened and writable (a long-running writer asks first)."""
        return file_state(self.path, self.identity)

    # ---- transactions --------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: all of it lands, or none of it (also on Ctrl-C and kill -9)."""
        if self._in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._in_transaction = False

    def _roll_back(self) -> None:
        """Undo the open transaction, if SQLite has not already done so.

        A full disk or an I/O error (also during COMMIT) may make SQLite roll back on its own; a second
        ROLLBACK would then fail and hide the error that matters. A COMMIT that failed without rolling back
        leaves the transaction open: rolling it back here keeps the connection usable for the next one.
        """
        if self.db.getautocommit():
            return
        try:
            self.db.execute("ROLLBACK")
        except Exception:  # the original error is the one to report
            pass

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Several reads that see one consistent state of the index (a concurrent writer waits or is unseen)."""
        if self._in_transaction or not self.db.getautocommit():
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    # ---- settings ------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def has_vectors_table(self) -> bool:
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (BIT_TABLE,)).fetchone()
        return row is not None
