"""How quickly the watcher makes a new photo searchable, and how fast it absorbs a burst.

Run: python benchmarks/watch_latency.py [--files 40] [--burst 1000] [--quiet-period 1.0]

Uses the tiny random GME model (built on the fly, through the real loading path) with a small visual budget,
so the figures measure the watcher (events, debounce, stability check, hashing, decoding, SQLite), not the
model. The watcher runs with the CLI's defaults on its own thread; a second SQLite connection polls every
2 ms for the photo's row, as a query in another process would see it.

- latency: each photo is written (PIL save: open, write, close), then we time from the close to the moment
  its vector is committed, one photo at a time, with a pause between photos.
- burst: N distinct small PNGs written as fast as possible into 10 folders; time from the first write to
  all N searchable, and from the last close to all N searchable.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.photos import picture
from umsearch.devmodel import build_model_dir
from umsearch.embed import load_embedder
from umsearch.index import Indexer
from umsearch.settings import max_pixels
from umsearch.store import Store
from umsearch.watch import Watcher, WatchOptions

MIN_TOKENS, MAX_TOKENS = 4, 16


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_rows(reader: Store, root: Path, count: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = reader.db.execute(
            "SELECT count(*) FROM files WHERE status = 'ok' AND path >= ? AND path < ?",
            (str(root) + os.sep, str(root) + os.sep + "\U0010ffff"),
        ).fetchone()
        if row[0] >= count:
            return time.perf_counter()
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {count} photos under {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="photos for the latency figure")
    parser.add_argument("--burst", type=int, default=1000, help="photos in the burst")
    parser.add_argument("--quiet-period", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = build_model_dir(tmp_path / "model", "tiny")
        embedder = load_embedder(
            str(model_dir), device="cpu", quant="none", min_image_tokens=MIN_TOKENS, max_image_tokens=MAX_TOKENS
        )
        photos, db = tmp_path / "photos", tmp_path / "index.db"
        (photos / "single").mkdir(parents=True)
        store = Store.open(db)
        indexer = Indexer(store, lambda: embedder, max_pixels=max_pixels(MAX_TOKENS), batch_size=8)
        watcher = Watcher(indexer, [str(photos)], WatchOptions(quiet_period=args.quiet_period))
        watcher.start()
        while not watcher.caught_up.is_set():
            time.sleep(0.01)
        reader = Store.open(db)
        print(f"load average before: {load()}")

        images = [picture(10_000 + i, (64, 48)) for i in range(args.files)]
        latencies = []
        for i, image in enumerate(images):
            image.save(photos / "single" / f"photo{i:03d}.jpg", quality=90)
            closed = time.perf_counter()
            searchable = wait_rows(reader, photos / "single", i + 1)
            latencies.append(searchable - closed)
            time.sleep(0.3)
        print(
            f"close -> searchable over {len(latencies)} photos: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )

        burst = [picture(i, (24, 16)) for i in range(args.burst)]
        started = time.perf_counter()
        for i, image in enumerate(burst):
            folder = photos / "burst" / f"roll{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"IMG_{i:05d}.png")
        last_close = time.perf_counter()
        done = wait_rows(reader, photos / "burst", args.burst)
        print(
            f"burst of {args.burst}: written in {last_close - started:.2f} s, all searchable "
            f"{done - started:.2f} s after the first write ({args.burst / (done - started):.0f} photos/s), "
            f"{done - last_close:.2f} s after the last close; {watcher.rounds} reconcile steps in all"
        )
        print(f"load average after: {load()}")
        watcher.stop()
        reader.close()
        store.close()


if __name__ == "__main__":
    main()
