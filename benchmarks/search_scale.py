"""Search at scale: the real query path on 100k / 1M synthetic 1536-d vectors, next to an exact numpy scan.

    PYTHONPATH=. python benchmarks/search_scale.py --sizes 100000 1000000 --queries 50
    PYTHONPATH=. python benchmarks/search_scale.py --sizes 50000 --distributions anisotropic

For each distribution and size it builds (once, cached under .bench/) an index through the real Store API
and a float32 copy of the same vectors, then times `search.search` — the CLI's path after the text is
encoded — unfiltered and with four filters (selective, very selective, broad, seasonal), and reports
p50/p95 and recall@20 (mean and worst query) against exact search, in the same run as an exact numpy scan.

Distributions:

* clustered: photos = topic + event + own noise (200 topics and 5000 events per 100k photos), centred on
  the origin. A query's top 20 has cosines ~0.6-0.8 and hundreds follow closely, a continuum that makes a
  shortlist earn its recall. (Uniform noise has no near neighbours at all, so recall would say nothing.)
* anisotropic: the same clusters shaped like embeddings from LLM-based models such as GME: the variance
  of the dimensions falls off as a power law (a few directions carry most of it), every vector shares a
  common offset direction (unrelated photos have cosine ~0.9), and 6 dimensions hold large, nearly
  constant values. Plain sign bits lose most of their information here: most components have the same
  sign in every photo.

The exact numpy scan runs in a child process, one query at a time (float32 matmul + argpartition), with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment (this machine sets them, and they
slow OpenBLAS down) and OpenBLAS's default threads (one per core); its threadpoolctl report is printed.
The same child computes the exact answers (filtered ones with the filter's mask) that recall is measured
against. At 1M the float copy (6 GB) is memory-mapped, not held in RAM (a shared 24 GB machine): numpy's
time there includes page-cache reads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIM = 1536
TOPICS_PER_100K, EVENTS_PER_100K = 200, 5000
RARE_CAMERA = "Leica M11"  # 1% of photos: the selective filter
BATCH = 10_000
BENCH = Path(".bench")
VERSION = "v2"  # part of the cache's file names: data generated differently is rebuilt, not reused
DISTRIBUTIONS = ("clustered", "anisotropic")
FIRST_TAKEN = 1_500_000_000
LISBON, SYDNEY = (38.72, -9.14), (-33.87, 151.21)


# ---- data ---------------------------------------------------------------------------------------
def clustered_batch(start: int, count: int, size: int, seed: int = 7) -> np.ndarray:
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


def anisotropic(vectors: np.ndarray, start: int, seed: int = 8) -> np.ndarray:
    """Clustered vectors given the shape of LLM-based embeddings (see the module docstring)."""
    fixed = np.random.default_rng(seed)
    scale = (np.arange(DIM) + 1.0) ** -0.75  # variance per dimension: a power law, in shuffled order
    fixed.shuffle(scale)
    scale = (scale / np.sqrt((scale**2).mean())).astype(np.float32)
    offset = fixed.standard_normal(DIM).astype(np.float32) * (1.5 / np.sqrt(DIM))  # shared by every photo
    outliers = fixed.choice(DIM, 6, replace=False)
    signs = fixed.choice([-1.0, 1.0], 6).astype(np.float32)
    rng = np.random.default_rng(seed * 1_000_003 + start)
    shaped = vectors * scale + offset
    shaped[:, outliers] += signs * (1.0 + 0.05 * rng.standard_normal((len(vectors), 6)).astype(np.float32))
    shaped /= np.linalg.norm(shaped, axis=1, keepdims=True)
    return shaped


def make_batch(distribution: str, start: int, count: int, size: int) -> np.ndarray:
    vectors = clustered_batch(start, count, size)
    return anisotropic(vectors, start) if distribution == "anisotropic" else vectors


def queries(distribution: str, size: int, count: int) -> np.ndarray:
    """Query vectors from the same distribution as the photos (new samples, not copies of them)."""
    return make_batch(distribution, 10**9, count, size)


# ---- the photos' facts, and the filters over them --------------------------------------------------
def taken(n: np.ndarray | int, size: int) -> np.ndarray | int:
    """Photo n's date taken: the library spans ten years whatever its size, oldest first."""
    return FIRST_TAKEN + n * (10 * 365 * 86400 // size)


def latitude(n: int) -> float | None:
    """Half the photos in Lisbon, a third in Sydney, the rest without a position."""
    return None if n % 6 == 5 else (LISBON[0] if n % 2 == 0 else SYDNEY[0])


def photo_meta(n: int, size: int):
    from umsearch.metadata import PhotoMeta

    lat = latitude(n)
    return PhotoMeta(
        taken=int(taken(n, size)),
        taken_source="exif",
        camera=RARE_CAMERA if n % 100 == 7 else f"Camera {n % 20}",
        place=None if lat is None else ("Lisbon, Portugal" if lat > 0 else "Sydney, Australia"),
        latitude=lat,
        longitude=None if lat is None else (LISBON[1] if lat > 0 else SYDNEY[1]),
    )


def photo_path(n: int) -> str:
    return f"/photos/{n % 1000:04d}/img_{n:07d}.jpg"


def filters(size: int) -> list[tuple[str, object, Callable[[np.ndarray], np.ndarray]]]:
    """(name, Filters, mask over photo numbers 0..N-1): the filters timed, with their exact equivalents."""
    from datetime import datetime, timezone

    from umsearch.dates import Span, When
    from umsearch.filters import Filters

    def day(n: int) -> date:
        return datetime.fromtimestamp(int(taken(n, size)), timezone.utc).date()

    # A season-like filter passing about a quarter of the photos: one span in the north, another in the south.
    season = When(Span(day(size // 5), day(size * 45 // 100)), Span(day(size * 6 // 10), day(size * 85 // 100)))
    north, south = season.north.seconds(), season.for_south().seconds()
    after_half, after_tenth = int(taken(size // 2, size)), int(taken(size // 10, size))

    def seasonal(n: np.ndarray) -> np.ndarray:
        southern = (n % 2 == 1) & (n % 6 != 5)  # photos without a position count as northern (the majority)
        at = taken(n, size)
        return np.where(southern, (at >= south[0]) & (at < south[1]), (at >= north[0]) & (at < north[1]))

    return [
        ("camera:Leica (1%)", Filters(camera="Leica"), lambda n: n % 100 == 7),
        (
            "2 folders + after: (0.1%)",
            Filters(after=after_half, folders=("/photos/0001", "/photos/0002")),
            lambda n: (taken(n, size) >= after_half) & ((n % 1000 == 1) | (n % 1000 == 2)),
        ),
        (
            "after: + type:jpg (90%)",
            Filters(after=after_tenth, types=("jpg",)),
            lambda n: taken(n, size) >= after_tenth,
        ),
        ("season, per hemisphere (25%)", Filters(seasonal=(season,)), seasonal),
    ]


# ---- building -------------------------------------------------------------------------------------
def build(distribution: str, size: int) -> tuple[Path, Path]:
    """The index and a raw float32 copy of its vectors (row i = photo i = file id i + 1), built once."""
    from umsearch.store import IndexSettings, Store

    BENCH.mkdir(exist_ok=True)
    name = f"scale-{distribution}-{size}-{VERSION}"
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
            vectors = make_batch(distribution, start, count, size)
            raw[start : start + count] = vectors
            with store.transaction():
                for i in range(count):
                    n = start + i
                    store.put_file(
                        photo_path(n),
                        size=1000 + n,
                        mtime_ns=n,
                        digest=f"{n:032x}",
                        vector=vectors[i],
                        meta=photo_meta(n, size),
                    )
            elapsed = time.perf_counter() - started
            print(f"  built {start + count:,}/{size:,} ({(start + count) / elapsed:,.0f} photos/s)", flush=True)
    raw.flush()
    del raw
    done.write_text("ok\n")
    return db_path, raw_path


# ---- the exact numpy scan (a child process with a clean OpenBLAS environment) ------------------------
def numpy_scan(raw_path: Path, qs: np.ndarray, masks: list[np.ndarray | None], k: int, timed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "queries.npy", qs)
        np.save(Path(tmp) / "masks.npy", np.stack([np.ones(1, bool) if m is None else m for m in masks[1:]]))
        env = {key: value for key, value in os.environ.items() if key not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        command = [sys.executable, __file__, "--numpy-worker", str(raw_path), tmp, str(k), str(timed)]
        subprocess.run(command, env=env, check=True)
        with open(Path(tmp) / "result.json") as fh:
            return json.load(fh)


def numpy_worker(raw_path: str, folder: str, k: int, timed: int) -> None:
    """In the child: per-query timed scans, then exact answers for every query and filter (one pass)."""
    from threadpoolctl import threadpool_info

    size = np.load(raw_path, mmap_mode="r").shape[0]
    raw = np.load(raw_path, mmap_mode="r" if size > 200_000 else None)
    qs = np.load(Path(folder) / "queries.npy")
    masks = np.load(Path(folder) / "masks.npy")
    chunk = 200_000

    def scan(query: np.ndarray) -> np.ndarray:
        best_ids, best_scores = np.empty(0, np.int64), np.empty(0, np.float32)
        for start in range(0, size, chunk):
            scores = raw[start : start + chunk] @ query
            top = np.argpartition(-scores, k)[:k]
            best_ids = np.concatenate([best_ids, top + start])
            best_scores = np.concatenate([best_scores, scores[top]])
        return best_ids[np.argsort(-best_scores)[:k]]

    scan(qs[0])  # warm the page cache
    times = []
    for query in qs[:timed]:
        started = time.perf_counter()
        scan(query)
        times.append(time.perf_counter() - started)
    scores = np.empty((len(qs), size), dtype=np.float32)
    for start in range(0, size, chunk):
        scores[:, start : start + chunk] = qs @ raw[start : start + chunk].T
    answers = []
    for mask in (None, *masks):
        masked = scores if mask is None else np.where(mask, scores, -np.inf)
        top = np.argpartition(-masked, k, axis=1)[:, :k]
        passing = np.take_along_axis(masked, top, axis=1) > -np.inf  # fewer than k may pass
        answers.append([(row[ok] + 1).tolist() for row, ok in zip(top, passing)])  # file ids start at 1
    info = [
        {key: pool.get(key) for key in ("internal_api", "version", "num_threads", "architecture")}
        for pool in threadpool_info()
    ]
    with open(Path(folder) / "result.json", "w") as fh:
        json.dump({"times": times, "answers": answers, "threadpool": info}, fh)


# ---- measuring ------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure(store, qs: np.ndarray, k: int, flt, truth: list[list[int]] | None) -> tuple[list[float], list[float], int]:
    from umsearch.search import search

    search(store, qs[0], k, flt)  # warm
    times, recalls, full = [], [], 0
    for i, q in enumerate(qs):
        started = time.perf_counter()
        hits = search(store, q, k, flt)
        times.append(time.perf_counter() - started)
        full += len(hits) == min(k, len(truth[i])) if truth is not None else len(hits) == k
        if truth is not None:
            recalls.append(len({h.file_id for h in hits} & set(truth[i])) / max(1, len(truth[i])))
    return times, recalls, full


def line(name: str, times: list[float], recalls: list[float], full: int, count: int, k: int) -> str:
    text = f"{name:36s} p50 {pct(times, 0.5) * 1e3:7.1f} ms  p95 {pct(times, 0.95) * 1e3:7.1f} ms"
    if recalls:
        text += f"  recall@{k} mean {statistics.mean(recalls):.4f} worst {min(recalls):.2f}"
    return text + f"  full pages {full}/{count}"  # full: as many as pass, up to k


def run(distribution: str, size: int, n_queries: int, k: int, shortlists: list[int], timed: int) -> None:
    from umsearch.store import Store, bitcache, vectors

    db_path, raw_path = build(distribution, size)
    qs = queries(distribution, size, n_queries)
    numbers = np.arange(size)
    chosen = filters(size)
    masks = [None, *[mask(numbers) for _, _, mask in chosen]]
    exact = numpy_scan(raw_path, qs, masks, k, min(timed, n_queries))
    with Store.open(db_path, create=False) as store:
        db_bytes = store.size_bytes()
        cosines = (qs @ qs.T)[np.triu_indices(len(qs), 1)]
        print(
            f"\n== {distribution}, {size:,} photos: DB {db_bytes / 2**30:.2f} GiB, {db_bytes / size:,.0f} bytes/photo; "
            f"cosine between unrelated queries: mean {cosines.mean():.2f}"
        )
        print(f"numpy threads: {exact['threadpool']}")
        times = exact["times"]
        print(
            f"{'numpy exact scan':32s} p50 {pct(times, 0.5) * 1e3:7.1f} ms  p95 {pct(times, 0.95) * 1e3:7.1f} ms  ({len(times)} queries)"
        )
        default = vectors.RESCORE_SHORTLIST
        for shortlist in shortlists:
            vectors.RESCORE_SHORTLIST = shortlist
            t, r, full = measure(store, qs, k, None, exact["answers"][0])
            print(line(f"umsearch, shortlist {vectors.shortlist_size(size)}", t, r, full, len(qs), k))
        vectors.RESCORE_SHORTLIST = default
        bits = store._bit_matrix()
        side = bitcache.cache_path(store.path)
        print(
            f"bit matrix: {bits.words.nbytes / len(bits.ids):.0f} B/photo in memory "
            f"(side file {side.stat().st_size / size:.0f} B/photo)"
        )
        for (name, flt, _), answers in zip(chosen, exact["answers"][1:]):
            t, r, full = measure(store, qs, k, flt, answers)
            print(line(f"filter {name}", t, r, full, len(qs), k))
        upkeep(store, distribution, size)


class _Undo(Exception):
    pass


def upkeep(store, distribution: str, size: int) -> None:
    """What keeping the bit matrix current costs: loading the side file in a new process, patching it after
    100 photos arrive and 10 go (in a transaction that is then rolled back), and a full rebuild."""
    from umsearch.store import Store

    started = time.perf_counter()
    with Store.open(store.path, create=False) as fresh:
        fresh._bit_matrix()
    opened = time.perf_counter() - started
    patched = 0.0
    try:
        with store.transaction():
            vectors_ = make_batch(distribution, 2 * size, 100, size)
            for i, vector in enumerate(vectors_):
                n = size + i
                store.put_file(
                    photo_path(n), size=1, mtime_ns=n, digest=f"new{n}", vector=vector, meta=photo_meta(n, size)
                )
            store.delete_files(range(1, 11))
            started = time.perf_counter()
            store._bit_matrix()
            patched = time.perf_counter() - started
            raise _Undo
    except _Undo:
        pass
    store._bits = None
    started = time.perf_counter()
    store._bit_matrix()  # the side file is now ahead of the index: rebuilt in full, and saved
    rebuilt = time.perf_counter() - started
    print(
        f"bit matrix upkeep: load in a new process {opened * 1e3:.0f} ms; patch after 100 new + 10 deleted "
        f"photos {patched * 1e3:.0f} ms; full rebuild {rebuilt * 1e3:.0f} ms (each including saving the side file)"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--numpy-worker":
        numpy_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--distributions", nargs="+", choices=DISTRIBUTIONS, default=list(DISTRIBUTIONS))
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--numpy-queries", type=int, default=20, help="queries timed on the numpy side")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--shortlists", type=int, nargs="+", default=None)
    args = parser.parse_args()
    from umsearch.store import vectors

    shortlists = args.shortlists or [vectors.RESCORE_SHORTLIST]
    load = lambda: " ".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    print(f"machine: {os.cpu_count()} cores; load average before: {load()}")
    for size in args.sizes:
        for distribution in args.distributions:
            run(distribution, size, args.queries, args.k, shortlists, args.numpy_queries)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
