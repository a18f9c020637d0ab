"""The index: one SQLite file holding files, their metadata and their vectors (sqlite-vec).

Modules, each one concern, imported in this order (none imports back up):
paths (path text codec) and sql (single values) → filtersql (filter labels and SQL) → schema (tables,
migrations, opening helpers) → base (connection, transactions, meta) → vectors (float + bit vectors, k-NN;
bitcache: the sign-bit matrix) → files (rows, metadata) → roots (the library's folders) → querycache (vectors of
past text queries) → database (`Store`: open, read-only or not, migrate, bind to a model). health (a full disk,
an index file deleted, replaced or read-only) stands apart.
"""

from .database import IndexSettings, Store
from .files import Counts, Facts, FileRow
from .paths import path_from_db, path_to_db
from .schema import FLOAT_TABLE, MIGRATIONS, sign_bits, sqlite_route, sqlite_vec_path

__all__ = [
    "FLOAT_TABLE",
    "MIGRATIONS",
    "Counts",
    "Facts",
    "FileRow",
    "IndexSettings",
    "Store",
    "path_from_db",
    "path_to_db",
    "sign_bits",
    "sqlite_route",
    "sqlite_vec_path",
]
