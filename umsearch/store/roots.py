"""The library's roots: the folders (or single photos) the user indexed or watched, and what lies below a path.

Roots let `status` name folders that are gone (an unplugged drive, a library moved elsewhere) and `forget`
drop a root or any folder from the index. Rows themselves never need a root: a photo's row is found by its path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .files import FileTable
from .paths import path_from_db, path_to_db


def _below(column: str) -> str:
    """SQL: `column` is the path given, or lies below it (a range scan on the path index)."""
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))"


def _below_params(path: str) -> tuple[str, str, str]:
    stored = path_to_db(path)
    prefix = stored.rstrip(os.sep) + os.sep
    return stored, prefix, prefix + "\U0010ffff"


class RootTable(FileTable):
    def roots(self) -> list[str]:
        return [path_from_db(r[0]) for r in self.db.execute("SELECT path FROM roots ORDER BY path")]

    def root_devices(self) -> dict[str, int | None]:
        """Each recorded root and the device it was on when last seen with files."""
        return {path_from_db(r[0]): r[1] for r in self.db.execute("SELECT path, device FROM roots")}

    def record_roots(self, paths: Sequence[str]) -> None:
        """Remember the roots of an index or watch run and the device each is on while it holds something (an
        empty mount point's device says nothing about the drive); forget recorded roots that are gone and hold
        nothing (a library moved elsewhere leaves no trace)."""
        with self.transaction():
            for path in paths:
                device = _device_if_occupied(path)
                self.db.execute(
                    "INSERT INTO roots (path, added_at, device) VALUES (?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET device = coalesce(excluded.device, device)",
                    (path_to_db(path), time.time(), device),
                )
            for root in self.roots():
                if not os.path.exists(root) and self.count_below(root) == (0, 0):
                    self.db.execute("DELETE FROM roots WHERE path = ?", (path_to_db(root),))

    def count_below(self, path: str) -> tuple[int, int]:
        """(indexed, failed) files at or below `path`."""
        rows: dict[Any, Any] = dict(
            self.db.execute(
                f"SELECT status, count(*) FROM files WHERE {_below('path')} GROUP BY status", _below_params(path)
            )
        )
        return rows.get("ok", 0), rows.get("failed", 0)

    def roots_below(self, path: str) -> list[str]:
        rows = self.db.execute(f"SELECT path FROM roots WHERE {_below('path')}", _below_params(path))
        return [path_from_db(r[0]) for r in rows]

    def forget_below(self, path: str) -> int:
        """Drop every file at or below `path` (with its vector) and the roots there; returns the files dropped."""
        with self.transaction():
            ids = [r[0] for r in self.db.execute(f"SELECT id FROM files WHERE {_below('path')}", _below_params(path))]
            self.delete_files(ids)
            self.db.execute(f"DELETE FROM roots WHERE {_below('path')}", _below_params(path))
        return len(ids)

    def indexed_folders(self) -> list[str]:
        """Every folder that directly holds an indexed file."""
        return [path_from_db(r[0]) for r in self.db.execute("SELECT DISTINCT folder FROM files")]


def _device_if_occupied(path: str) -> int | None:
    try:
        device = os.stat(path).st_dev
        if os.path.isdir(path):
            with os.scandir(path) as entries:
                if next(entries, None) is None:
                    return None
    except OSError:
        return None
    return device
