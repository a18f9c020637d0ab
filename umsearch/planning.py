"""What changed: compare the disk (a scan) with the index and plan what to read, move, remove or leave alone.

Planning reads no image and runs no model: only file names, sizes, times and, for possible moves, content
hashes. The pipeline in index.py then carries out the plan.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from .errors import UmsearchError
from .scan import FoundFile, is_within, normalize_root, scan
from .store import FileRow, Store


@dataclass(frozen=True, slots=True)
class Job:
    """A file that needs reading: new or changed since the index last saw it."""

    found: FoundFile
    previous: FileRow | None  # the row at the same path, when the file changed


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    moves: list[tuple[FileRow, FoundFile]] = field(default_factory=list)
    removals: list[FileRow] = field(default_factory=list)
    unchanged: int = 0
    still_failed: int = 0  # files that failed before and have not changed since: not retried, still failed


def content_hash(path: str) -> str:
    """A digest of the bytes: the identity that follows a photo through renames and moves."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_roots(roots: Sequence[str], known: Callable[[str], bool] | None = None) -> list[str]:
    """Missing roots are an error, never 'everything was deleted' (an unmounted drive must not wipe its index).
    A missing root that `known` accepts (the index holds it: a drive not plugged in yet) is kept as it is."""
    checked = []
    for root in roots:
        path = normalize_root(root)
        if not os.path.exists(path) and not (known is not None and known(path)):
            raise UmsearchError(f"{root}: no such file or folder (give the folder your photos are in)")
        checked.append(path)
    return checked


def plan_changes(store: Store, roots: Sequence[str], found: Iterable[FoundFile]) -> Plan:
    """Compare the disk with the index below the roots: what to read, move, remove, or leave alone.

    The scan yields each folder's files together, so the index is read one folder at a time: memory
    grows with the largest folder and the number of changes, not with the size of the library.
    """
    plan = Plan()
    new_files: list[FoundFile] = []
    known: dict[str, FileRow] = {}  # rows of visited folders not (yet) seen on disk
    visited: set[str] = set()
    for folder, items in groupby(found, key=lambda item: os.path.dirname(item.path)):
        if folder not in visited:
            visited.add(folder)
            known.update(
                (row.path, row) for row in store.files_in_folder(folder) if any(is_within(row.path, r) for r in roots)
            )
        for item in items:
            row = known.pop(item.path, None)
            if row is None:
                new_files.append(item)
            elif row.size == item.size and row.mtime_ns == item.mtime_ns:
                if row.status == "failed":
                    plan.still_failed += 1
                else:
                    plan.unchanged += 1
            else:
                plan.jobs.append(Job(item, row))
    # Folders the scan never reached (deleted, excluded, unreadable): all their rows are gone.
    for folder in store.folders_under(roots) - visited:
        known.update(
            (row.path, row) for row in store.files_in_folder(folder) if any(is_within(row.path, r) for r in roots)
        )
    gone = list(known.values())
    # A moved file keeps its size; only hash new files whose size matches a vanished one.
    gone_by_size: dict[int, list[FileRow]] = {}
    for row in gone:
        if row.status == "ok" and row.hash:
            gone_by_size.setdefault(row.size, []).append(row)
    moved_ids: set[int] = set()
    arrived: list[FoundFile] = []
    for item in new_files:
        source = _find_moved_source(item, gone_by_size.get(item.size, []), moved_ids)
        if source is None:
            arrived.append(item)
        else:
            moved_ids.add(source.id)
            plan.moves.append((source, item))
    plan.removals = [row for row in gone if row.id not in moved_ids]
    # Photos new here may have moved from outside these roots: a library copied to another disk, a folder
    # moved between roots, the other half of a move reported later. Their rows follow them (no re-embedding).
    elsewhere = _gone_elsewhere(store, roots, {item.size for item in arrived})
    for item in arrived:
        source = _find_moved_source(item, elsewhere.get(item.size, []), moved_ids)
        if source is None:
            plan.jobs.append(Job(item, None))
        else:
            moved_ids.add(source.id)
            plan.moves.append((source, item))
    plan.jobs = newest_first(plan.jobs)
    return plan


def newest_first(jobs: list[Job]) -> list[Job]:
    """Jobs by file time, newest first, so a long first run makes the last months searchable first.

    The file time stands in for the date taken: it is known from the scan, while EXIF is read only when a
    photo is decoded (sorting by it would read every file twice). Cameras and phones write photos when they
    are taken, and copies usually keep the time. Ties keep the scan's (folder) order.
    """
    return sorted(jobs, key=lambda job: -job.found.mtime_ns)


def _gone_elsewhere(store: Store, roots: Sequence[str], sizes: set[int]) -> dict[int, list[FileRow]]:
    """Indexed photos outside the roots, of these sizes, whose files are gone from disk; by size."""
    if not sizes:
        return {}
    folders: dict[str, bool] = {}  # a missing folder (an unplugged drive) answers for all its files at once
    gone: dict[int, list[FileRow]] = {}
    for row in store.ok_files_with_sizes(sizes):
        if not row.hash or any(is_within(row.path, root) for root in roots):
            continue
        folder = os.path.dirname(row.path)
        if folder not in folders:
            folders[folder] = os.path.isdir(folder)
        if not folders[folder] or not os.path.exists(row.path):
            gone.setdefault(row.size, []).append(row)
    return gone


EMPTY_ROOT_KEPT = (
    "is empty, but the index holds photos there (an unmounted drive?): they are kept; 'umsearch forget' drops them"
)


def hold_empty_roots(plan: Plan, roots: Sequence[str], devices: Mapping[str, int | None]) -> list[str]:
    """Keep the photos of a root that is now an empty folder on another device than the one it was recorded on:
    the mount point of an unmounted drive looks exactly like that, and taking it for 'everything was deleted'
    would throw away the whole drive's index (hours of embedding). A root emptied on its own device (the photos
    really deleted) is not held. Returns the roots held; their rows stay until the drive is back or
    `umsearch forget` drops them."""
    if not plan.removals:
        return []
    held = []
    for root in roots:
        if not is_unmounted(root, devices.get(root)):
            continue
        below = [row for row in plan.removals if is_within(row.path, root)]
        if below:
            held.append(root)
            plan.removals = [row for row in plan.removals if not is_within(row.path, root)]
    return held


def is_unmounted(root: str, recorded_device: int | None) -> bool:
    """An empty folder on another device than the root was recorded on: a mount point with nothing mounted."""
    if recorded_device is None or not is_empty_folder(root):
        return False
    try:
        return os.stat(root).st_dev != recorded_device
    except OSError:
        return False


def is_empty_folder(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:  # not a folder, or gone
        return False


def _find_moved_source(item: FoundFile, candidates: list[FileRow], taken: set[int]) -> FileRow | None:
    candidates = [row for row in candidates if row.id not in taken]
    if not candidates:
        return None
    try:
        digest = content_hash(item.path)
    except OSError:
        return None
    return next((row for row in candidates if row.hash == digest), None)


def outermost_paths(paths: Iterable[str]) -> list[str]:
    """The paths that are not below another of them: a folder's scan already covers what is inside it."""
    unique = set(paths)
    kept = []
    for path in unique:
        child, parent = path, os.path.dirname(path)
        while parent != child and parent not in unique:  # walk up: O(depth), not O(number of paths)
            child, parent = parent, os.path.dirname(parent)
        if parent == child:  # reached the top without meeting another given path
            kept.append(path)
    return sorted(kept)


def found_in_scope(scope: Sequence[str], excludes: Sequence[str] = ()) -> Iterator[FoundFile]:
    """The candidate photos at or below each path; a single file is judged by its name, as a scan would."""
    import stat

    from .scan import is_candidate_name, is_excluded, mtime_ns_of, raw_has_jpeg_sibling

    folders = []
    for path in scope:
        try:
            info = os.stat(path)
        except OSError:
            continue  # gone: whatever the index holds there is planned away
        if stat.S_ISDIR(info.st_mode):
            folders.append(path)
        elif (
            stat.S_ISREG(info.st_mode)
            and is_candidate_name(os.path.basename(path))
            and not (excludes and is_excluded(path, excludes))
            and not raw_has_jpeg_sibling(path)  # the same rule as a folder scan
        ):
            yield FoundFile(path, info.st_size, mtime_ns_of(info))
    if folders:
        yield from scan(folders, excludes)
