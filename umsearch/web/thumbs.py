"""Thumbnails on disk beside the index: made once per photo and size, remade when the photo changes.

The cache is a private folder next to the index file (`index.db.thumbs/`, mode 0700: thumbnails show what
someone's photos are). A thumbnail's file name carries a fingerprint of the photo it was made from (its
content hash in the index, and its size and modification time on disk now), so a changed photo simply misses
the cache and gets a new one; the old file is deleted then. Thumbnails of photos that left the index are
removed by `sweep`. The fingerprint doubles as the HTTP ETag.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ImageLoadError
from ..store.segments import Position

if TYPE_CHECKING:
    from PIL import Image

    from ..store import FileRow

_AT_START = Position()  # a photo, or a video's first frame / a PDF's first page
SIZES = (256, 1024)  # the grid's tiles (sharp on 2x screens at ~128-200 css px) and the preview
JPEG_QUALITY = {256: 78, 1024: 85}
_SUFFIX = ".jpg"


@dataclass(frozen=True)
class Thumb:
    path: Path
    etag: str  # quoted, as the ETag header wants it


class ThumbnailError(Exception):
    """The photo cannot be made into a thumbnail (gone from disk, or not decodable any more)."""


def cache_folder(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".thumbs")


class ThumbCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._locks: dict[tuple[int, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._made = 0

    def _ensure_folder(self) -> None:
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)

    def _shard(self, file_id: int) -> Path:
        return self.folder / f"{file_id % 256:02x}"

    @staticmethod
    def fingerprint(row: FileRow) -> str:
        """What the thumbnail was made from: the photo's content hash and its size and time on disk now."""
        try:
            info = os.stat(row.path)
        except OSError as exc:
            raise ThumbnailError(f"the photo is not readable on disk ({exc.strerror or exc})") from None
        identity = f"{row.hash}:{info.st_size}:{info.st_mtime_ns}"
        return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()

    def lookup(self, row: FileRow, size: int, position: Position = _AT_START) -> Thumb | None:
        """The cached thumbnail of the photo (a video's frame, a PDF's page) as it is on disk now, or None (a
        plain stat and an exists check)."""
        fp = self.fingerprint(row)
        tag = f"{size}{_position_tag(position)}"
        path = self._shard(row.id) / f"{row.id}-{tag}-{fp}{_SUFFIX}"
        return Thumb(path, f'"{fp}-{tag}"') if path.is_file() else None

    def get(self, row: FileRow, size: int, position: Position = _AT_START) -> Thumb:
        """The thumbnail, made now if missing or stale (one maker per photo and size; others wait for it)."""
        if size not in SIZES:
            raise ValueError(f"no thumbnail size {size}")
        found = self.lookup(row, size, position)
        if found is not None:
            return found
        with self._lock_for(row.id, size):
            found = self.lookup(row, size, position)
            if found is not None:
                return found
            return self._make(row, size, position)

    def _lock_for(self, file_id: int, size: int) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 4096:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault((file_id, size), threading.Lock())

    def _make(self, row: FileRow, size: int, position: Position = _AT_START) -> Thumb:
        fp = self.fingerprint(row)
        picture = render(row.path, size, position)
        self._ensure_folder()
        shard = self._shard(row.id)
        shard.mkdir(exist_ok=True, mode=0o700)
        tag = f"{size}{_position_tag(position)}"
        target = shard / f"{row.id}-{tag}-{fp}{_SUFFIX}"
        handle, temp = tempfile.mkstemp(dir=shard, prefix=".part-", suffix=_SUFFIX)
        try:
            with os.fdopen(handle, "wb") as out:
                picture.save(out, "JPEG", quality=JPEG_QUALITY[size], optimize=size <= 256, progressive=size > 256)
            os.replace(temp, target)  # readers see the whole file or none
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        for old in shard.glob(f"{row.id}-{tag}-*{_SUFFIX}"):
            if old != target:
                old.unlink(missing_ok=True)  # made from an older version of the photo
        self._made += 1
        return Thumb(target, f'"{fp}-{tag}"')

    def sweep(self, indexed_ids: set[int]) -> int:
        """Delete the thumbnails of photos no longer in the index (and half-written files); returns how many."""
        removed = 0
        if not self.folder.is_dir():
            return 0
        for shard in self.folder.iterdir():
            if not shard.is_dir():
                continue
            for entry in shard.iterdir():
                name = entry.name
                stale = name.startswith(".part-")
                if not stale:
                    head = name.split("-", 1)[0]
                    stale = not head.isdigit() or int(head) not in indexed_ids
                if stale:
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed

    def forget(self, file_id: int) -> None:
        """Remove every thumbnail of one photo (it left the index)."""
        shard = self._shard(file_id)
        if shard.is_dir():
            for old in shard.glob(f"{file_id}-*{_SUFFIX}"):
                old.unlink(missing_ok=True)

    def usage(self) -> tuple[int, int]:
        """(files, bytes) in the cache."""
        files = total = 0
        if self.folder.is_dir():
            for shard in self.folder.iterdir():
                if shard.is_dir():
                    for entry in shard.iterdir():
                        files += 1
                        total += entry.stat().st_size
        return files, total


def _position_tag(position: Position) -> str:
    """A video frame's or a PDF page's part of a thumbnail's name ("" for a photo, "t12500", "p3")."""
    if position.time is not None:
        return f"t{round(position.time * 1000)}"
    return f"p{position.page}" if position.page is not None else ""


def render(path: str, size: int, position: Position = _AT_START) -> Image.Image:
    """The photo (a video's frame at `position.time`, a PDF's page) upright, in RGB, fitting in size x size."""
    from PIL import Image

    from ..stills import still

    try:
        # JPEGs decode at reduced scale (draft mode); frames and pages are made at about this size
        picture = still(path, size * size, time=position.time, page=position.page)
    except ImageLoadError as exc:
        raise ThumbnailError(str(exc)) from None
    except OSError as exc:
        raise ThumbnailError(f"the photo is not readable on disk ({exc.strerror or exc})") from None
    if max(picture.size) > size:
        picture.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return picture
