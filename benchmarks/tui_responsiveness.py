"""Does the TUI stay responsive? Event-loop stalls and time-to-results, with the app driven headless.

Run: python benchmarks/tui_responsiveness.py [N]   (default 500 photos)

Stalls count the whole time the UI thread did not get to run, so on a loaded machine they include time the
operating system gave to other processes; `ui_time_per_result_list` is the UI thread's own work to put a
new result list on screen (rows reused, thumbnails from the cache).

Builds the tiny random GME model (so the figures measure the app, not the model), N real 640×480 JPEGs
and an index of them (the real Store; vectors of the model's dimension), then drives the real app with
Textual's Pilot at 80×24. A 10 ms timer on the UI thread records how late it fires: that lateness is how
long the UI was frozen. Targets: the UI never stalls more than 100 ms while the model loads or a search,
"more like this" or thumbnail decoding runs; results on screen within 0.5 s of Enter with the tiny model.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from umsearch.devmodel import build_model_dir
from umsearch.embed import load_embedder
from umsearch.store import IndexSettings, Store

BUDGET = (4, 64)


def make_library(root: Path, count: int, dim: int) -> Path:
    rng = np.random.default_rng(0)
    db = root / "index.db"
    store = Store.open(db)
    store.bind(IndexSettings(str(root / "model"), dim, *BUDGET))
    with store.transaction():
        for i in range(count):
            path = root / "photos" / f"IMG_{i:05d}.jpg"
            path.parent.mkdir(exist_ok=True)
            pixels = rng.integers(0, 255, (480 // 16, 640 // 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((640, 480)).save(path, quality=85)
            vector = rng.standard_normal(dim).astype(np.float32)
            store.put_file(
                str(path),
                size=path.stat().st_size,
                mtime_ns=path.stat().st_mtime_ns,
                digest=str(i),
                vector=vector / np.linalg.norm(vector),
                width=640,
                height=480,
            )
    store.close()
    return db


class StallMeter:
    """How late a 10 ms UI-thread timer fires, per phase."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.gaps: list[float] = []

    def tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(max(0.0, now - self.last - 0.010))
        self.last = now

    def phase(self) -> dict[str, float]:
        self.tick()  # a stall still going on at the end of a phase counts in that phase
        gaps, self.gaps = self.gaps, []
        if not gaps:
            return {"max_ms": 0.0, "p95_ms": 0.0}
        gaps.sort()
        return {"max_ms": gaps[-1] * 1000, "p95_ms": gaps[int(0.95 * (len(gaps) - 1))] * 1000}


async def until(predicate, timeout: float = 60.0) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def drive(db: Path, model_dir: Path) -> dict[str, object]:
    from umsearch.tui.app import make_app

    def factory(model_id: str, budget: tuple[int, int]):
        return load_embedder(
            model_id, device="cpu", quant="none", min_image_tokens=budget[0], max_image_tokens=budget[1]
        )

    app = make_app(db, str(model_dir), image_mode="halfcell", embedder_factory=factory)
    meter = StallMeter()
    report: dict[str, object] = {}
    ui_work: list[float] = []
    show = app._show_results

    async def timed_show(*args):
        start = time.perf_counter()
        await show(*args)
        ui_work.append(time.perf_counter() - start)

    app._show_results = timed_show
    async with app.run_test(size=(80, 24)) as pilot:
        app.set_interval(0.010, meter.tick)
        meter.last = time.perf_counter()
        report["model_load_s"] = await until(lambda: app.service.model_loaded and app.model_state == "")
        report["stall_model_load"] = meter.phase()

        def thumbs_done() -> bool:
            rows = list(app.query_one("#results").children)
            return bool(rows) and all(row.thumb.image is not None for row in rows[:6])

        report["first_thumbnails_s"] = await until(thumbs_done)
        report["stall_thumbnails"] = meter.phase()

        await pilot.press("down")  # into the list, so "/" below means "back to the search box"
        latencies = []
        for word in [
            "red boat",
            "forest",
            "city at night",
            "a cat",
            "mountains",
            "beach",
            "snow",
            "dog",
            "car",
            "bridge",
        ]:
            await pilot.press("slash", *word)
            start = time.perf_counter()
            await pilot.press("enter")
            await until(lambda: f"“{word}”" in str(app.query_one("#message").render()))
            latencies.append(time.perf_counter() - start)
        report["text_query_s"] = {"median": statistics.median(latencies), "max": max(latencies)}
        report["stall_text_queries"] = meter.phase()

        latencies = []
        for _ in range(5):
            await pilot.press("escape", "escape", "down")
            await until(lambda: app.like is None)
            before = app.generation
            start = time.perf_counter()
            await pilot.press("s")
            await until(
                lambda: app.generation > before and "results for like" in str(app.query_one("#message").render())
            )
            latencies.append(time.perf_counter() - start)
        report["more_like_this_s"] = {"median": statistics.median(latencies), "max": max(latencies)}
        report["stall_more_like_this"] = meter.phase()
        report["ui_time_per_result_list"] = {"median": statistics.median(ui_work), "max": max(ui_work)}
        report["thumbnail_cache_entries"] = len(app.thumbs)
    return report


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_model_dir(root / "model", "tiny")
        dim = load_embedder(str(model_dir), device="cpu", quant="none").info.dim
        start = time.perf_counter()
        db = make_library(root, count, dim)
        print(f"library: {count} photos, {dim}-d vectors, built in {time.perf_counter() - start:.1f} s")
        report = asyncio.run(drive(db, model_dir))
    for key, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(
                f"{k} {v * 1000:.0f} ms" if k in ("median", "max") else f"{k} {v:.0f}" for k, v in value.items()
            )
        elif isinstance(value, float):
            value = f"{value * 1000:.0f} ms"
        print(f"{key:26} {value}")


if __name__ == "__main__":
    main()
