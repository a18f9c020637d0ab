"""How fast does the web gallery feel? Results on screen after Enter, thumbnail latency, scrolling 1,000 results.

Run: PYTHONPATH=. python benchmarks/web_gallery.py [--photos 1000] [--size 2400x1600]

Builds the tiny random GME model (so figures measure the gallery, not the model), N real JPEGs (landscape-
like pictures at --size, like camera photos but smaller) and an index of them with random unit vectors
(the real Store), then serves the real gallery (umsearch.web on uvicorn, loopback) to Debian's chromium
driven by Playwright, and measures side by side in the same run:

1. Enter → 20 thumbnails decoded on screen, for new text queries (the tiny model embeds each one), with
   thumbnails not yet made (cold) and made (cached); and the plain alternative: the same grid showing the
   original files (what a gallery without thumbnails would do).
2. One thumbnail over HTTP (keep-alive, as the browser does): cached, vs. made on every request (no cache),
   vs. the original file.
3. Scrolling through 1,000 results: frame intervals (requestAnimationFrame) while the page scrolls to the
   end, and how long until all 1,000 tiles are in the page.

Targets (issue 12): 20 results with thumbnails ≤ 1 s after Enter; a cached thumbnail ≤ 20 ms; smooth
scrolling through 1,000 results.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.web_support import scene
from umsearch.devmodel import build_model_dir
from umsearch.embed import load_embedder
from umsearch.session import Session
from umsearch.store import IndexSettings, Store
from umsearch.web.server import GalleryServer
from umsearch.web.thumbs import render

QUERIES = [
    "a lake at dusk",
    "mountains under the night sky",
    "a sunny meadow",
    "orange sunset over hills",
    "hazy morning",
    "moon over water",
    "green valley",
    "blue sky and sun",
    "dark ridge at night",
    "pale horizon",
]


def step(what: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def with_grain(img, seed: int):
    """Sensor-like noise, so the JPEGs weigh what camera photos of this size weigh."""
    from PIL import Image

    pixels = np.asarray(img, dtype=np.int16)
    noise = np.random.default_rng(seed).normal(0, 9, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def make_library(root: Path, count: int, size: tuple[int, int], model_dir: Path, dim: int) -> Path:
    rng = np.random.default_rng(0)
    db = root / "index.db"
    store = Store.open(db)
    store.bind(IndexSettings(str(model_dir), dim, 256, 1280))
    distinct = [with_grain(scene(i, (480, 320)).resize(size), i) for i in range(40)]
    with store.transaction():
        for i in range(count):
            path = root / "photos" / f"{i // 250:02d}" / f"IMG_{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            distinct[i % len(distinct)].save(path, quality=88)
            vector = rng.standard_normal(dim).astype(np.float32)
            stat = path.stat()
            store.put_file(
                str(path),
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                digest=f"{i:032x}",
                vector=vector / np.linalg.norm(vector),
                width=size[0],
                height=size[1],
            )
    store.close()
    return db


def http_get(conn: http.client.HTTPConnection, path: str, cookie: str) -> bytes:
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (path, response.status)
    return body


def thumbnail_latency(server: GalleryServer, ids: list[int], db: Path) -> dict[str, list[float]]:
    cookie = f"umsearch-{server.port}={server.token}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    http_get(conn, "/api/status", cookie)
    timings: dict[str, list[float]] = {
        "cached 256": [],
        "cached 1024": [],
        "original file": [],
        "no cache (render)": [],
    }
    for file_id in ids[:20]:
        http_get(conn, f"/api/thumb/{file_id}/256", cookie)
        http_get(conn, f"/api/thumb/{file_id}/1024", cookie)
    for _ in range(10):
        for file_id in ids[:20]:
            for label, path in (
                ("cached 256", f"/api/thumb/{file_id}/256"),
                ("cached 1024", f"/api/thumb/{file_id}/1024"),
                ("original file", f"/api/original/{file_id}"),
            ):
                start = time.perf_counter()
                http_get(conn, path, cookie)
                timings[label].append(time.perf_counter() - start)
    conn.close()
    with Store.open(db, create=False) as store:
        rows = store.files_by_id(ids[:20])
    for file_id in ids[:20]:  # what serving without a cache costs: decode + resize + encode per request
        start = time.perf_counter()
        import io

        render(rows[file_id].path, 256).save(io.BytesIO(), "JPEG", quality=78)
        timings["no cache (render)"].append(time.perf_counter() - start)
    return timings


def enter_to_thumbnails(page, query: str, *, originals: bool = False) -> float:
    """Seconds from Enter to 20 tiles whose images are decoded (naturalWidth > 0)."""
    page.fill("#q", query)
    if originals:  # the plain alternative: the grid loads each original file instead of its thumbnail
        page.evaluate("() => { window.__originals = true; }")
    start = time.perf_counter()
    page.press("#q", "Enter")
    page.wait_for_function(
        """() => {
            const info = document.querySelector('#info').textContent;
            if (!info.startsWith('Best matches')) return false;
            const imgs = [...document.querySelectorAll('#grid .tile img')].slice(0, 20);
            if (window.__originals) for (const img of imgs) {
                if (!img.dataset.swapped) { img.dataset.swapped = 1; img.classList.remove('loaded');
                    img.src = img.src.replace(/thumb\\/(\\d+)\\/256/, 'original/$1'); }
            }
            return imgs.length === 20 && imgs.every((img) => img.complete && img.naturalWidth > 0
                && (!window.__originals || img.src.includes('/original/')));
        }""",
        polling="raf",
        timeout=120_000,
    )
    return time.perf_counter() - start


def scroll_through(page, total: int) -> dict[str, float]:
    """Scroll to the end of `total` results in steps, recording frame intervals."""
    page.evaluate(
        """() => { window.__frames = []; let last = performance.now();
            const tick = (now) => { window.__frames.push(now - last); last = now;
                if (!window.__stopFrames) requestAnimationFrame(tick); };
            window.__stopFrames = false; requestAnimationFrame(tick); }"""
    )
    start = time.perf_counter()
    count, grew = 0, start
    while count < total and time.perf_counter() - grew < 10:  # on until every result is in (or none comes)
        page.mouse.wheel(0, 900)
        page.wait_for_timeout(16)
        now = page.evaluate("() => document.querySelectorAll('#grid .tile').length")
        if now > count:
            count, grew = now, time.perf_counter()
    all_in = grew - start
    for _ in range(30):  # on to the very end
        page.mouse.wheel(0, 900)
        page.wait_for_timeout(16)
    page.evaluate("() => { window.__stopFrames = true; }")
    frames = page.evaluate("() => window.__frames")[1:]
    return {
        "tiles": page.evaluate("() => document.querySelectorAll('#grid .tile').length"),
        "seconds_until_all_tiles": all_in,
        "frames": len(frames),
        "frame_p50_ms": statistics.median(frames),
        "frame_p95_ms": pct(frames, 95),
        "frames_over_50ms": sum(1 for f in frames if f > 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--size", default="2400x1600")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        model_dir = build_model_dir(root / "model", "tiny")
        embedder = load_embedder(str(model_dir), device="cpu", quant="none")
        dim = int(embedder.info.dim)
        db = make_library(root, args.photos, size, model_dir, dim)
        photo_bytes = statistics.mean(p.stat().st_size for p in (root / "photos").rglob("*.jpg"))
        session = Session(Store.open(db), embedder_factory=lambda *a: embedder)
        server = GalleryServer(session).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                context = browser.new_context(viewport={"width": 1280, "height": 820})
                page = context.new_page()
                page.goto(server.url)
                page.wait_for_selector("#grid .tile img.loaded")
                step("first page")
                cold = [enter_to_thumbnails(page, q) for q in QUERIES[:5]]
                cached = [enter_to_thumbnails(page, q + " again") for q in QUERIES[:5]]
                repeat = [enter_to_thumbnails(page, q) for q in QUERIES[:5]]
                step("searched")
                originals_context = browser.new_context(viewport={"width": 1280, "height": 820})
                plain = originals_context.new_page()
                plain.goto(server.url)
                plain.wait_for_selector("#grid .tile img.loaded")
                originals = [enter_to_thumbnails(plain, q + " plain", originals=True) for q in QUERIES[5:]]
                originals_context.close()
                hits = page.evaluate(
                    "async () => (await (await fetch('/api/search?q=a%20lake%20at%20dusk&limit=40')).json()).hits.map(h => h.id)"
                )
                step("originals")
                thumbs = thumbnail_latency(server, hits, db)
                step("thumbnails")
                page.fill("#q", "any photo at all")
                page.press("#q", "Enter")
                page.wait_for_function("() => document.querySelector('#info').textContent.startsWith('Best')")
                scroll_cold = scroll_through(page, min(args.photos, 1000))
                page.fill("#q", "any photo at all")
                page.evaluate("() => window.scrollTo(0, 0)")
                page.press("#q", "Enter")
                page.wait_for_function("() => document.querySelector('#info').textContent.startsWith('Best')")
                step("scrolled once")
                scroll_warm = scroll_through(page, min(args.photos, 1000))
                browser.close()
        finally:
            server.stop()
            session.close()
        files = list((root / "index.db.thumbs").rglob("*.jpg"))
        cache_bytes = sum(p.stat().st_size for p in files)
    print(f"load average after: {load()}")
    print(f"\nlibrary: {args.photos} JPEGs at {size[0]}×{size[1]} (mean {photo_bytes / 1e6:.2f} MB); tiny model")
    print("\n1. Enter → 20 thumbnails decoded on screen (s), new text query each time (the model embeds it)")
    for label, values in (
        ("thumbnails not yet made (cold)", cold),
        ("new words, other photos", cached),
        ("thumbnails cached (query cached too)", repeat),
        ("plain alternative: original files", originals),
    ):
        print(f"   {label:<40} p50 {statistics.median(values):.3f}  max {max(values):.3f}")
    print("\n2. One photo over HTTP, keep-alive (ms)")
    for label, values in thumbs.items():
        print(f"   {label:<40} p50 {statistics.median(values) * 1000:6.1f}  p95 {pct(values, 95) * 1000:6.1f}")
    print("\n3. Scrolling through the results (frame intervals while scrolling, ms)")
    for label, found in (("thumbnails made while scrolling", scroll_cold), ("thumbnails cached", scroll_warm)):
        print(
            f"   {label:<34} tiles {found['tiles']}, all in page after {found['seconds_until_all_tiles']:.1f} s; "
            f"frames p50 {found['frame_p50_ms']:.1f} p95 {found['frame_p95_ms']:.1f}, "
            f"{found['frames_over_50ms']} of {found['frames']} over 50 ms"
        )
    print(
        f"\nthumbnail cache: {len(files)} files, {cache_bytes / 1e6:.1f} MB ({cache_bytes / max(1, len(files)) / 1e3:.1f} KB each)"
    )


if __name__ == "__main__":
    main()
