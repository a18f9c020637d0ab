"""Snapshot tests of the TUI's main screens at 80×24 (pytest-textual-snapshot).

Everything on screen is made deterministic: photos, their mtimes and folder, the model folder's name,
the time zone, the terminal cell size and the image renderer (coloured half blocks). After an intended
change to the look, review and update them with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from tests.tui_support import build_index, embedder_factory, fresh_dir, settle, write_photos
from umsearch.store import Store
from umsearch.tui.app import make_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]

# A fixed folder, because the preview shows full paths (a per-run tmp folder would change every snapshot).
SNAP_ROOT = Path("/tmp/umsearch-tui-snapshots")


@pytest.fixture(scope="module")
def snap_library(tiny_model_dir: Path) -> Path:
    root = fresh_dir(SNAP_ROOT)
    model = root / "tiny-gme"
    model.symlink_to(tiny_model_dir, target_is_directory=True)  # the status line shows this name
    write_photos(root / "photos")
    return build_index(root / "index.db", root / "photos", model)


@pytest.fixture(autouse=True)
def fixed_terminal(monkeypatch: pytest.MonkeyPatch):
    from textual_image import _terminal

    monkeypatch.setattr(_terminal.get_cell_size, "_result", _terminal.CellSize(10, 20), raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@functools.cache
def _embedder(model_id: str, budget: tuple[int, int], runtime=None):
    return embedder_factory(model_id, budget)


def _app(db: Path, **kwargs):
    return make_app(db, image_mode="halfcell", embedder_factory=_embedder, opener=lambda path: None, **kwargs)


def test_opening_screen_shows_recent_photos(snap_compare, snap_library: Path) -> None:
    assert snap_compare(_app(snap_library), run_before=settle)


def test_text_search_results(snap_compare, snap_library: Path) -> None:
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press(*"red boat", "enter")
        await settle(pilot)
        await pilot.press("down")
        await settle(pilot)

    assert snap_compare(_app(snap_library), run_before=run_before)


def test_more_like_this_refined_with_words(snap_compare, snap_library: Path) -> None:
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("down", "j", "s")
        await settle(pilot)
        await pilot.press(*"at night", "enter")
        await settle(pilot)

    assert snap_compare(_app(snap_library), run_before=run_before)


def test_missing_index(snap_compare, snap_library: Path) -> None:
    assert snap_compare(_app(SNAP_ROOT / "no-index.db"), run_before=settle)


def test_missing_model(snap_compare, snap_library: Path) -> None:
    copy = SNAP_ROOT / "moved-model.db"
    copy.write_bytes(snap_library.read_bytes())
    with Store.open(copy, create=False) as store:
        store.set_meta("model_id", str(SNAP_ROOT / "gone-model"))
    try:
        assert snap_compare(make_app(copy, image_mode="halfcell"), run_before=settle)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
