"""Frozen copy of umsearch/store.py as released before issue 6 (schema m001: float vec0 table).

Used only to build an index exactly as older umsearch did, so that the migration to m002/m003 is tested
against the real old code path. Do not edit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from umsearch.errors import ModelMismatchError, StoreError

APPLICATION_ID = 0x756D7365  # "umse": marks the file as ours, so a foreign SQLite file is recognised
BUSY_TIMEOUT_MS = 15_000
VEC_TABLE = "vectors"

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class IndexSettings:
    """What the vectors in an index depend on; an index never mixes two of these."""

    model_id: str
    dim: int
    min_image_tokens: int
    max_image_tokens: int


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str  # "ok" (has a vector) or "failed" (error says why)
    error: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Counts:
    indexed: int
    failed: int


_FILE_COLUMNS = "id, path, size, mtime_ns, hash, status, error, width, height"


# Migrations: an ordered list of small named steps, each run once in its own transaction.
def m001_create_tables(db: "apsw.Connection") -> None:  # noqa: F821
    db.execute(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            hash TEXT,
            status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
            error TEXT,
            width INTEGER,
            height INTEGER,
            indexed_at REAL NOT NULL
        );
        CREATE INDEX files_hash ON files(hash);
        CREATE INDEX files_folder ON files(folder);
        CREATE INDEX files_status ON files(status);
        """
    )


MIGRATIONS: list[Callable[["apsw.Connection"], None]] = [m001_create_tables]  # noqa: F821


def path_to_db(path: str) -> str:
    """The one place that turns a file system path into the text stored in the index."""
    return path


def path_from_db(text: str) -> str:
    return text


def sqlite_vec_path() -> str:
    """The sqlite-vec loadable library, found without importing the package (which imports numpy)."""
    import importlib.util

    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("the sqlite-vec package is not installed: pip install sqlite-vec")
    return os.path.join(next(iter(spec.submodule_search_locations)), "vec0")


def sqlite_route() -> str:
    """Which SQLite binding and library this build uses (shown by `umsearch doctor`)."""
    import apsw

    return f"apsw {apsw.apsw_version()} with its own SQLite {apsw.sqlite_lib_version()}"


class Store:
    def __init__(self, db: "apsw.Connection", path: Path) -> None:  # noqa: F821
        self.db = db
        self.path = path
        self._in_transaction = False

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> "Store":
        import apsw

        path = Path(path).expanduser()
        if path.is_dir():
            raise StoreError(f"{path} is a folder; --db takes the path of an index file")
        if not path.exists():
            if not create:
                raise StoreError(f"no index at {path}: run 'umsearch index FOLDER' first")
            _make_private_parent(path)
        try:
            db = apsw.Connection(str(path))
            db.setbusytimeout(BUSY_TIMEOUT_MS)
            db.enable_load_extension(True)
            db.load_extension(sqlite_vec_path())
            db.enable_load_extension(False)
            store = cls(db, path)
            store._prepare()
        except StoreError:
            raise
        except apsw.NotADBError:
            raise StoreError(f"{path} is not an umsearch index (not a SQLite database)") from None
        except apsw.CorruptError:
            raise StoreError(f"{path} is corrupt (SQLite says so); move it away and re-index") from None
        except (apsw.CantOpenError, apsw.PermissionsError, apsw.ReadOnlyError) as exc:
            raise StoreError(f"cannot open index {path}: {exc}") from None
        except apsw.BusyError:
            raise StoreError(f"index {path} is locked by another process; try again") from None
        return store

    def _prepare(self) -> None:
        db = self.db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id != APPLICATION_ID and tables:
            raise StoreError(f"{self.path} is not an umsearch index (it is another application's SQLite file)")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA mmap_size = 1073741824")
        if app_id != APPLICATION_ID:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._migrate()

    def _migrate(self) -> None:
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        done = {r[0] for r in db.execute("SELECT name FROM migrations")}
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            with self.transaction():
                migration(db)
                db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.__name__, time.time()))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._in_transaction = False

    # ---- settings ------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def settings(self) -> IndexSettings | None:
        model = self.meta("model_id")
        if model is None:
            return None
        return IndexSettings(
            model_id=model,
            dim=int(self.meta("dim") or 0),
            min_image_tokens=int(self.meta("min_image_tokens") or 0),
            max_image_tokens=int(self.meta("max_image_tokens") or 0),
        )

    def check_model(self, model_id: str) -> None:
        """Refuse before loading a model that cannot serve this index (cheap: no torch)."""
        current = self.settings()
        if current is not None and current.model_id != model_id:
            raise ModelMismatchError(
                f"index {self.path} was built with model '{current.model_id}', not '{model_id}': "
                f"pass --model {current.model_id}, or --db NEW_FILE for a separate index"
            )

    def bind(self, settings: IndexSettings) -> None:
        """Record the settings of a new index, or check that they match the existing ones."""
        current = self.settings()
        if current is None:
            with self.transaction():
                for key, value in vars(settings).items():
                    self.set_meta(key, str(value))
                self.db.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {VEC_TABLE} USING vec0("
                    f"embedding float[{int(settings.dim)}] distance_metric=cosine)"
                )
            return
        self.check_model(settings.model_id)
        if current.dim != settings.dim:
            raise ModelMismatchError(
                f"index {self.path} holds {current.dim}-d vectors; model '{settings.model_id}' makes "
                f"{settings.dim}-d ones"
            )
        if (current.min_image_tokens, current.max_image_tokens) != (
            settings.min_image_tokens,
            settings.max_image_tokens,
        ):
            raise ModelMismatchError(
                f"index {self.path} was built with an image budget of {current.min_image_tokens}-"
                f"{current.max_image_tokens} visual tokens, not {settings.min_image_tokens}-"
                f"{settings.max_image_tokens}: use the same --quality / token settings, or --db NEW_FILE"
            )

    def has_vectors_table(self) -> bool:
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (VEC_TABLE,)).fetchone()
        return row is not None

    # ---- files ---------------------------------------------------------------------------------
    def iter_files(self, under: Sequence[str] | None = None) -> Iterator[FileRow]:
        """All files, or those below any of the given folders (or equal to a given file path)."""
        if under is None:
            rows = self.db.execute(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY path")
            yield from (_row(r) for r in rows)
            return
        for root in under:
            yield from self._files_under(path_to_db(root))

    def _files_under(self, root: str) -> Iterator[FileRow]:
        prefix = root.rstrip(os.sep) + os.sep
        # A range scan on the path index; `prefix + U+10FFFF` sorts after every path below it.
        rows = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ? OR (path >= ? AND path < ?) ORDER BY path",
            (root, prefix, prefix + "\U0010ffff"),
        )
        yield from (_row(r) for r in rows)

    def file_by_path(self, path: str) -> FileRow | None:
        row = self.db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (path_to_db(path),)).fetchone()
        return _row(row) if row else None

    def files_by_id(self, ids: Iterable[int]) -> dict[int, FileRow]:
        ids = list(ids)
        found: dict[int, FileRow] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE id IN ({marks})", chunk):
                found[r[0]] = _row(r)
        return found

    def ok_files_by_hash(self, digest: str) -> list[FileRow]:
        rows = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE hash = ? AND status = 'ok' ORDER BY id", (digest,)
        )
        return [_row(r) for r in rows]

    def put_file(
        self,
        path: str,
        *,
        size: int,
        mtime_ns: int,
        digest: str | None,
        vector: "np.ndarray | None" = None,
        error: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> int:
        """Insert or replace the row for `path` with its vector (status ok) or its error (status failed)."""
        if (vector is None) == (error is None):
            raise ValueError("a file has either a vector or an error")
        stored = path_to_db(path)
        status = "ok" if vector is not None else "failed"
        with self.transaction():
            existing = self.db.execute("SELECT id FROM files WHERE path = ?", (stored,)).fetchone()
            values = (size, mtime_ns, digest, status, error, width, height, time.time())
            if existing:
                file_id = existing[0]
                self.db.execute(
                    "UPDATE files SET size = ?, mtime_ns = ?, hash = ?, status = ?, error = ?, width = ?, "
                    "height = ?, indexed_at = ? WHERE id = ?",
                    (*values, file_id),
                )
                self._delete_vectors([file_id])
            else:
                file_id = self.db.execute(
                    "INSERT INTO files (path, folder, size, mtime_ns, hash, status, error, width, height, indexed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (stored, os.path.dirname(stored), *values),
                ).fetchone()[0]
            if vector is not None:
                self._insert_vector(file_id, vector)
        return file_id

    def touch_file(self, file_id: int, *, size: int, mtime_ns: int) -> None:
        """Same content under a new mtime (a `touch`, a copy that kept the bytes): keep the vector."""
        self.db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, file_id))

    def move_file(self, file_id: int, new_path: str, *, size: int, mtime_ns: int) -> None:
        """A rename or move: the row (and its vector) follows the file; any row at the target is replaced."""
        stored = path_to_db(new_path)
        with self.transaction():
            clash = self.db.execute("SELECT id FROM files WHERE path = ? AND id != ?", (stored, file_id)).fetchone()
            if clash:
                self.delete_files([clash[0]])
            self.db.execute(
                "UPDATE files SET path = ?, folder = ?, size = ?, mtime_ns = ? WHERE id = ?",
                (stored, os.path.dirname(stored), size, mtime_ns, file_id),
            )

    def copy_vector_to(self, source_id: int, path: str, *, size: int, mtime_ns: int, digest: str) -> int:
        """A copy of an indexed file: reuse its vector instead of running the model again."""
        source = self.files_by_id([source_id])[source_id]
        return self.put_file(
            path,
            size=size,
            mtime_ns=mtime_ns,
            digest=digest,
            vector=self.vector(source_id),
            width=source.width,
            height=source.height,
        )

    def delete_files(self, ids: Iterable[int]) -> int:
        ids = list(ids)
        with self.transaction():
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)
                self._delete_vectors(chunk)
        return len(ids)

    # ---- vectors -------------------------------------------------------------------------------
    def _insert_vector(self, file_id: int, vector: "np.ndarray") -> None:
        self.db.execute(
            f"INSERT INTO {VEC_TABLE} (rowid, embedding) VALUES (?, ?)", (file_id, _blob(vector))
        )

    def _delete_vectors(self, ids: Sequence[int]) -> None:
        # vec0 has no INSERT OR REPLACE: a replaced vector is deleted first.
        if not self.has_vectors_table():
            return
        marks = ",".join("?" * len(ids))
        self.db.execute(f"DELETE FROM {VEC_TABLE} WHERE rowid IN ({marks})", list(ids))

    def vector(self, file_id: int) -> "np.ndarray":
        import numpy as np

        row = self.db.execute(f"SELECT embedding FROM {VEC_TABLE} WHERE rowid = ?", (file_id,)).fetchone()
        if row is None:
            raise StoreError(f"no vector stored for file id {file_id}")
        return np.frombuffer(row[0], dtype=np.float32).copy()

    def knn(self, vector: "np.ndarray", k: int) -> list[tuple[int, float]]:
        """The k nearest files by cosine similarity, best first, as (file id, similarity)."""
        if not self.has_vectors_table() or k <= 0:
            return []
        rows = self.db.execute(
            f"SELECT rowid, distance FROM {VEC_TABLE} WHERE embedding MATCH ? AND k = ? ORDER BY distance",
            (_blob(vector), int(k)),
        )
        return [(rowid, 1.0 - float(distance)) for rowid, distance in rows]

    # ---- reporting -----------------------------------------------------------------------------
    def counts(self) -> Counts:
        rows = dict(self.db.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall())
        return Counts(indexed=rows.get("ok", 0), failed=rows.get("failed", 0))

    def failures(self, limit: int | None = None) -> list[FileRow]:
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'failed' ORDER BY path"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row(r) for r in self.db.execute(sql)]

    def size_bytes(self) -> int:
        return sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )


def _make_private_parent(path: Path) -> None:
    """The index reveals what is in someone's photos: its folder is created readable by its owner only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for index {path}: {exc.strerror or exc}") from None


def _row(r: Sequence) -> FileRow:
    return FileRow(r[0], path_from_db(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8])


def _blob(vector: "np.ndarray") -> bytes:
    import numpy as np

    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
