"""The index: one SQLite file holding files, their metadata and their vectors (sqlite-vec).

SQLite is reached through apsw, which ships its own current SQLite and can always load extensions
(Python's stdlib sqlite3 cannot on macOS' system Python and on some Linux builds).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelMismatchError, StoreError

APPLICATION_ID = 0x756D7365  # "umse": marks the file as ours, so a foreign SQLite file is recognised
BUSY_TIMEOUT_MS = 15_000
# The vec0 table, one row per photo with a vector (rowid = file id). m001 made it float[dim]; since m003 it
# holds the sign bits + filter columns (the coarse scan, sqlite-vec bit[dim]) and the floats live in FLOAT_TABLE.
VEC_TABLE = "vectors"
BIT_TABLE = VEC_TABLE
FLOAT_TABLE = "embeddings"  # exact float32 vectors and their sign bits, one row per photo (fast lookup by id)
# The coarse scan keeps this many candidates (at least 4 x the page), which are then rescored exactly.
# Chosen with benchmarks/search_scale.py: recall@20 >= 0.99 on clustered 1536-d vectors (see BENCHMARKS.md).
RESCORE_SHORTLIST = 400
VEC0_MAX_K = 4096
FILTER_WIDENING = 10  # a filter passing >= ~1/10 of the nearest photos is applied to a numpy shortlist
_FILTER_COLUMNS = ("taken", "folder", "ext", "camera", "place")  # integer metadata columns of BIT_TABLE

if TYPE_CHECKING:
    import numpy as np

    from .filters import Filters
    from .metadata import PhotoMeta


@dataclass(frozen=True)
class IndexSettings:
    """What the vectors in an index depend on; an index never mixes two of these."""

    model_id: str
    dim: int
    min_image_tokens: int
    max_image_tokens: int


@dataclass(frozen=True, slots=True)  # one per indexed file while planning: keep it small
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


def m002_photo_metadata(db: "apsw.Connection") -> None:  # noqa: F821
    """Columns for date taken, camera, place and type; labels give filter values small integer codes.

    Filled here from what the row already knows (extension, file time); `umsearch index` then reads
    EXIF for rows whose meta_version is behind, without re-embedding them.
    """
    from .metadata import file_extension, mtime_wall_clock

    db.execute(
        """
        ALTER TABLE files ADD COLUMN taken INTEGER;
        ALTER TABLE files ADD COLUMN camera TEXT;
        ALTER TABLE files ADD COLUMN place TEXT;
        ALTER TABLE files ADD COLUMN ext TEXT;
        ALTER TABLE files ADD COLUMN latitude REAL;
        ALTER TABLE files ADD COLUMN longitude REAL;
        ALTER TABLE files ADD COLUMN meta_version INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX files_taken ON files(taken);
        CREATE TABLE labels (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, text TEXT NOT NULL, UNIQUE (kind, text));
        """
    )
    rows = db.execute("SELECT id, path, mtime_ns FROM files").fetchall()
    db.executemany(
        "UPDATE files SET ext = ?, taken = ? WHERE id = ?",
        [(file_extension(path), mtime_wall_clock(mtime_ns), file_id) for file_id, path, mtime_ns in rows],
    )


def m003_binary_index(db: "apsw.Connection") -> None:  # noqa: F821
    """Float vectors move to a plain table; a sign-bit vec0 table with filter columns becomes the scan.

    sqlite-vec has no ANN index: a float scan of 100k 1536-d vectors takes ~200 ms, a bit scan ~10 ms.
    """
    db.execute(f"CREATE TABLE {FLOAT_TABLE} (id INTEGER PRIMARY KEY, vector BLOB NOT NULL, bits BLOB NOT NULL)")
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (VEC_TABLE,)).fetchone():
        return  # a new index: bind() creates the bit table once the model's dimension is known
    dim = db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
    db.executemany(
        f"INSERT INTO {FLOAT_TABLE} (id, vector, bits) VALUES (?, ?, ?)",
        ((rowid, blob, sign_bits(blob)) for rowid, blob in db.execute(f"SELECT rowid, embedding FROM {VEC_TABLE}")),
    )
    db.execute(f"DROP TABLE {VEC_TABLE}")  # the float vec0 table; its name is taken by the bit table
    _create_bit_table(db, int(dim[0]))
    labels = _Labels(db)
    rows = db.execute(
        f"SELECT f.id, f.folder, f.ext, f.camera, f.place, f.taken FROM files f JOIN {FLOAT_TABLE} e ON e.id = f.id"
    ).fetchall()
    for file_id, folder, ext, camera, place, taken in rows:
        bits = db.execute(f"SELECT bits FROM {FLOAT_TABLE} WHERE id = ?", (file_id,)).fetchone()[0]
        db.execute(
            f"INSERT INTO {BIT_TABLE} (rowid, embedding, taken, folder, ext, camera, place) "
            "VALUES (?, vec_bit(?), ?, ?, ?, ?, ?)",
            (
                file_id,
                bits,
                taken or 0,
                labels.code("folder", folder),
                labels.code("ext", ext),
                labels.code("camera", camera),
                labels.code("place", place),
            ),
        )


def _create_bit_table(db: "apsw.Connection", dim: int) -> None:  # noqa: F821
    # Metadata columns are filtered inside sqlite-vec's scan, so a selective filter still fills a page.
    # They reject NULL: 0 stands for "unknown" (label ids start at 1; taken 0 is 1970).
    db.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {BIT_TABLE} USING vec0(embedding bit[{bit_width(dim)}], "
        "taken integer, folder integer, ext integer, camera integer, place integer)"
    )


def bit_width(dim: int) -> int:
    return (int(dim) + 7) // 8 * 8  # sqlite-vec stores whole bytes; padding bits are always 0


def sign_bits(vector: "np.ndarray | bytes") -> bytes:
    """One bit per component (1 where > 0), packed as sqlite-vec's bit[] expects (bit i = byte i//8, bit i%8)."""
    import numpy as np

    values = np.frombuffer(vector, dtype=np.float32) if isinstance(vector, bytes) else np.asarray(vector)
    return np.packbits(values > 0, bitorder="little").tobytes()


class _Labels:
    """Small integer codes for filter values (folders, extensions, cameras, places)."""

    def __init__(self, db: "apsw.Connection") -> None:  # noqa: F821
        self.db = db

    def code(self, kind: str, text: str | None) -> int:
        if not text:
            return 0
        row = self.db.execute("SELECT id FROM labels WHERE kind = ? AND text = ?", (kind, text)).fetchone()
        if row:
            return row[0]
        return self.db.execute("INSERT INTO labels (kind, text) VALUES (?, ?) RETURNING id", (kind, text)).fetchone()[0]

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


@dataclass(frozen=True)
class Facts:
    """The filterable facts of one indexed photo."""

    taken: int | None
    camera: str | None
    place: str | None
    ext: str | None


MIGRATIONS: list[Callable[["apsw.Connection"], None]] = [  # noqa: F821
    m001_create_tables,
    m002_photo_metadata,
    m003_binary_index,
]


# File names are bytes on Linux; Python keeps undecodable bytes as lone surrogates (U+DC80-U+DCFF), which
# SQLite's UTF-8 text cannot hold. Each becomes ESCAPE + a private-use character (and a literal ESCAPE is
# doubled), character by character, so the mapping is reversible and keeps folder prefixes (range scans).
_ESCAPE = "\U0010fe00"
_SURROGATE_BASE = 0x10FE00 - 0xDC00  # U+DC80..U+DCFF <-> U+10FE80..U+10FEFF
_TO_DB = re.compile("[\udc80-\udcff\U0010fe00]")
_FROM_DB = re.compile("\U0010fe00(.)", re.DOTALL)


def path_to_db(path: str) -> str:
    """The one place that turns a file system path into the text stored in the index."""
    if path.isascii():
        return path
    return _TO_DB.sub(_escape_char, path)


def path_from_db(text: str) -> str:
    if text.isascii() or _ESCAPE not in text:
        return text
    return _FROM_DB.sub(_unescape_char, text)


def _escape_char(match: "re.Match[str]") -> str:
    char = match.group()
    return _ESCAPE + (char if char == _ESCAPE else chr(ord(char) + _SURROGATE_BASE))


def _unescape_char(match: "re.Match[str]") -> str:
    char = match.group(1)
    return char if char == _ESCAPE else chr(ord(char) - _SURROGATE_BASE)


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


_MISSING_METADATA = "status = 'ok' AND meta_version < ?"


def _metadata_version() -> int:
    from .metadata import METADATA_VERSION

    return METADATA_VERSION


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
            _create_private_file(path)
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
        unknown = done - {migration.__name__ for migration in MIGRATIONS}
        if unknown:
            raise StoreError(
                f"{self.path} was written by a newer umsearch (schema step {sorted(unknown)[-1]}); "
                "upgrade umsearch to use it"
            )
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
                _create_bit_table(self.db, settings.dim)
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
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (BIT_TABLE,)).fetchone()
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

    def files_in_folder(self, folder: str) -> list[FileRow]:
        """The files directly in one folder (not below it): planning reads the index a folder at a time."""
        rows = self.db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE folder = ?", (path_to_db(folder),))
        return [_row(r) for r in rows]

    def folders_under(self, roots: Sequence[str]) -> set[str]:
        """Every folder holding an indexed file at or below the roots."""
        folders: set[str] = set()
        for root in roots:
            stored = path_to_db(root)
            prefix = stored.rstrip(os.sep) + os.sep
            rows = self.db.execute(
                "SELECT DISTINCT folder FROM files WHERE path = ? OR (path >= ? AND path < ?)",
                (stored, prefix, prefix + "\U0010ffff"),
            )
            folders.update(path_from_db(r[0]) for r in rows)
        return folders

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

    def recent_files(self, limit: int, filters: "Filters | None" = None) -> list[FileRow]:
        """The most recently taken photos (EXIF date, else file time), newest first (the TUI's opening screen),
        or the newest that pass `filters` (a search by date or place alone)."""
        where, params = "", []
        if filters is not None:
            bits_where, _, where, params = self._filter_sql(filters)
            if bits_where is None:
                return []
            if filters.exclude_ids:
                where += f" AND id NOT IN ({','.join('?' * len(filters.exclude_ids))})"
                params = [*params, *sorted(filters.exclude_ids)]
        rows = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'ok'{where} "
            "ORDER BY coalesce(taken, mtime_ns / 1000000000) DESC, id DESC LIMIT ?",
            (*params, int(limit)),
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
        meta: "PhotoMeta | None" = None,
    ) -> int:
        """Insert or replace the row for `path` with its vector (status ok) or its error (status failed).

        Without `meta` the row gets what is known without reading the file (type, file time) and is left
        for a later metadata pass (meta_version 0)."""
        if (vector is None) == (error is None):
            raise ValueError("a file has either a vector or an error")
        stored = path_to_db(path)
        status = "ok" if vector is not None else "failed"
        if error is not None:  # a decoder's message may quote undecodable bytes of the file name
            error = error.encode("utf-8", "backslashreplace").decode("utf-8")
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
            self._write_metadata(file_id, stored, mtime_ns, meta)
            if vector is not None:
                self._insert_vector(file_id, vector)
        return file_id

    def _write_metadata(self, file_id: int, stored: str, mtime_ns: int, meta: "PhotoMeta | None") -> None:
        from .metadata import METADATA_VERSION, file_extension, mtime_wall_clock

        if meta is None:
            self.db.execute(
                "UPDATE files SET ext = ?, taken = ?, camera = NULL, place = NULL, latitude = NULL, "
                "longitude = NULL, meta_version = 0 WHERE id = ?",
                (file_extension(stored), mtime_wall_clock(mtime_ns), file_id),
            )
            return
        self.db.execute(
            "UPDATE files SET ext = ?, taken = ?, camera = ?, place = ?, latitude = ?, longitude = ?, "
            "meta_version = ? WHERE id = ?",
            (
                file_extension(stored),
                meta.taken,
                meta.camera,
                meta.place,
                meta.latitude,
                meta.longitude,
                METADATA_VERSION,
                file_id,
            ),
        )

    def set_metadata(self, file_id: int, meta: "PhotoMeta") -> None:
        """Fill in a photo's metadata later (backfill), keeping its vector; the scan's filter columns follow."""
        with self.transaction():
            row = self.db.execute("SELECT path, mtime_ns FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                return
            self._write_metadata(file_id, row[0], row[1], meta)
            self._sync_filter_columns(file_id)

    def files_missing_metadata(self) -> list[FileRow]:
        """Indexed photos whose metadata is absent or from an older extractor (read again, no re-embedding)."""
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE {_MISSING_METADATA} ORDER BY id"
        return [_row(r) for r in self.db.execute(sql, (_metadata_version(),))]

    def count_missing_metadata(self) -> int:
        """How many photos `files_missing_metadata` would return, without reading them (for `status`)."""
        sql = f"SELECT count(*) FROM files WHERE {_MISSING_METADATA}"
        return self.db.execute(sql, (_metadata_version(),)).fetchone()[0]

    def facts_by_id(self, ids: Iterable[int]) -> dict[int, Facts]:
        ids = list(ids)
        found: dict[int, Facts] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT id, taken, camera, place, ext FROM files WHERE id IN ({marks})", chunk):
                found[r[0]] = Facts(r[1], r[2], r[3], r[4])
        return found

    def _filter_codes(self, file_id: int) -> tuple[int, int, int, int, int] | None:
        row = self.db.execute("SELECT taken, folder, ext, camera, place FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            return None
        labels = _Labels(self.db)
        return (
            row[0] or 0,
            labels.code("folder", row[1]),
            labels.code("ext", row[2]),
            labels.code("camera", row[3]),
            labels.code("place", row[4]),
        )

    def _sync_filter_columns(self, file_id: int) -> None:
        if not self.has_vectors_table():
            return
        codes = self._filter_codes(file_id)
        if codes is None:
            return
        sets = ", ".join(f"{name} = ?" for name in _FILTER_COLUMNS)
        self.db.execute(f"UPDATE {BIT_TABLE} SET {sets} WHERE rowid = ?", (*codes, file_id))

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
            from .metadata import file_extension

            self.db.execute("UPDATE files SET ext = ? WHERE id = ?", (file_extension(stored), file_id))
            self._sync_filter_columns(file_id)

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
        if not self.has_vectors_table():
            raise StoreError(f"index {self.path} has no vector table yet (no model bound)")
        blob = _blob(vector)
        bits = sign_bits(blob)
        self.db.execute(f"INSERT INTO {FLOAT_TABLE} (id, vector, bits) VALUES (?, ?, ?)", (file_id, blob, bits))
        codes = self._filter_codes(file_id) or (0, 0, 0, 0, 0)
        self.db.execute(
            f"INSERT INTO {BIT_TABLE} (rowid, embedding, {', '.join(_FILTER_COLUMNS)}) "
            "VALUES (?, vec_bit(?), ?, ?, ?, ?, ?)",
            (file_id, bits, *codes),
        )
        self._vectors_changed()

    def _vectors_changed(self) -> None:
        """Bump the generation that tells a saved bit matrix (bitcache) it is out of date."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('vectors_generation', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1"
        )

    def vectors_generation(self) -> int:
        return int(self.meta("vectors_generation") or 0)

    def _delete_vectors(self, ids: Sequence[int]) -> None:
        # vec0 has no INSERT OR REPLACE: a replaced vector is deleted first.
        marks = ",".join("?" * len(ids))
        self.db.execute(f"DELETE FROM {FLOAT_TABLE} WHERE id IN ({marks})", list(ids))
        if self.db.changes():
            self._vectors_changed()
        if self.has_vectors_table():
            self.db.execute(f"DELETE FROM {BIT_TABLE} WHERE rowid IN ({marks})", list(ids))

    def vector(self, file_id: int) -> "np.ndarray":
        import numpy as np

        row = self.db.execute(f"SELECT vector FROM {FLOAT_TABLE} WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise StoreError(f"no vector stored for file id {file_id}")
        return np.frombuffer(row[0], dtype=np.float32).copy()

    def vector_count(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM {FLOAT_TABLE}").fetchone()[0]

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple["np.ndarray", "np.ndarray"]]:
        """All stored vectors in blocks of (ids, float32 matrix), in id order (for whole-index maths)."""
        import numpy as np

        last = -1
        while True:
            rows = self.db.execute(
                f"SELECT id, vector FROM {FLOAT_TABLE} WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            yield ids, matrix
            last = int(ids[-1])

    def knn(self, vector: "np.ndarray", k: int, filters: "Filters | None" = None) -> list[tuple[int, float]]:
        """The k nearest files by cosine similarity, best first, as (file id, similarity).

        Two steps: sqlite-vec scans the sign bits (Hamming distance), with the filters applied inside that
        scan, and keeps a shortlist; the shortlist is then rescored exactly with the float vectors.
        """
        import numpy as np

        if not self.has_vectors_table() or k <= 0:
            return []
        excluded = filters.exclude_ids if filters else frozenset()
        where, params, file_where, file_params = self._filter_sql(filters)
        if where is None:
            return []
        shortlist = min(VEC0_MAX_K, max(RESCORE_SHORTLIST, 4 * k) + len(excluded))
        query = np.ascontiguousarray(vector, dtype=np.float32)
        query_bits = sign_bits(query)
        if not where:
            candidates = self._bit_matrix().nearest(query_bits, shortlist).tolist()
        else:
            candidates = self._filtered_shortlist(query_bits, shortlist, file_where, file_params)
            if candidates is None:  # a selective filter: sqlite-vec scans only the matching photos
                candidates = [
                    r[0]
                    for r in self.db.execute(
                        f"SELECT rowid FROM {BIT_TABLE} WHERE embedding MATCH vec_bit(?) AND k = ?{where}",
                        (query_bits, shortlist, *params),
                    )
                ]
                if filters is not None and filters.seasonal:
                    passing = self._passing(candidates, file_where, file_params)
                    candidates = [file_id for file_id in candidates if file_id in passing]
        ids = [file_id for file_id in candidates if file_id not in excluded]
        if not ids:
            return []
        found_ids, matrix = self._vectors_for(ids)
        # einsum, not BLAS: for a few hundred rows BLAS's thread start-up costs more than the sums.
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix)) * (float(np.sqrt(query @ query)) or 1.0)
        scores = np.einsum("ij,j->i", matrix, query) / np.where(norms == 0, 1.0, norms)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(found_ids[i]), float(scores[i])) for i in order]

    def _filtered_shortlist(self, query_bits: bytes, shortlist: int, where: str, params: list) -> list[int] | None:
        """For a broad filter: the `shortlist` Hamming-nearest photos that pass it, taken from a 10x wider
        unfiltered shortlist (the same set sqlite-vec would return, without its N x k cost). None when too
        few pass, i.e. the filter is selective; sqlite-vec then finds them quickly."""
        bits = self._bit_matrix()
        wide = bits.nearest_sorted(query_bits, shortlist * FILTER_WIDENING).tolist()
        passing: set[int] = set()
        for start, chunk in enumerate(_chunks(wide, 900)):
            passing |= self._passing(chunk, where, params)
            if start == 0 and len(passing) * len(wide) < shortlist * len(chunk) and len(wide) < len(bits.ids):
                return None  # the pass rate of the nearest 900 says the wide list will not hold enough
        kept = [file_id for file_id in wide if file_id in passing][:shortlist]
        return kept if len(kept) >= shortlist or len(wide) >= len(bits.ids) else None

    def _passing(self, ids: Sequence[int], where: str, params: list) -> set[int]:
        """Which of `ids` pass a files-table condition (from _filter_sql)."""
        passing: set[int] = set()
        for chunk in _chunks(list(ids), 900):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id FROM files WHERE id IN ({marks}){where}"
            passing.update(r[0] for r in self.db.execute(sql, (*chunk, *params)))
        return passing

    def _bit_matrix(self) -> "bitcache.BitMatrix":  # noqa: F821
        from . import bitcache

        with self.read_snapshot():
            generation = self.vectors_generation()
            cached = getattr(self, "_bits", None)
            if cached is None or cached.generation != generation:
                self._bits = bitcache.load(self, generation)
        return self._bits

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

    def _vectors_for(self, ids: Sequence[int]) -> tuple["np.ndarray", "np.ndarray"]:
        import numpy as np

        rows: list = []
        for chunk in _chunks(list(ids), 900):
            marks = ",".join("?" * len(chunk))
            rows.extend(self.db.execute(f"SELECT id, vector FROM {FLOAT_TABLE} WHERE id IN ({marks})", chunk))
        found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return found, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)

    def _filter_sql(self, filters: "Filters | None") -> tuple[str | None, list, str, list]:
        """The filters as conditions on the bit table's columns and, equivalently, on the files table;
        (None, [], "", []) when nothing can match."""
        nothing: tuple[None, list, str, list] = (None, [], "", [])
        if filters is None:
            return "", [], "", []
        labels = _Labels(self.db)
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
        if filters.seasonal:
            home = -1.0 if self._library_is_southern() else 1.0
            for when in filters.seasonal:
                north, south = when.north.seconds(), when.for_south().seconds()
                # The bit table has no latitude: it gets the span both hemispheres cover, and knn drops
                # the photos of the wrong hemisphere with the exact condition on the files table.
                for bound, op, pick in ((0, ">=", min), (1, "<", max)):
                    if north[bound] is not None and south[bound] is not None:
                        clauses.append(f" AND taken {op} ?")
                        params.append(pick(north[bound], south[bound]))
                file_clauses.append(
                    " AND (CASE WHEN coalesce(latitude, ?) < 0 THEN taken >= ? AND taken < ? "
                    "ELSE taken >= ? AND taken < ? END)"
                )
                file_params.extend((home, *_open_bounds(south), *_open_bounds(north)))
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
        return "".join(clauses), params, "".join(file_clauses), file_params

    def _library_is_southern(self) -> bool:
        """Whether most geotagged photos lie south of the equator: photos without a place are taken to be
        from there too when a filter depends on the hemisphere (seasons)."""
        south, placed = self.db.execute(
            "SELECT count(*) FILTER (WHERE latitude < 0), count(latitude) FROM files"
        ).fetchone()
        return south * 2 > placed

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
            p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()
        )


def _make_private_parent(path: Path) -> None:
    """The index reveals what is in someone's photos: its folder is created readable by its owner only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for index {path}: {exc.strerror or exc}") from None


def _create_private_file(path: Path) -> None:
    """The index file itself is owner-only too (an empty file is a valid empty SQLite database, and SQLite
    gives its -wal and -shm files the same permissions), so `--db` in a shared folder stays private."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create index {path}: {exc.strerror or exc}") from None


def _row(r: Sequence) -> FileRow:
    return FileRow(r[0], path_from_db(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8])


def _blob(vector: "np.ndarray") -> bytes:
    import numpy as np

    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _open_bounds(span: tuple[int | None, int | None]) -> tuple[int, int]:
    return (-(2**62) if span[0] is None else span[0], 2**62 if span[1] is None else span[1])


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
