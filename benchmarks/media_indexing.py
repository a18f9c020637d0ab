"""What videos, screenshots and documents cost to index with a full-size model, at each quality.

    PYTHONPATH=. flock /tmp/umsearch-heavy.lock python benchmarks/media_indexing.py \\
        --model /work/models/gme-2b-f32 [--qualities fast,balanced,best] [--seconds 30] [--items video,photo,screenshot,pdf]

For each quality the model is loaded once (float32 on the CPU unless --dtype says otherwise) and each item
is indexed on its own, into a fresh index, through the real `Indexer` (decode, sampling, fitting on loader
threads, the model, one transaction): a clip of handheld footage (one shot panning over a textured scene;
30 fps, 1280x720, sampled by the default policy), a 12-megapixel 4:3 photo, a phone screenshot (1170x2532
PNG) and a one-page A4 PDF. Screenshots and documents get `settings.text_budget` of the quality's budget.

Reported per row: wall seconds, vectors stored, visual tokens per picture, seconds per picture; for the
video also seconds and frames per minute of footage (scaled from the clip), and the load average.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from video_sampling import footage, write

from umsearch.embed import load_embedder
from umsearch.index import Indexer
from umsearch.settings import QUALITY_PRESETS, max_pixels, text_budget
from umsearch.store import Store


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def make_items(work: Path, seconds: int) -> dict[str, Path]:
    from tests.media_support import write_pdf, write_screenshot
    from tests.photos import write_photo

    work.mkdir(parents=True, exist_ok=True)
    items = {
        "video": work / f"walk-{seconds}s.mp4",
        "photo": work / "photo.jpg",
        "screenshot": work / "Screenshot_20240101-101010.png",
        "pdf": work / "letter.pdf",
    }
    if not items["video"].exists():
        write(items["video"], footage("handheld walk", seconds, (1280, 720)), 30, (1280, 720))
    if not items["photo"].exists():
        write_photo(items["photo"], 7, size=(4000, 3000), quality=90)
    lines = [f"Line {i}: the Wi-Fi password is hunter{i}" for i in range(40)]
    if not items["screenshot"].exists():
        write_screenshot(items["screenshot"], lines, size=(1170, 2532))
    if not items["pdf"].exists():
        write_pdf(items["pdf"], [lines])
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--qualities", default="fast,balanced,best")
    parser.add_argument("--items", default="video,photo,screenshot,pdf")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--workdir", default="/tmp/umsearch-media-bench")
    args = parser.parse_args()
    work = Path(args.workdir)
    items = make_items(work, args.seconds)
    print(f"model {args.model}, dtype {args.dtype}, CPU; load at start {load()}", flush=True)
    print(
        "| quality | item | tokens/picture | vectors | wall s | s/picture | s per min of footage | frames per min | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for quality in args.qualities.split(","):
        budget = QUALITY_PRESETS[quality]
        started = time.perf_counter()
        embedder = load_embedder(
            args.model,
            device="cpu",
            quant="none",
            dtype=args.dtype,
            min_image_tokens=budget[0],
            max_image_tokens=budget[1],
        )
        print(f"<!-- {quality}: model loaded in {time.perf_counter() - started:.0f} s -->", flush=True)
        for name in args.items.split(","):
            path = items[name]
            db = work / f"{quality}-{name}.db"
            for stale in work.glob(f"{db.name}*"):
                stale.unlink()
            with Store.open(db) as store:
                indexer = Indexer(store, lambda: embedder, max_pixels=max_pixels(budget[1]), image_budget=budget)
                before = load()
                start = time.perf_counter()
                summary = indexer.index([str(path)])
                wall = time.perf_counter() - start
                assert summary.added == 1, summary
                vectors = store.vector_count()
                row = store.file_by_path(str(path))
            used = text_budget(*budget) if row.kind in ("screenshot", "document") else budget
            tokens = _tokens(indexer, path, used)
            per_minute = f"{wall * 60 / args.seconds:.0f}" if name == "video" else "–"
            frames = f"{vectors * 60 / args.seconds:.0f}" if name == "video" else "–"
            print(
                f"| {quality} | {name} ({row.kind}) | {tokens} | {vectors} | {wall:.1f} | {wall / vectors:.1f} | "
                f"{per_minute} | {frames} | {before}→{load()} |",
                flush=True,
            )


def _tokens(indexer: Indexer, path: Path, budget: tuple[int, int]) -> str:
    """Visual tokens of the item's first picture, as the loader fitted it."""
    from umsearch.planning import Job
    from umsearch.scan import FoundFile

    st = path.stat()
    loaded = indexer._read(Job(FoundFile(str(path), st.st_size, st.st_mtime_ns), None))
    return str(loaded.parts[0].tokens) if loaded.parts else "?"


if __name__ == "__main__":
    main()
