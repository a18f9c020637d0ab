"""The index file's layout: table names, migrations, and the helpers database.py opens a connection with.

SQLite is reached through apsw, which ships its own current SQLite and can always load extensions
(Python's stdlib sqlite3 cannot on macOS' system Python and on some Linux builds).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .filtersql import FILTER_COLUMNS, Labels
from .sql import scalar

if TYPE_CHECKING:
    import apsw
    import numpy as np

APPLICATION_ID = 0x756D7365  # "umse": marks the file as ours, so a foreign SQLite file is recognised
BUSY_TIMEOUT_MS = 15_000
# The vec0 table, one row per photo with a vector (rowid = file id). m001 made it float[dim]; since m003 it
# holds the sign bits + filter columns (the coarse scan, sqlite-vec bit[dim]) and the floats live in FLOAT_TABLE.
VEC_TABLE = "vectors"
BIT_TABLE = VEC_TABLE
FLOAT_TABLE = "embeddings"  # exact float32 vectors and their sign bits, one row per photo (fast lookup by id)


# Migrations: an ordered list of small named steps, each run once in its own transaction.
def m001_create_tables(db: apsw.Connection) -> None:
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


def m002_photo_metadata(db: apsw.Connection) -> None:
    """Columns for date taken, camera, place and type; labels give filter values small integer codes.

    Filled here from what the row already knows (extension, file time); `umsearch index` then reads
    EXIF for rows whose meta_version is behind, without re-embedding them.
    """
    from ..metadata import file_extension, mtime_wall_clock

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
    rows: list[Any] = db.execute("SELECT id, path, mtime_ns FROM files").fetchall()
    db.executemany(
        "UPDATE files SET ext = ?, taken = ? WHERE id = ?",
        [(file_extension(path), mtime_wall_clock(mtime_ns), file_id) for file_id, path, mtime_ns in rows],
    )


def m003_binary_index(db: apsw.Connection) -> None:
    """Float vectors move to a plain table; a sign-bit vec0 table with filter columns becomes the scan.

    sqlite-vec has no ANN index: a float scan of 100k 1536-d vectors takes ~200 ms, a bit scan ~10 ms.
    """
    db.execute(f"CREATE TABLE {FLOAT_TABLE} (id INTEGER PRIMARY KEY, vector BLOB NOT NULL, bits BLOB NOT NULL)")
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (VEC_TABLE,)).fetchone():
        return  # a new index: bind() creates the bit table once the model's dimension is known
    dim = scalar(db, "SELECT value FROM meta WHERE key = 'dim'")
    db.executemany(
        f"INSERT INTO {FLOAT_TABLE} (id, vector, bits) VALUES (?, ?, ?)",
        ((rowid, blob, sign_bits(blob)) for rowid, blob in db.execute(f"SELECT rowid, embedding FROM {VEC_TABLE}")),
    )
    db.execute(f"DROP TABLE {VEC_TABLE}")  # the float vec0 table; its name is taken by the bit table
    create_bit_table(db, int(dim), _M003_FILTER_COLUMNS)
    labels = Labels(db)
    rows: list[Any] = db.execute(
        f"SELECT f.id, f.folder, f.ext, f.camera, f.place, f.taken FROM files f JOIN {FLOAT_TABLE} e ON e.id = f.id"
    ).fetchall()
    for file_id, folder, ext, camera, place, taken in rows:
        bits = scalar(db, f"SELECT bits FROM {FLOAT_TABLE} WHERE id = ?", (file_id,))
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


_M003_FILTER_COLUMNS = ("taken", "folder", "ext", "camera", "place")  # the bit table's columns as m003 made it


def create_bit_table(db: apsw.Connection, dim: int, columns: Sequence[str] = FILTER_COLUMNS) -> None:
    # Metadata columns are filtered inside sqlite-vec's scan, so a selective filter still fills a page.
    # They reject NULL: 0 stands for "unknown" (label ids start at 1; taken 0 is 1970).
    db.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {BIT_TABLE} USING vec0(embedding bit[{bit_width(dim)}], "
        + ", ".join(f"{column} integer" for column in columns)
        + ")"
    )


def bit_width(dim: int) -> int:
    return (int(dim) + 7) // 8 * 8  # sqlite-vec stores whole bytes; padding bits are always 0


def sign_bits(vector: np.ndarray | bytes) -> bytes:
    """One bit per component (1 where > 0), packed as sqlite-vec's bit[] expects (bit i = byte i//8, bit i%8)."""
    import numpy as np

    values = np.frombuffer(vector, dtype=np.float32) if isinstance(vector, bytes) else np.asarray(vector)
    return np.packbits(values > 0, bitorder="little").tobytes()


def m004_query_cache(db: apsw.Connection) -> None:
    """Vectors of text queries already asked (querycache.py): asking again needs no model."""
    db.execute("CREATE TABLE query_cache (key TEXT PRIMARY KEY, vector BLOB NOT NULL, used_at REAL NOT NULL)")
    db.execute("CREATE INDEX query_cache_used ON query_cache(used_at)")


def m005_media_segments_and_kinds(db: apsw.Connection) -> None:
    """Videos and PDFs: a kind for every file, several vectors per file (frames, pages) and a kind column
    in the bit table's filters.

    Existing rows get the kind their name and size tell (screenshots mostly); `umsearch index` then reads
    each photo's metadata again (METADATA_VERSION 2), which settles kinds that need EXIF or pixels.
    """
    from ..kinds import image_kind
    from .segments import create_segments_table

    db.execute(
        """
        ALTER TABLE files ADD COLUMN kind TEXT NOT NULL DEFAULT 'photo';
        CREATE INDEX files_kind ON files(kind);
        """
    )
    create_segments_table(db)
    rows: list[Any] = db.execute("SELECT id, path, ext, width, height FROM files").fetchall()
    updates = []
    for file_id, path, ext, width, height in rows:
        kind = image_kind(path, width or 0, height or 0, image_format=_FORMAT_BY_EXT.get(ext or ""))
        if kind != "photo":
            updates.append((kind, file_id))
    db.executemany("UPDATE files SET kind = ? WHERE id = ?", updates)
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (BIT_TABLE,)).fetchone():
        return  # no model bound yet: bind() creates the bit table with every column
    dim = int(scalar(db, "SELECT value FROM meta WHERE key = 'dim'"))
    db.execute(f"DROP TABLE {BIT_TABLE}")  # a vec0 table cannot gain a column: rebuilt from the stored bits
    create_bit_table(db, dim)
    labels = Labels(db)
    stored: list[Any] = db.execute(
        f"SELECT e.id, e.bits, f.taken, f.folder, f.ext, f.camera, f.place, f.kind "
        f"FROM {FLOAT_TABLE} e JOIN files f ON f.id = e.id"
    ).fetchall()
    db.executemany(
        f"INSERT INTO {BIT_TABLE} (rowid, embedding, {', '.join(FILTER_COLUMNS)}) "
        "VALUES (?, vec_bit(?), ?, ?, ?, ?, ?, ?)",
        [
            (
                file_id,
                bits,
                taken or 0,
                labels.code("folder", folder),
                labels.code("ext", ext),
                labels.code("camera", camera),
                labels.code("place", place),
                labels.code("kind", kind),
            )
            for file_id, bits, taken, folder, ext, camera, place, kind in stored
        ],
    )


_FORMAT_BY_EXT = {"png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}


def m006_library_roots(db: apsw.Connection) -> None:
    """The folders the user indexes or watches (roots.py): `status` names those that are gone, `forget` drops
    them; an index on size finds where a photo that reappears elsewhere (a library moved to another disk) was."""
    # device: the file system the root was on when last seen with files (an unmounted drive's mount point is an
    # empty folder on another device: its photos are kept, not taken for deleted).
    db.execute("CREATE TABLE roots (path TEXT PRIMARY KEY, added_at REAL NOT NULL, device INTEGER)")
    db.execute("CREATE INDEX files_size ON files(size)")


MIGRATIONS: list[Callable[[apsw.Connection], None]] = [
    m001_create_tables,
    m002_photo_metadata,
    m003_binary_index,
    m004_query_cache,
    m005_media_segments_and_kinds,
    m006_library_roots,
]


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


def make_private_parent(path: Path) -> None:
    """The index reveals what is in someone's photos: its folder is created readable by its owner only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for index {path}: {exc.strerror or exc}") from None


def create_private_file(path: Path) -> None:
    """The index file itself is owner-only too (an empty file is a valid empty SQLite database, and SQLite
    gives its -wal and -shm files the same permissions), so `--db` in a shared folder stays private."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create index {path}: {exc.strerror or exc}") from None


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """`items` in slices small enough for one statement's bound parameters (SQLite caps them)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
