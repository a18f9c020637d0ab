"""Time until the newest photos of a large first index are searchable: newest first against folder order.

Writes a tree of `--photos` small JPEGs (default 10,000) in yearly/monthly folders whose file times are
spread over ten years but whose names and folders do not follow their dates (imported cameras, renamed
folders: the usual mess), then indexes it twice through the real Indexer, side by side:

* newest first (what umsearch does): jobs ordered by file time, newest first;
* folder order (the old behaviour): jobs in scan order.

For each, the time until the newest `--newest` photos (default 1,000) are all in the index, and the whole
run. The model is the tiny random one (the pipeline's own time); the line after the table extrapolates to
the full-size GME-2B with a measured seconds-per-photo figure (`--photo-seconds`, from cpu_paths.py).

Example:
    python benchmarks/newest_first.py --photos 10000 --newest 1000 --photo-seconds 4.3
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from embed_throughput import machine_line  # noqa: E402

YEAR_NS = 365 * 86_400 * 10**9


class Timeline:
    """A Progress that records when each stored photo was counted (photos are stored in job order)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.marks: list[tuple[float, int]] = []
        self.done = 0

    def start(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        self.done += count
        self.marks.append((time.monotonic() - self.started, self.done))

    def note(self, text: str | None) -> None:
        pass

    def finish(self) -> None:
        pass

    def time_of(self, position: int) -> float:
        """Seconds until the photo stored `position`-th (1-based) was in the index."""
        for seconds, done in self.marks:
            if done >= position:
                return seconds
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--newest", type=int, default=1_000)
    parser.add_argument("--photo-seconds", type=float, default=None, help="measured 2B seconds per photo")
    args = parser.parse_args()

    from PIL import Image

    from umsearch import planning
    from umsearch.devmodel import build_model_dir
    from umsearch.embed import load_embedder
    from umsearch.index import Indexer
    from umsearch.store import Store

    print(machine_line(), flush=True)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = build_model_dir(tmp_path / "model", "tiny")
        embedder = load_embedder(str(model_dir), device="cpu", quant="none", min_image_tokens=4, max_image_tokens=16)
        root = tmp_path / "Pictures"
        now = time.time_ns()
        mtimes: dict[str, int] = {}
        for i in range(args.photos):
            folder = root / f"{2015 + rng.randrange(10)}" / f"{rng.randrange(1, 13):02d}"  # names say nothing
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"IMG_{rng.randrange(10**6):06d}_{i}.jpg"
            shade = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
            Image.new("RGB", (160, 120), shade).save(path, quality=80)
            mtime = now - rng.randrange(10 * YEAR_NS)
            os.utime(path, ns=(mtime, mtime))
            mtimes[str(path)] = mtime
        newest = set(sorted(mtimes, key=mtimes.get, reverse=True)[: args.newest])
        print(f"{args.photos} photos written", flush=True)

        # Warm-up (first model calls, allocator), so that neither order pays for it.
        with Store.open(tmp_path / "warm.db") as store:
            warm = next(root.iterdir())
            Indexer(store, lambda: embedder, max_pixels=16 * 784, image_budget=(4, 16)).index([str(warm)])
        results = {}
        for label in ("newest first", "folder order"):
            original = planning.newest_first
            if label == "folder order":
                planning.newest_first = lambda jobs: jobs  # the scan's order, as before
            try:
                timeline = Timeline()
                with Store.open(tmp_path / f"{label}.db") as store:
                    indexer = Indexer(
                        store,
                        lambda: embedder,
                        max_pixels=16 * 784,
                        batch_size=8,
                        progress=timeline,
                        image_budget=(4, 16),
                    )
                    summary = indexer.index([str(root)])
                    order = [row.path for row in sorted(store.iter_files([str(root)]), key=lambda r: r.id)]
            finally:
                planning.newest_first = original
            positions = [i + 1 for i, path in enumerate(order) if path in newest]
            last = max(positions)
            results[label] = (timeline.time_of(last), last, timeline.marks[-1][0], summary.added)
            print(label, results[label], flush=True)

    print()
    print(f"| order | newest {args.newest:,} searchable after | (photos embedded by then) | whole run | load avg |")
    print("|---|---|---|---|---|")
    for label, (seconds, last, total, added) in results.items():
        print(f"| {label} | {seconds:.0f} s | {last:,} | {total:.0f} s ({added:,} photos) | {os.getloadavg()[0]:.1f} |")
    if args.photo_seconds:
        print()
        for label, (_, last, _, _) in results.items():
            hours = last * args.photo_seconds / 3600
            print(
                f"GME-2B at {args.photo_seconds} s per photo, {label}: newest {args.newest:,} after about {hours:.1f} h"
            )


if __name__ == "__main__":
    main()
