"""Peak RSS while indexing N tiny distinct photos with the tiny random model: does memory stay flat?

    PYTHONPATH=. python benchmarks/index_memory.py --files 10000 [--files 100000] [--workdir /tmp/umsearch-mem]
    PYTHONPATH=. python benchmarks/index_memory.py --plan-only 10000 --plan-only 100000

Each N runs in a fresh child process (so peaks are independent). The child samples its RSS every 1% of the
work; the report shows RSS after the model load and at 25/50/100% of the files. Bounded means the growth
from 25% to 100% is small compared with N (no images or vectors are held; only the per-file plan rows).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def anon_mb() -> float:
    """Heap-like memory only (RssAnon): without the index file's memory-mapped pages, which the kernel can drop."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_photos(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sub = folder / f"{i // 1000:04d}"
        path = sub / f"{i:07d}.png"
        if path.exists():
            continue
        sub.mkdir(exist_ok=True)
        # 8x8 pixels, colour from the index: distinct bytes, so no photo is a copy of another
        Image.new("RGB", (8, 8), (i % 256, (i // 256) % 256, (i // 65536) % 256)).save(path)


class RssProgress:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.samples: list[tuple[int, float]] = []

    def start(self, total: int) -> None:
        self.total = total
        self.samples.append((0, rss_mb()))

    def advance(self, count: int = 1) -> None:
        step = max(1, self.total // 100)
        before, self.done = self.done, self.done + count
        if before // step != self.done // step:
            self.samples.append((self.done, rss_mb()))

    def note(self, text: str | None) -> None:
        pass

    def finish(self) -> None:
        self.samples.append((self.done, rss_mb()))


def child(count: int, workdir: Path, model_dir: Path) -> None:
    from umsearch.embed import load_embedder
    from umsearch.index import Indexer
    from umsearch.settings import max_pixels
    from umsearch.store import Store

    folder = workdir / f"photos-{count}"
    make_photos(folder, count)
    db = workdir / f"index-{count}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    embedder = load_embedder(str(model_dir), device="cpu", quant="none", min_image_tokens=4, max_image_tokens=16)
    after_model = rss_mb()
    progress = RssProgress()
    started = time.perf_counter()
    with Store.open(db) as store:
        summary = Indexer(store, lambda: embedder, max_pixels=max_pixels(16), batch_size=32, progress=progress).index(
            [str(folder)]
        )
        seconds = time.perf_counter() - started
        # a second pass over the same, unchanged folder: the planning path alone (scan + index rows)
        rerun_started = time.perf_counter()
        rerun = Indexer(store, lambda: embedder, max_pixels=max_pixels(16)).index([str(folder)])
        rerun_seconds = time.perf_counter() - rerun_started
        rss_after_rerun = rss_mb()
    samples = progress.samples

    def at(fraction: float) -> float:
        target = fraction * count
        return next((mb for done, mb in samples if done >= target), samples[-1][1])

    print(
        json.dumps(
            {
                "files": count,
                "added": summary.added,
                "failed": summary.failed,
                "seconds": round(seconds, 1),
                "rss_after_model_mb": round(after_model, 1),
                "rss_25pct_mb": round(at(0.25), 1),
                "rss_50pct_mb": round(at(0.5), 1),
                "rss_100pct_mb": round(at(1.0), 1),
                "rss_max_while_indexing_mb": round(max(mb for _, mb in samples), 1),
                "rerun_unchanged": rerun.unchanged,
                "rerun_seconds": round(rerun_seconds, 1),
                "rss_after_rerun_mb": round(rss_after_rerun, 1),
                "peak_rss_incl_model_load_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


class PeakSampler:
    """The highest RSS seen while the block runs (a thread samples every 5 ms)."""

    def __enter__(self) -> PeakSampler:
        import threading

        self.peak = rss_mb()
        self.peak_anon = anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())
            self.peak_anon = max(self.peak_anon, anon_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.peak_anon = max(self.peak_anon, anon_mb())


def plan_only(count: int, workdir: Path) -> None:
    """Scan + plan of N files without the model: the only per-file state an index run keeps.

    Measured twice: against an empty index (N new files to read) and against an index that already
    holds a row for every file (N unchanged files, the common re-run)."""
    import gc

    from umsearch.planning import plan_changes
    from umsearch.scan import scan
    from umsearch.store import Store

    folder = workdir / f"photos-{count}"
    make_photos(folder, count)
    db = workdir / f"plan-{count}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    result = {"files": count, "mode": "plan-only"}
    with Store.open(db) as store:
        gc.collect()
        base, base_anon = rss_mb(), anon_mb()
        with PeakSampler() as sampler:
            plan = plan_changes(store, [str(folder)], scan([str(folder)]))
        result["jobs"] = len(plan.jobs)
        result["rss_plan_all_new_mb"] = round(sampler.peak - base, 1)
        result["anon_plan_all_new_mb"] = round(sampler.peak_anon - base_anon, 1)
        with store.transaction():
            for job in plan.jobs:  # record every file (as failed rows: no model needed)
                found = job.found
                store.put_file(found.path, size=found.size, mtime_ns=found.mtime_ns, digest=None, error="x")
        del plan, job, found
        gc.collect()
        base, base_anon = rss_mb(), anon_mb()
        started = time.perf_counter()
        with PeakSampler() as sampler:
            plan = plan_changes(store, [str(folder)], scan([str(folder)]))
        result["unchanged"] = plan.unchanged
        result["plan_unchanged_seconds"] = round(time.perf_counter() - started, 1)
        result["rss_plan_all_unchanged_mb"] = round(sampler.peak - base, 1)
        result["anon_plan_all_unchanged_mb"] = round(sampler.peak_anon - base_anon, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, action="append", help="N (repeatable); default 1000 and 10000")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/umsearch-index-memory"))
    parser.add_argument(
        "--plan-only",
        type=int,
        action="append",
        default=[],
        help="N (repeatable): measure scan + plan only, without the model (fits 100k+)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-plan", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir, args.model_dir)
        return
    if args.plan_only and not args.files:
        args.workdir.mkdir(parents=True, exist_ok=True)
        for count in args.plan_only:
            out = subprocess.run(
                [sys.executable, __file__, "--child-plan", str(count), "--workdir", str(args.workdir)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(out.strip().splitlines()[-1], flush=True)
        return
    if args.child_plan:
        plan_only(args.child_plan, args.workdir)
        return
    from umsearch.devmodel import build_model_dir

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = args.workdir / "tiny-model"
    if not (model_dir / "config.json").exists():
        build_model_dir(model_dir, "tiny")
    print(f"load: {os.getloadavg()}", file=sys.stderr)
    for count in args.files or [1000, 10000]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(count),
                "--workdir",
                str(args.workdir),
                "--model-dir",
                str(model_dir),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print(out.strip().splitlines()[-1], flush=True)
    print(f"load: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
