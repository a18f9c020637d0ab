"""Find candidate files (photos, videos, PDFs) under one or more roots, cheaply (stat only, no reads)."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .imageload import HEIF_EXTENSIONS, RAW_EXTENSIONS
from .pdfpages import PDF_EXTENSIONS
from .video import VIDEO_EXTENSIONS

JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})
# HEIF/AVIF, camera RAW, videos and PDFs are always found: without the `all` extra they are recorded as
# unsupported (with the pip command), never silently missing from the index. (The name stays for the
# callers that pass it; it covers everything umsearch indexes.)
IMAGE_EXTENSIONS = (
    frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"})
    | HEIF_EXTENSIONS
    | RAW_EXTENSIONS
    | VIDEO_EXTENSIONS
    | PDF_EXTENSIONS
)

# Files that are still being written by browsers, sync tools and editors: never index them.
TEMPORARY_SUFFIXES = (".part", ".crdownload", ".tmp", ".temp", ".download", ".partial", "~", ".swp", ".swx")


# SQLite integers are signed 64-bit: nanoseconds since 1970 reach only the year 2262, and ext4 keeps file times
# up to 2446 (tmpfs and others further). A time beyond is kept as the last one SQLite can hold, everywhere alike,
# so comparing the disk with the index still works (such files are told apart by size and content).
_MAX_NS = 2**63 - 1
_MIN_NS = -(2**63)


def mtime_ns_of(info: os.stat_result) -> int:
    """A file's modification time as the index keeps it."""
    return min(max(info.st_mtime_ns, _MIN_NS), _MAX_NS)


@dataclass(frozen=True, slots=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int


def is_hidden(name: str) -> bool:
    # "._foo.jpg" are macOS resource forks: hidden by the leading dot too.
    return name.startswith(".")


def is_temporary(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(TEMPORARY_SUFFIXES) or lower.startswith((".~", "~$"))


def has_image_extension(name: str, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    return os.path.splitext(name)[1].lower() in extensions


def is_candidate_name(name: str, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    """Whether a file name alone makes a file worth indexing (the watcher asks this too)."""
    return not is_hidden(name) and not is_temporary(name) and has_image_extension(name, extensions)


def is_excluded(path: str, excludes: Iterable[str]) -> bool:
    """An exclude glob matches the whole path or any single component (`--exclude '*/cache/*'`, `--exclude raw`)."""
    parts = path.split(os.sep)
    for pattern in excludes:
        if fnmatch.fnmatch(path, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def normalize_root(root: str | os.PathLike[str]) -> str:
    """Absolute, user-expanded, without '..' — but symlinks kept, so paths read as the user sees them."""
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def scan(
    roots: Iterable[str | os.PathLike[str]],
    excludes: Iterable[str] = (),
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    on_error: Callable[[str, str], None] | None = None,
) -> Iterator[FoundFile]:
    """Yield every image file below the roots, following symlinks without looping.

    A root may also be a single file. Unreadable folders are reported through `on_error(path, reason)`
    and skipped, so one bad folder never stops a scan.
    """
    excludes = tuple(excludes)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    tops = [normalize_root(root) for root in roots]
    # Folders are walked once each (seen_dirs), so only a file given as its own root can come up twice;
    # remembering just those keeps memory independent of the library's size.
    file_roots = frozenset(top for top in tops if os.path.isfile(top))
    for top in tops:
        try:
            st = os.stat(top)
        except OSError as exc:
            _report(on_error, top, exc)
            continue
        if stat.S_ISREG(st.st_mode):
            if has_image_extension(top, extensions) and top not in seen_files:
                seen_files.add(top)
                yield FoundFile(top, st.st_size, mtime_ns_of(st))
            continue
        yield from _walk(top, excludes, extensions, seen_dirs, file_roots, on_error)


def _walk(top, excludes, extensions, seen_dirs, file_roots, on_error) -> Iterator[FoundFile]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            _report(on_error, folder, exc)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:  # a symlink loop, or the same folder reached twice
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            _report(on_error, folder, exc)
            continue
        subfolders = []
        jpeg_stems = _jpeg_stems(entries)
        for entry in entries:
            name = entry.name
            if is_hidden(name):
                continue
            path = entry.path
            if excludes and is_excluded(path, excludes):
                continue
            try:
                if entry.is_dir():  # follows symlinks
                    subfolders.append(path)
                    continue
                if not is_candidate_name(name, extensions) or not entry.is_file():
                    continue
                if jpeg_stems and is_raw_beside_jpeg(name, jpeg_stems):
                    continue
                info = entry.stat()  # follows symlinks; a broken link raises here and is skipped
            except OSError:
                continue
            if path in file_roots:  # yielded by its own root
                continue
            yield FoundFile(path, info.st_size, mtime_ns_of(info))
        # Reverse so that popping visits folders in sorted order: stable, predictable runs.
        stack.extend(reversed(subfolders))


def _jpeg_stems(entries) -> frozenset[str]:
    return frozenset(
        os.path.splitext(e.name)[0].lower() for e in entries if os.path.splitext(e.name)[1].lower() in JPEG_EXTENSIONS
    )


def is_raw_beside_jpeg(name: str, jpeg_stems: frozenset[str]) -> bool:
    """A RAW file with a same-named JPEG in its folder (RAW+JPEG shooting): the JPEG stands for both."""
    stem, ext = os.path.splitext(name)
    return ext.lower() in RAW_EXTENSIONS and stem.lower() in jpeg_stems


def raw_has_jpeg_sibling(path: str) -> bool:
    """The same rule for one path (the watcher sees files one at a time)."""
    stem, ext = os.path.splitext(path)
    if ext.lower() not in RAW_EXTENSIONS:
        return False
    return any(os.path.isfile(stem + jpeg) for jpeg in (".jpg", ".JPG", ".jpeg", ".JPEG", ".jpe", ".Jpg"))


def _report(on_error, path: str, exc: OSError) -> None:
    if on_error is not None:
        on_error(path, exc.strerror or str(exc))


def is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def extensions_looked_for(extensions: frozenset[str] = IMAGE_EXTENSIONS) -> str:
    """The extensions a scan picks up, for messages: "bmp, dib, gif, jpe, jpeg, jpg, …"."""
    return ", ".join(sorted(extension.lstrip(".") for extension in extensions))
