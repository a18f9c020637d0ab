"""Shared set-up for the TUI tests: a real index of generated photos built with the tiny model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.photos import write_photo
from umsearch.embed import load_embedder
from umsearch.families import family_of_dir
from umsearch.index import Indexer
from umsearch.settings import max_pixels
from umsearch.store import Store

BUDGET = (4, 64)  # a small visual token budget keeps the tiny model fast
PHOTO_NAMES = ["beach.jpg", "forest.png", "city night.jpg", "cat.webp", "mountain.jpg", "boat.png"]
BASE_TIME = 1_700_000_000  # fixed mtimes: the "recent photos" order and shown dates never vary


def write_photos(folder: Path) -> list[Path]:
    paths = []
    for seed, name in enumerate(PHOTO_NAMES):
        sub = "holiday" if seed % 2 == 0 else "home"
        path = write_photo(folder / sub / name, seed=seed, size=(96 + 16 * seed, 64))
        os.utime(path, (BASE_TIME + 3600 * seed, BASE_TIME + 3600 * seed))
        paths.append(path)
    return paths


def embedder_factory(model_id: str, budget: tuple[int, int], runtime: object = None, dim: int | None = None):
    return load_embedder(
        model_id,
        device="cpu",
        quant="none",
        dtype="float32",
        min_image_tokens=budget[0],
        max_image_tokens=budget[1],
        dim=dim,
    )


def build_index(db: Path, photos: Path, model_dir: Path) -> Path:
    """Index `photos` into `db` with the real Indexer and the tiny model, as `umsearch index` would."""
    store = Store.open(db)
    try:
        indexer = Indexer(
            store,
            lambda: embedder_factory(str(model_dir), BUDGET),
            max_pixels=max_pixels(BUDGET[1]),
            workers=1,
            family=family_of_dir(model_dir),
        )
        summary = indexer.index([str(photos)])
        assert summary.failed == 0
    finally:
        store.close()
    return db


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def screen_text(app) -> str:
    """The app's screen as plain text (what a person would read), for assertions and debugging."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def settle(pilot, rounds: int = 8) -> None:
    """Wait until no worker runs and the callbacks they queued have been handled."""
    from textual.worker import WorkerCancelled

    app = pilot.app
    for _ in range(rounds):
        for worker in list(app.workers):
            try:
                await worker.wait()
            except WorkerCancelled:  # replaced by a newer search: what exclusive workers are for
                pass
        await pilot.pause(0.05)
        if not any(worker.is_running for worker in app.workers):
            return


async def type_and_wait(pilot, text: str, *, debounce_s: float = 0.5) -> None:
    """Type like a person (no Enter) and wait past the as-you-type pause for the search to land."""
    await pilot.press(*text)
    await pilot.pause(debounce_s)
    await settle(pilot)


def run_async(test):
    """Run an async test body on a fresh event loop (no pytest asyncio plugin needed)."""
    import asyncio
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper
