"""Helpers for watcher tests: compare the index with the folder, wait with deadlines, count model calls."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from umsearch.scan import scan
from umsearch.settings import max_pixels
from umsearch.store import Store

# Tiny visual budget: the watcher, not the model, is under test (the model path is still the real one).
MIN_TOKENS, MAX_TOKENS = 4, 16
MAX_PIXELS = max_pixels(MAX_TOKENS)


class CountingEmbedder:
    """The real embedder, counting how many images it was asked to embed and in how many calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.info = inner.info
        self.images = 0
        self.calls = 0

    def embed_images(self, images, batch_size: int = 8):
        self.calls += 1
        self.images += len(images)
        return self.inner.embed_images(images, batch_size=batch_size)

    def embed_prepared(self, batch):
        self.calls += 1
        self.images += len(batch["input_ids"])
        return self.inner.embed_prepared(batch)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def folder_state(root: Path) -> dict[str, tuple[int, int]]:
    return {f.path: (f.size, f.mtime_ns) for f in scan([str(root)])}


def index_state(db: Path, root: Path) -> dict[str, tuple[int, int]]:
    """What the index holds below root, read through its own connection (as a query would)."""
    with Store.open(db, create=False) as store:
        return {r.path: (r.size, r.mtime_ns) for r in store.iter_files([str(root)]) if r.status == "ok"}


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_in_step(db: Path, root: Path, timeout: float = 60.0) -> dict[str, tuple[int, int]]:
    """Wait until the index equals the folder (paths, sizes, mtimes, all embedded); fail with the difference."""
    deadline = time.monotonic() + timeout
    while True:
        disk, index = folder_state(root), index_state(db, root)
        if disk == index:
            return index
        if time.monotonic() > deadline:
            missing = sorted(set(disk) - set(index))[:5]
            extra = sorted(set(index) - set(disk))[:5]
            stale = sorted(p for p in set(disk) & set(index) if disk[p] != index[p])[:5]
            raise AssertionError(f"index never matched the folder: missing {missing}, extra {extra}, stale {stale}")
        time.sleep(0.05)


def row_ids(db: Path, root: Path) -> dict[str, int]:
    with Store.open(db, create=False) as store:
        return {r.path: r.id for r in store.iter_files([str(root)])}


def relative(state: dict[str, object], root: Path) -> set[str]:
    return {os.path.relpath(path, root) for path in state}
