"""The index as one object: open (create, check, migrate) an index file and bind it to a model's settings."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DiskFullError, ModelMismatchError, StoreError
from .health import is_disk_full
from .querycache import QueryCache
from .roots import RootTable
from .schema import (
    APPLICATION_ID,
    BUSY_TIMEOUT_MS,
    MIGRATIONS,
    create_bit_table,
    create_private_file,
    make_private_parent,
    sqlite_vec_path,
)
from .sql import scalar

if TYPE_CHECKING:
    import apsw


@dataclass(frozen=True)
class IndexSettings:
    """What the vectors in an index depend on; an index never mixes two of these."""

    model_id: str
    dim: int
    min_image_tokens: int
    max_image_tokens: int
    family: str = "gme"  # the model family (families.py); indexes from before families existed are GME


class Store(RootTable, QueryCache):
    """One index file: files, their metadata and vectors (the table classes this one inherits say how)."""

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> Store:
        """Open (and with `create`, make) an index for reading and writing.

        Without `create` (queries, status, dupes), an index that this user may not write (the file or its
        folder lacks write permission) is opened read-only: everything that reads works, and the little that
        writes on the side (the query cache, the bit matrix file) is skipped. Indexing one needs write access
        and says so.
        """
        import apsw

        path = Path(path).expanduser()
        if path.is_dir():
            raise StoreError(f"{path} is a folder; --db takes the path of an index file")
        if not path.exists():
            if not create:
                raise StoreError(f"no index at {path}: run 'umsearch index FOLDER' first")
            make_private_parent(path)
            create_private_file(path)
        read_only = not _writable(path)
        if read_only and create:
            raise StoreError(
                f"index {path} is read-only for you: indexing needs write permission on the file and on its "
                f"folder {path.parent} (queries and 'umsearch status' work without it)"
            )
        try:
            db = _connect_read_only(path) if read_only else apsw.Connection(str(path))
            db.setbusytimeout(BUSY_TIMEOUT_MS)
            db.enable_load_extension(True)
            db.load_extension(sqlite_vec_path())
            db.enable_load_extension(False)
            store = cls(db, path)
            store.read_only = read_only
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
        except (apsw.FullError, apsw.IOError) as exc:
            if is_disk_full(exc, path.parent):
                raise DiskFullError(str(path.parent)) from None
            raise
        return store

    def _prepare(self) -> None:
        db = self.db
        app_id = scalar(db, "PRAGMA application_id")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id != APPLICATION_ID and tables:
            raise StoreError(f"{self.path} is not an umsearch index (it is another application's SQLite file)")
        if self.read_only:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA mmap_size = 1073741824")
            self._check_schema_read_only(tables)
            return
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA mmap_size = 1073741824")
        if app_id != APPLICATION_ID:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._migrate()

    def _check_schema_read_only(self, tables: set[str]) -> None:
        """A read-only index is used as it is: one that needs a schema step first cannot be."""
        done = {r[0] for r in self.db.execute("SELECT name FROM migrations")} if "migrations" in tables else set()
        self._refuse_newer(done)
        pending = [migration.__name__ for migration in MIGRATIONS if migration.__name__ not in done]
        if pending:
            raise StoreError(
                f"index {self.path} was made by an older umsearch and needs updating ({pending[0]}), which needs "
                f"write permission on the file and its folder {self.path.parent}: grant it once, run "
                "'umsearch status', then it can be read-only again"
            )

    def _refuse_newer(self, done: set[str]) -> None:
        unknown = done - {migration.__name__ for migration in MIGRATIONS}
        if unknown:
            raise StoreError(
                f"{self.path} was written by a newer umsearch (schema step {sorted(unknown)[-1]}); "
                "upgrade umsearch to use it"
            )

    def _migrate(self) -> None:
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        done = {r[0] for r in db.execute("SELECT name FROM migrations")}
        self._refuse_newer(done)
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            with self.transaction():
                migration(db)
                db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.__name__, time.time()))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settings(self) -> IndexSettings | None:
        model = self.meta("model_id")
        if model is None:
            return None
        return IndexSettings(
            model_id=model,
            dim=int(self.meta("dim") or 0),
            min_image_tokens=int(self.meta("min_image_tokens") or 0),
            max_image_tokens=int(self.meta("max_image_tokens") or 0),
            family=self.meta("family") or "gme",
        )

    def check_model(self, model_id: str, family: str | None = None) -> None:
        """Refuse before loading a model that cannot serve this index (cheap: no torch).

        `family`, when known, makes the refusal of a model of the other family say so.
        """
        current = self.settings()
        if current is not None and family is not None and current.family != family:
            from ..families import family_named

            raise ModelMismatchError(
                f"index {self.path} holds {family_named(current.family).label} vectors (model "
                f"'{current.model_id}'); '{model_id}' is a {family_named(family).label} model, whose vectors "
                f"are not comparable: pass --model {current.model_id}, or --db NEW_FILE for a separate index"
            )
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
                create_bit_table(self.db, settings.dim)
            return
        self.check_model(settings.model_id, settings.family)
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

    def size_bytes(self) -> int:
        return sum(
            p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()
        )


def _writable(path: Path) -> bool:
    """Whether this process may write the index: SQLite needs the file, and its folder for the -wal/-shm files."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _connect_read_only(path: Path) -> apsw.Connection:
    """A read-only connection. In WAL mode SQLite needs the -shm file: `mode=ro` finds or creates it; in a
    folder where it cannot be created, `immutable=1` reads the database file alone (safe: nobody without
    write permission can change it while we read, and a missing -wal file means every change is in it)."""
    from urllib.parse import quote

    import apsw

    uri = "file:" + quote(os.fsencode(path))
    flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    try:
        db = apsw.Connection(uri + "?mode=ro", flags=flags)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read opens the WAL files
        return db
    except (apsw.CantOpenError, apsw.ReadOnlyError):
        if os.path.exists(f"{path}-wal") and os.path.getsize(f"{path}-wal") > 0:
            raise  # changes still in the WAL file: reading the database file alone would miss them
    return apsw.Connection(uri + "?immutable=1", flags=flags)
