"""Files: one row per photo with its identity (path, size, mtime, content hash), status and metadata."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .paths import path_from_db, path_to_db
from .schema import chunks
from .segments import Segment
from .sql import scalar
from .vectors import VectorTable

if TYPE_CHECKING:
    import numpy as np

    from ..metadata import PhotoMeta


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
    kind: str = "photo"  # photo, screenshot, document, video (kinds.KINDS)


@dataclass(frozen=True)
class Counts:
    indexed: int
    failed: int
    kinds: dict[str, int] = field(default_factory=dict)  # indexed files per kind


_FILE_COLUMNS = "id, path, size, mtime_ns, hash, status, error, width, height, kind"


@dataclass(frozen=True)
class Facts:
    """The filterable facts of one indexed photo."""

    taken: int | None
    camera: str | None
    place: str | None
    ext: str | None


_MISSING_METADATA = "status = 'ok' AND meta_version < ?"


def _metadata_version() -> int:
    from ..metadata import METADATA_VERSION

    return METADATA_VERSION


class FileTable(VectorTable):
    """One row per file: path, size, time, content hash, status (vector or failure), metadata."""

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
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE id IN ({marks})", chunk):
                found[r[0]] = _row(r)
        return found

    def ok_files_by_hash(self, digest: str) -> list[FileRow]:
        rows = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE hash = ? AND status = 'ok' ORDER BY id", (digest,)
        )
        return [_row(r) for r in rows]

    def ok_files_with_sizes(self, sizes: Iterable[int]) -> list[FileRow]:
        """Indexed photos of these sizes: where a photo that appears under a new path may have come from."""
        found: list[FileRow] = []
        for chunk in chunks(sorted(set(sizes)), 900):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'ok' AND size IN ({marks})"
            found.extend(_row(r) for r in self.db.execute(sql, chunk))
        return found

    def recent_files(self, limit: int) -> list[FileRow]:
        """The most recently taken photos (EXIF date, else file time), newest first (the TUI's opening screen)."""
        rows = self.db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'ok' "
            "ORDER BY coalesce(taken, mtime_ns / 1000000000) DESC, id DESC LIMIT ?",
            (int(limit),),
        )
        return [_row(r) for r in rows]

    def put_file(
        self,
        path: str,
        *,
        size: int,
        mtime_ns: int,
        digest: str | None,
        vector: np.ndarray | None = None,
        error: str | None = None,
        width: int | None = None,
        height: int | None = None,
        meta: PhotoMeta | None = None,
        segments: Sequence[Segment] | None = None,
        kind: str | None = None,
    ) -> int:
        """Insert or replace the row for `path` with its vector (status ok) or its error (status failed).

        A video or a PDF gives `segments` instead of `vector`: one vector per frame or page, with its time
        or page number, all written in this one transaction. Without `meta` the row gets what is known
        without reading the file (type, file time) and is left for a later metadata pass (meta_version 0).
        `kind` defaults to photo."""
        if segments is not None and vector is not None:
            raise ValueError("a file has either one vector or segments")
        if segments is not None and not segments:
            raise ValueError("segments must hold at least one vector")
        has_vectors = vector is not None or segments is not None
        if has_vectors == (error is not None):
            raise ValueError("a file has either a vector or an error")
        stored = path_to_db(path)
        status = "ok" if has_vectors else "failed"
        if error is not None:  # a decoder's message may quote undecodable bytes of the file name
            error = error.encode("utf-8", "backslashreplace").decode("utf-8")
        with self.transaction():
            existing = self.db.execute("SELECT id FROM files WHERE path = ?", (stored,)).fetchone()
            values = (size, mtime_ns, digest, status, error, width, height, time.time(), kind or "photo")
            if existing:
                file_id = existing[0]
                self.db.execute(
                    "UPDATE files SET size = ?, mtime_ns = ?, hash = ?, status = ?, error = ?, width = ?, "
                    "height = ?, indexed_at = ?, kind = ? WHERE id = ?",
                    (*values, file_id),
                )
                self._delete_vectors([file_id])
            else:
                file_id = scalar(
                    self.db,
                    "INSERT INTO files (path, folder, size, mtime_ns, hash, status, error, width, height, indexed_at,"
                    " kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (stored, os.path.dirname(stored), *values),
                )
            self._write_metadata(file_id, stored, mtime_ns, meta)
            if vector is not None:
                self._insert_vector(file_id, vector)
            elif segments is not None:
                self._insert_vectors(file_id, segments)
        return file_id

    def _write_metadata(self, file_id: int, stored: str, mtime_ns: int, meta: PhotoMeta | None) -> None:
        from ..metadata import METADATA_VERSION, file_extension, mtime_wall_clock

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

    def set_metadata(self, file_id: int, meta: PhotoMeta, kind: str | None = None) -> None:
        """Fill in a photo's metadata (and kind) later (backfill), keeping its vector; the scan's filter
        columns follow."""
        with self.transaction():
            row = self.db.execute("SELECT path, mtime_ns FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                return
            self._write_metadata(file_id, row[0], row[1], meta)
            if kind is not None:
                self.db.execute("UPDATE files SET kind = ? WHERE id = ?", (kind, file_id))
            self._sync_filter_columns(file_id)

    def files_missing_metadata(self) -> list[FileRow]:
        """Indexed photos whose metadata is absent or from an older extractor (read again, no re-embedding)."""
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE {_MISSING_METADATA} ORDER BY id"
        return [_row(r) for r in self.db.execute(sql, (_metadata_version(),))]

    def count_missing_metadata(self) -> int:
        """How many photos `files_missing_metadata` would return, without reading them (for `status`)."""
        sql = f"SELECT count(*) FROM files WHERE {_MISSING_METADATA}"
        return int(scalar(self.db, sql, (_metadata_version(),)))

    def facts_by_id(self, ids: Iterable[int]) -> dict[int, Facts]:
        ids = list(ids)
        found: dict[int, Facts] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT id, taken, camera, place, ext FROM files WHERE id IN ({marks})", chunk):
                found[r[0]] = Facts(r[1], r[2], r[3], r[4])
        return found

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
            from ..metadata import file_extension

            self.db.execute("UPDATE files SET ext = ? WHERE id = ?", (file_extension(stored), file_id))
            self._sync_filter_columns(file_id)

    def copy_vector_to(
        self, source_id: int, path: str, *, size: int, mtime_ns: int, digest: str, meta: PhotoMeta | None = None
    ) -> int:
        """A copy of an indexed file: reuse its vector (a video's every frame) instead of running the model.
        `meta` is the copy's own (its file time differs, and EXIF-less copies must not inherit the source's
        date)."""
        source = self.files_by_id([source_id])[source_id]
        segments = self.segments(source_id)
        return self.put_file(
            path,
            size=size,
            mtime_ns=mtime_ns,
            digest=digest,
            vector=None if segments else self.vector(source_id),
            segments=segments or None,
            width=source.width,
            height=source.height,
            kind=source.kind,
            meta=meta,
        )

    def delete_files(self, ids: Iterable[int]) -> int:
        ids = list(ids)
        with self.transaction():
            for chunk in chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)
                self._delete_vectors(chunk)
        return len(ids)

    # ---- browsing (the web gallery's filter choices) ------------------------------------------------
    def facet_counts(self, column: str, limit: int = 200) -> list[tuple[str, int]]:
        """The most common values of one fact among indexed photos (camera, place, ext or folder), with counts."""
        if column not in ("camera", "place", "ext", "folder"):
            raise ValueError(f"no facet {column}")
        rows = self.db.execute(
            f"SELECT {column}, count(*) FROM files WHERE status = 'ok' AND {column} IS NOT NULL AND {column} != '' "
            f"GROUP BY {column} ORDER BY count(*) DESC, {column} LIMIT ?",
            (int(limit),),
        )
        return [(path_from_db(value) if column == "folder" else value, count) for value, count in rows]

    def ok_ids(self) -> set[int]:
        """The ids of every photo with a vector (what may be shown)."""
        return {r[0] for r in self.db.execute("SELECT id FROM files WHERE status = 'ok'")}

    # ---- reporting -----------------------------------------------------------------------------
    def counts(self) -> Counts:
        rows: dict[Any, Any] = dict(self.db.execute("SELECT status, count(*) FROM files GROUP BY status"))
        kinds: dict[Any, Any] = dict(
            self.db.execute("SELECT kind, count(*) FROM files WHERE status = 'ok' GROUP BY kind")
        )
        return Counts(indexed=rows.get("ok", 0), failed=rows.get("failed", 0), kinds=kinds)

    def failures(self, limit: int | None = None) -> list[FileRow]:
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'failed' ORDER BY path"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row(r) for r in self.db.execute(sql)]


def _row(r: Sequence) -> FileRow:
    return FileRow(r[0], path_from_db(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
