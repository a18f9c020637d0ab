"""The library's folders as the user sees them: which indexed folders are gone (an unplugged drive, a library moved
to another disk), for `status`, and what `forget` would drop."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .planning import is_unmounted, outermost_paths
from .scan import is_within
from .store import Store

NOT_FOUND = "not found"
EMPTY = "empty"


@dataclass(frozen=True)
class GoneFolder:
    path: str
    photos: int  # photos with a vector below it
    failed: int  # files recorded as failed below it
    reason: str  # NOT_FOUND or EMPTY (a mount point with nothing mounted looks empty)

    def as_dict(self) -> dict:
        return {"path": self.path, "photos": self.photos, "failed": self.failed, "reason": self.reason}


def gone_folders(store: Store) -> list[GoneFolder]:
    """Recorded roots that are missing or empty while the index holds files there; and, for files indexed
    before roots were recorded, the outermost missing folder above them."""
    devices = store.root_devices()
    recorded = list(devices)
    candidates: dict[str, str] = {}
    for root in outermost_paths(recorded):
        if not os.path.exists(root):
            candidates[root] = NOT_FOUND
        elif is_unmounted(root, devices[root]):
            candidates[root] = EMPTY
    for folder in _missing_unrecorded_folders(store, recorded):
        candidates.setdefault(folder, NOT_FOUND)
    gone = []
    for path in outermost_paths(candidates):
        indexed, failed = store.count_below(path)
        if indexed or failed:
            gone.append(GoneFolder(path, indexed, failed, candidates[path]))
    return gone


def _missing_unrecorded_folders(store: Store, recorded: list[str]) -> set[str]:
    tops: set[str] = set()
    for folder in store.indexed_folders():
        if any(is_within(folder, root) for root in recorded) or os.path.isdir(folder):
            continue
        top = folder
        while (parent := os.path.dirname(top)) != top and not os.path.exists(parent):
            top = parent
        tops.add(top)
    return tops


def describe_counts(indexed: int, failed: int) -> str:
    """'1234 photos', '1 photo and 3 failed files'."""
    parts = []
    if indexed or not failed:
        parts.append(f"{indexed} photo" + ("" if indexed == 1 else "s"))
    if failed:
        parts.append(f"{failed} failed file" + ("" if failed == 1 else "s"))
    return " and ".join(parts)


def describe_gone(folder: GoneFolder) -> str:
    """One line for `status`."""
    state = "folder not found" if folder.reason == NOT_FOUND else "folder empty"
    return (
        f"{folder.path}: {describe_counts(folder.photos, folder.failed)}, {state} (an unplugged drive? "
        f"'umsearch forget {folder.path}' drops them)"
    )
