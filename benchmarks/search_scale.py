"""Search at scale: the real query path on 100k / 1M synthetic 1536-d vectors, next to a numpy scan.

    PYTHONPATH=. python benchmarks/search_scale.py --sizes 100000 1000000 --queries 50

Builds (once, cached under .bench/) an index through the real Store API and a float32 copy of the same
vectors for numpy, then times `search.search` (the CLI's path after the text is encoded: sign-bit scan
in sqlite-vec with the filters inside it, then exact rescoring) against an exact numpy matmul scan,
reports p50/p95, recall@20 against exact search, DB bytes per photo, and a selective filter (1% of
photos) that must still fill the page.

Why clustered vectors: real embeddings are not uniform noise; photos fall into many tight-ish groups
(places, people, subjects), and a query's true neighbours share most signs with it. Uniform random
vectors have no near neighbours at all (all cosines ~0), so any quantised search "fails" on them and
recall would say nothing about photos. Here each vector is topic + event + noise (200 topics and 5000
events per 100k photos): a query's top 20 has cosines ~0.6-0.8 and the next hundreds follow closely
(~0.6), a continuum that makes the shortlist earn its recall. A flat "centre + noise" set is too easy
(each cluster is an island: recall 1.0 with any shortlist), so it is not used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from umsearch import store as store_module
from umsearch.filters import Filters
from umsearch.metadata import PhotoMeta
from umsearch.search import search
from umsearch.store import IndexSettings, Store, bitcache

DIM = 1536
TOPICS_PER_100K, EVENTS_PER_100K = 200, 5000
RARE_CAMERA = "Leica M11"  # 1% of photos: the selective filter
BATCH = 10_000
BENCH = Path(".bench")
SCHEMA = "m003"  # part of the cache's file names: an index from an older schema is rebuilt, not reused


def make_batch(start: int, count: int, size: int, seed: int = 7) -> np.ndarray:
    """Photos = topic + event + own noise (a hierarchy, like subjects > shoots > single frames)."""
    topics_n = max(5, TOPICS_PER_100K * size // 100_000)
    events_n = max(10, EVENTS_PER_100K * size // 100_000)
    fixed = np.random.default_rng(seed)
    topics = fixed.standard_normal((topics_n, DIM)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    events = fixed.standard_normal((events_n, DIM)).astype(np.float32)
    events /= np.linalg.norm(events, axis=1, keepdims=True)
    event_topic = fixed.integers(0, topics_n, events_n)
    rng = np.random.default_rng(seed * 1_000_003 + start)
    event = rng.integers(0, events_n, count)
    noise = rng.standard_normal((count, DIM)).astype(np.float32) * (0.6 / np.sqrt(DIM))
    vectors = topics[event_topic[event]] + 0.6 * events[event] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def build(size: int) -> tuple[Path, Path]:
    """The index and a raw float32 copy of its vectors (row i = file id i + 1), built once."""
    BENCH.mkdir(exist_ok=True)
    name = f"scale-{size}-{SCHEMA}"
    db_path, raw_path = BENCH / f"{name}.db", BENCH / f"{name}.f32"
    done = BENCH / f"{name}.done"
    if done.exists():
        return db_path, raw_path
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), raw_path):
        stale.unlink(missing_ok=True)
    raw = np.lib.format.open_memmap(raw_path, mode="w+", dtype=np.float32, shape=(size, DIM))
    started = time.perf_counter()
    with Store.open(db_path) as store:
        store.bind(IndexSettings("bench/synthetic", DIM, 256, 1280))
        store.db.execute("PRAGMA synchronous = OFF")  # a throwaway benchmark file: no need to fsync
        for start in range(0, size, BATCH):
            count = min(BATCH, size - start)
            vectors = make_batch(start, count, size)
            raw[start : start + count] = vectors
            with store.transaction():
                for i in range(count):
                    n = start + i
                    meta = PhotoMeta(
                        taken=1_500_000_000 + n * 300,
                        taken_source="exif",
                        camera=RARE_CAMERA if n % 100 == 7 else f"Camera {n % 20}",
                        place=f"Town {n % 500}, Region, Country",
                    )
                    store.put_file(
                        f"/photos/{n % 1000:04d}/img_{n:07d}.jpg",
                        size=1000 + n,
                        mtime_ns=n,
                        digest=f"{n:032x}",
                        vector=vectors[i],
                        meta=meta,
                    )
            elapsed = time.perf_counter() - started
            print(f"  built {start + count:,}/{size:,} ({(start + count) / elapsed:,.0f} photos/s)", flush=True)
    raw.flush()
    del raw
    done.write_text("ok\n")
    return db_path, raw_path


def queries(size: int, count: int) -> np.ndarray:
    """Query vectors from the same distribution as the photos (new samples, not copies of them)."""
    return make_batch(10**9, count, size)


def numpy_topk(raw: np.ndarray, query: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    best_ids = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    for start in range(0, len(raw), chunk):
        scores = raw[start : start + chunk] @ query
        top = np.argpartition(-scores, k)[:k]
        best_ids = np.concatenate([best_ids, top + start])
        best_scores = np.concatenate([best_scores, scores[top]])
    order = np.argsort(-best_scores)[:k]
    return best_ids[order] + 1  # file ids start at 1


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(size: int, n_queries: int, k: int, shortlists: list[int]) -> None:
    db_path, raw_path = build(size)
    # In memory as a numpy search would hold them; above 200k memory-mapped instead (6 GB at 1M would
    # crowd out the other work on a shared 24 GB machine; the page cache then holds what fits).
    raw = np.load(raw_path, mmap_mode="r" if size > 200_000 else None)
    qs = queries(size, n_queries)
    with Store.open(db_path, create=False) as store:
        db_bytes = store.size_bytes()
        print(
            f"\n== {size:,} photos: DB {db_bytes / 2**30:.2f} GiB, {db_bytes / size:,.0f} bytes/photo "
            f"(float vector alone: {DIM * 4} B)"
        )
        numpy_times, exact = [], []
        numpy_topk(raw, qs[0], k)  # warm the page cache
        for q in qs:
            t = time.perf_counter()
            exact.append(numpy_topk(raw, q, k))
            numpy_times.append(time.perf_counter() - t)
        print(
            f"numpy exact scan        p50 {pct(numpy_times, 0.5) * 1e3:7.1f} ms  p95 {pct(numpy_times, 0.95) * 1e3:7.1f} ms"
        )
        for shortlist in shortlists:
            store_module.RESCORE_SHORTLIST = shortlist
            search(store, qs[0], k)  # warm
            times, recalls = [], []
            for q, truth in zip(qs, exact):
                t = time.perf_counter()
                hits = search(store, q, k)
                times.append(time.perf_counter() - t)
                recalls.append(len({h.file_id for h in hits} & set(truth.tolist())) / k)
            print(
                f"umsearch shortlist {shortlist:4d}  p50 {pct(times, 0.5) * 1e3:7.1f} ms  p95 {pct(times, 0.95) * 1e3:7.1f} ms"
                f"  recall@{k} mean {statistics.mean(recalls):.4f} min {min(recalls):.2f}"
            )
        store_module.RESCORE_SHORTLIST = shortlists[0]
        bits = store._bit_matrix()
        print(
            f"bit matrix: {bits.words.nbytes / len(bits.ids):.0f} B/photo in memory "
            f"(+ {bitcache.cache_path(store.path).stat().st_size / size:.0f} B/photo side file)"
        )
        rare = Filters(camera="Leica")
        times, full = [], 0
        for q in qs:
            t = time.perf_counter()
            hits = search(store, q, k, rare)
            times.append(time.perf_counter() - t)
            full += len(hits) == k and all(h.camera == RARE_CAMERA for h in hits)
        print(
            f"filter camera:Leica (1%) p50 {pct(times, 0.5) * 1e3:7.1f} ms  p95 {pct(times, 0.95) * 1e3:7.1f} ms"
            f"  full pages of matching photos: {full}/{len(qs)}"
        )
        dated = Filters(after=1_500_000_000 + size * 150, folders=("/photos/0001", "/photos/0002"))
        times, full = [], 0
        for q in qs:
            t = time.perf_counter()
            hits = search(store, q, k, dated)
            times.append(time.perf_counter() - t)
            full += len(hits) == k
        print(f"filter in:2 folders + after: (0.1%) p50 {pct(times, 0.5) * 1e3:6.1f} ms  full pages: {full}/{len(qs)}")
        broad = Filters(after=1_500_000_000 + size * 30, types=("jpg",))  # 90% of photos pass
        times, recalls = [], []
        for q in qs:
            t = time.perf_counter()
            hits = search(store, q, k, broad)
            times.append(time.perf_counter() - t)
            scores = (
                raw @ q
                if size <= 200_000
                else np.concatenate([raw[s : s + 200_000] @ q for s in range(0, size, 200_000)])
            )
            scores[: size // 10] = -2  # the photos the date filter excludes (ids 1..size/10 are the oldest)
            truth = set((np.argpartition(-scores, k)[:k] + 1).tolist())
            recalls.append(len({h.file_id for h in hits} & truth) / k)
        print(
            f"filter after: (90% pass)  p50 {pct(times, 0.5) * 1e3:7.1f} ms  p95 {pct(times, 0.95) * 1e3:7.1f} ms"
            f"  recall@{k} mean {statistics.mean(recalls):.4f} min {min(recalls):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--shortlists", type=int, nargs="+", default=[store_module.RESCORE_SHORTLIST, 200, 800])
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores; load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"
    )
    for size in args.sizes:
        run(size, args.queries, args.k, args.shortlists)
    print(f"\nload after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
