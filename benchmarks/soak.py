"""Soak: `umsearch watch` (the watcher, which is the index's service too) runs while a churn generator changes the
library at a steady rate and clients query it in parallel. Bounded in time.

    PYTHONPATH=. python benchmarks/soak.py --minutes 32 --json soak.json   # light (the tiny model): no heavy lock
    PYTHONPATH=. python benchmarks/soak.py --minutes 1 --photos 40 --rate 3 --clients 2 --sample 2   # short

Reports, over time (one row per --sample seconds): the watcher process's RSS, open file descriptors and threads,
and the same of this process (whose threads are the clients);
query latency p50/p95 of the queries that finished in that interval; changes applied by the watcher so far.
At the end, once the churn has stopped and the watcher has caught up: the index compared exactly with the
folders (every photo on disk indexed with its size, time and content hash, nothing else in the index, every
indexed photo with exactly one vector, SQLite's integrity check), and the count of "database is locked" and
of tracebacks anywhere (watcher output, service log, client errors). The watcher is then stopped with SIGTERM
and must exit 0.

The churn (one thread, the only writer to the library): creates photos (written in place, or as `.part` then
renamed as browsers do), rewrites them with new content, renames them, moves them between folders, deletes
them, and creates, renames, moves and deletes whole folders; the library's size is held around --photos.
Clients (--clients threads) talk to the watcher's service over its socket with the light client: a text query
(half of them new text: the model runs; half repeated: answered from the query cache), sometimes with a date
or folder filter, and now and then "more like this" of a photo that may just have been deleted (a one-line
error is the right answer then, not counted as a failure).

The model is the tiny random one (built on the fly, or --model DIR) with a small visual budget, so the soak
measures the long-running machinery (events, SQLite, sockets, threads), not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.photos import picture
from umsearch.planning import content_hash
from umsearch.scan import scan
from umsearch.store import Store
from umsearch.store.schema import FLOAT_TABLE
from umsearch.watchstate import holder

REPO = Path(__file__).resolve().parent.parent
LOCKED = "database is locked"
WORDS = [
    "red",
    "blue",
    "green",
    "old",
    "small",
    "bike",
    "lake",
    "cat",
    "dog",
    "beach",
    "snow",
    "city",
    "night",
    "tree",
    "car",
    "boat",
    "house",
]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- the library and its churn --------------------------------------------------------------------------
class Library:
    """The photo folders, changed only by this object (so it knows what is there without scanning)."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.files: list[Path] = []
        self.folders: list[Path] = []
        self.seed = 0
        self.ops: dict[str, int] = {}

    def populate(self, photos: int, folders: int) -> None:
        for i in range(folders):
            self.folders.append(self._new_folder_path(f"album{i:02d}"))
            self.folders[-1].mkdir(parents=True)
        for _ in range(photos):
            self._write(self._new_file_path(self.rng.choice(self.folders)))

    # -- operations ---------------------------------------------------------------------------------------
    def step(self, target: int) -> None:
        """One change, chosen so that the library stays around `target` photos."""
        count = len(self.files)
        grow = 3 if count < target * 0.8 else (1 if count < target * 1.2 else 0)
        shrink = 3 if count > target * 1.2 else (1 if count > target * 0.8 else 0)
        choices = [
            ("create", 6 * max(grow, 1) if grow else 1),
            ("create via rename", 2 * max(grow, 1) if grow else 1),
            ("rewrite", 3),
            ("rename", 3),
            ("move", 3),
            ("delete", 6 * shrink if shrink else 1),
            ("new folder", 1 if grow else 0),
            ("rename folder", 1),
            ("move folder", 1),
            ("delete folder", 1 if shrink and len(self.folders) > 4 else 0),
        ]
        names, weights = zip(*[(n, w) for n, w in choices if w > 0], strict=True)
        op = self.rng.choices(names, weights)[0]
        if not self.files and op not in ("create", "create via rename", "new folder"):
            op = "create"
        getattr(self, "_" + op.replace(" ", "_"))()
        self.ops[op] = self.ops.get(op, 0) + 1

    def _create(self) -> None:
        self._write(self._new_file_path(self.rng.choice(self.folders)))

    def _create_via_rename(self) -> None:
        final = self._new_file_path(self.rng.choice(self.folders))
        partial = final.with_name(final.name + ".part")
        self._write(partial, track=False)
        os.rename(partial, final)
        self.files.append(final)

    def _rewrite(self) -> None:
        path = self.rng.choice(self.files)
        self.seed += 1
        picture(self.seed, (40 + self.seed % 24, 32)).save(path, format="JPEG")

    def _rename(self) -> None:
        path = self.rng.choice(self.files)
        target = self._new_file_path(path.parent)
        os.rename(path, target)
        self.files[self.files.index(path)] = target

    def _move(self) -> None:
        path = self.rng.choice(self.files)
        target = self._new_file_path(self.rng.choice(self.folders), path.name)
        os.rename(path, target)
        self.files[self.files.index(path)] = target

    def _delete(self) -> None:
        path = self.files.pop(self.rng.randrange(len(self.files)))
        path.unlink()

    def _new_folder(self) -> None:
        folder = self._new_folder_path("import")
        folder.mkdir(parents=True)
        self.folders.append(folder)
        for _ in range(self.rng.randint(3, 8)):  # a camera import: a burst into a new folder
            self._write(self._new_file_path(folder))

    def _rename_folder(self) -> None:
        folder = self.rng.choice(self.folders)
        self._relocate(folder, self._new_folder_path(folder.name.split("-")[0], parent=folder.parent))

    def _move_folder(self) -> None:
        folder = self.rng.choice(self.folders)
        hosts = [f for f in self.folders if not f.is_relative_to(folder)]
        parent = self.rng.choice(hosts) if hosts and self.rng.random() < 0.5 else self.root
        self._relocate(folder, self._new_folder_path(folder.name.split("-")[0], parent=parent))

    def _delete_folder(self) -> None:
        folder = self.rng.choice([f for f in self.folders if f.parent == self.root] or self.folders)
        shutil.rmtree(folder)
        self.files = [f for f in self.files if not f.is_relative_to(folder)]
        self.folders = [f for f in self.folders if not f.is_relative_to(folder)]

    # -- helpers ------------------------------------------------------------------------------------------
    def _relocate(self, old: Path, new: Path) -> None:
        os.rename(old, new)
        self.files = [new / f.relative_to(old) if f.is_relative_to(old) else f for f in self.files]
        self.folders = [new / f.relative_to(old) if f.is_relative_to(old) else f for f in self.folders]

    def _write(self, path: Path, *, track: bool = True) -> None:
        self.seed += 1
        picture(self.seed, (40 + self.seed % 24, 32)).save(path, format="JPEG")
        if track:
            self.files.append(path)

    def _new_file_path(self, folder: Path, name: str | None = None) -> Path:
        while True:
            candidate = folder / (name or f"IMG_{self.rng.randrange(10**6):06d}.jpg")
            if not candidate.exists():
                return candidate
            name = None

    def _new_folder_path(self, stem: str, parent: Path | None = None) -> Path:
        parent = parent or self.root
        while True:
            candidate = parent / f"{stem}-{self.rng.randrange(10**4):04d}"
            if not candidate.exists():
                return candidate


# ---- measuring ------------------------------------------------------------------------------------------
@dataclass
class Query:
    at: float  # seconds since the soak started
    seconds: float
    ok: bool
    error: str | None = None


@dataclass
class Soak:
    started: float = field(default_factory=time.monotonic)
    queries: list[Query] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    rounds: int = 0
    stderr: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started


def process_figures(pid: int) -> dict:
    """RSS (MiB), open file descriptors and threads of a process, from /proc."""
    figures = {"rss_mib": None, "fds": None, "threads": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                figures["rss_mib"] = round(int(line.split()[1]) / 1024, 1)
            elif line.startswith("Threads:"):
                figures["threads"] = int(line.split()[1])
        figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return figures


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def compare(db: Path, root: Path) -> dict:
    """The index against the folders, exactly: paths, sizes, times, content hashes, one vector per photo."""
    disk = {item.path: item for item in scan([str(root)])}
    with Store.open(db, create=False) as store:
        rows = {row.path: row for row in store.iter_files([str(root)])}
        ok_ids = {r[0] for r in store.db.execute("SELECT id FROM files WHERE status = 'ok'")}
        bit_ids = set(store._bit_matrix().ids.tolist())  # the coarse scan's rows, as a new process loads them
        float_ids = {r[0] for r in store.db.execute(f"SELECT id FROM {FLOAT_TABLE}")}
        integrity = store.db.execute("PRAGMA integrity_check").fetchone()[0]
        everything = store.db.execute("SELECT count(*) FROM files").fetchone()[0]
    both = set(disk) & set(rows)
    stale = sorted(
        path
        for path in both
        if (disk[path].size, disk[path].mtime_ns) != (rows[path].size, rows[path].mtime_ns)
        or rows[path].hash != content_hash(path)
    )
    report = {
        "photos_on_disk": len(disk),
        "rows": len(rows),
        "missing": sorted(set(disk) - set(rows))[:10],
        "extra": sorted(set(rows) - set(disk))[:10],
        "stale": stale[:10],
        "failed": sorted(p for p, r in rows.items() if r.status != "ok")[:10],
        "vectors_match": ok_ids == bit_ids == float_ids,
        "rows_outside_root": everything - len(rows),
        "integrity": integrity,
    }
    report["equal"] = (
        not (report["missing"] or report["extra"] or report["stale"] or report["failed"])
        and report["vectors_match"]
        and report["rows_outside_root"] == 0
        and integrity == "ok"
    )
    return report


# ---- the run --------------------------------------------------------------------------------------------
def start_watcher(root: Path, db: Path, model: Path, home: Path, budget: tuple[int, int]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMSEARCH_")}
    env.update(PYTHONPATH=str(REPO), UMSEARCH_HOME=str(home), HF_HUB_OFFLINE="1", HF_HOME=str(home / "hf"))
    command = [
        sys.executable,
        "-m",
        "umsearch",
        "watch",
        str(root),
        "--db",
        str(db),
        "--model",
        str(model),
        "--json",
        "--quiet-period",
        "0.5",
        "--batch-size",
        "8",
        "--min-image-tokens",
        str(budget[0]),
        "--max-image-tokens",
        str(budget[1]),
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def follow_output(watcher: subprocess.Popen, soak: Soak) -> list[threading.Thread]:
    def changes() -> None:
        for line in watcher.stdout:
            try:
                counters = json.loads(line)
            except ValueError:
                continue
            with soak.lock:
                soak.rounds += 1
                for name in ("added", "updated", "moved", "removed", "failed"):
                    soak.changes[name] = soak.changes.get(name, 0) + int(counters.get(name, 0))

    def messages() -> None:
        for line in watcher.stderr:
            with soak.lock:
                soak.stderr.append(line.rstrip("\n"))

    threads = [threading.Thread(target=changes, daemon=True), threading.Thread(target=messages, daemon=True)]
    for thread in threads:
        thread.start()
    return threads


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def client_loop(paths, library: Library, soak: Soak, stop: threading.Event, seed: int, interval: float) -> None:
    from umsearch.errors import UmsearchError
    from umsearch.querylang import parse_search_text
    from umsearch.service.client import find_service
    from umsearch.session import SearchQuery

    rng = random.Random(seed)
    client = find_service(paths)
    asked = 0
    while not stop.is_set():
        asked += 1
        repeated = rng.random() < 0.5
        words = " ".join(rng.sample(WORDS, 3)) if repeated else f"{' '.join(rng.sample(WORDS, 2))} {seed}-{asked}"
        if rng.random() < 0.2:
            words += " after:2020"
        elif rng.random() < 0.1 and library.folders:
            words += f' in:"{rng.choice(library.folders)}"'
        started = time.perf_counter()
        try:
            if rng.random() < 0.1 and library.files:
                client.similar(str(rng.choice(library.files)), SearchQuery(limit=10))
            else:
                client.search(SearchQuery(parse_search_text(words), limit=20))
            soak.queries.append(Query(soak.now(), time.perf_counter() - started, True))
        except UmsearchError as exc:
            message = str(exc)
            expected = "no such file" in message or "not in the index" in message or "is a folder" in message
            if not expected:
                soak.queries.append(Query(soak.now(), time.perf_counter() - started, False, message))
        stop.wait(rng.uniform(0, 2 * interval))


def sample_loop(watcher: subprocess.Popen, db: Path, soak: Soak, stop: threading.Event, every: float) -> None:
    last = 0.0
    while not stop.wait(every):
        now = soak.now()
        latencies = [q.seconds for q in soak.queries if last <= q.at < now and q.ok]
        with Store.open(db, create=False) as store:
            indexed = store.counts().indexed
        with soak.lock:
            changes = sum(soak.changes.values())
        soak.samples.append(
            {
                "t_s": round(now, 1),
                **process_figures(watcher.pid),
                # The clients are this process's threads: its own figures catch a client that leaks sockets.
                **{"client_" + k: v for k, v in process_figures(os.getpid()).items()},
                "indexed": indexed,
                "changes": changes,
                "queries": len(latencies),
                "p50_ms": None if not latencies else round(1000 * statistics.median(latencies), 1),
                "p95_ms": None if not latencies else round(1000 * percentile(latencies, 0.95), 1),
            }
        )
        last = now


def run(args: argparse.Namespace) -> dict:
    from umsearch.service.client import find_service
    from umsearch.service.paths import service_paths

    work = Path(args.workdir or tempfile.mkdtemp(prefix="umsearch-soak-"))
    root, db, home = work / "photos", work / "home" / "index.db", work / "home"
    paths = service_paths(db)
    home.mkdir(parents=True, exist_ok=True)
    if args.model == "tiny":
        from umsearch.devmodel import build_model_dir

        model = build_model_dir(work / "model", "tiny")
    else:
        model = Path(args.model)
    rng = random.Random(args.seed)
    library = Library(root, rng)
    library.populate(args.photos, max(4, args.photos // 20))
    load_before = load()
    soak = Soak()
    watcher = start_watcher(root, db, model, home, (args.min_image_tokens, args.max_image_tokens))
    readers = follow_output(watcher, soak)
    report: dict = {"load_before": load_before, "config": {k: str(v) for k, v in vars(args).items()}}
    try:

        def caught_up() -> bool:
            if watcher.poll() is not None:
                raise SystemExit(f"the watcher exited ({watcher.returncode}): " + "\n".join(soak.stderr[-5:]))
            current = holder(db) if db.exists() else None
            return current is not None and current.activity == "watching"

        wait_until(caught_up, 600, "the watcher to catch up with the initial library")
        wait_until(lambda: find_service(paths), 60, "the watcher's service")
        report["catch_up_s"] = round(soak.now(), 1)
        soak.started = time.monotonic()
        stop = threading.Event()
        workers = [threading.Thread(target=sample_loop, args=(watcher, db, soak, stop, args.sample), daemon=True)]
        workers += [
            threading.Thread(
                target=client_loop, args=(paths, library, soak, stop, args.seed + i, args.query_interval), daemon=True
            )
            for i in range(args.clients)
        ]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + args.minutes * 60
        next_op = time.monotonic()
        while time.monotonic() < deadline:  # the churn, at a steady rate, on this thread
            library.step(args.photos)
            next_op += 1.0 / args.rate
            time.sleep(max(0.0, next_op - time.monotonic()))
            if watcher.poll() is not None:
                raise SystemExit(f"the watcher exited ({watcher.returncode}): " + "\n".join(soak.stderr[-5:]))
        stop.set()
        for worker in workers:
            worker.join(60)
        churn_ended = time.monotonic()
        final = wait_until(lambda: (lambda c: c if c["equal"] else None)(compare(db, root)), 300, "the index to match")
        report["converged_s"] = round(time.monotonic() - churn_ended, 1)
        report["final"] = final
        report["final_process"] = process_figures(watcher.pid)
        watcher.send_signal(signal.SIGTERM)
        try:
            report["exit"] = watcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watcher.kill()
            report["exit"] = "killed: did not stop within 30 s of SIGTERM"
    finally:
        if watcher.poll() is None:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait()
        for reader in readers:
            reader.join(10)
    log = paths.log.read_text(errors="replace") if paths.log.exists() else ""
    outputs = "\n".join(soak.stderr) + "\n" + log + "\n".join(q.error or "" for q in soak.queries)
    ok = [q for q in soak.queries if q.ok]
    report.update(
        load_after=load(),
        minutes=args.minutes,
        churn_ops=library.ops,
        churn_total=sum(library.ops.values()),
        watcher_changes=soak.changes,
        watcher_rounds=soak.rounds,
        queries=len(ok),
        query_errors=[q.error for q in soak.queries if not q.ok][:10],
        query_error_count=sum(1 for q in soak.queries if not q.ok),
        p50_ms=round(1000 * statistics.median(q.seconds for q in ok), 1) if ok else None,
        p95_ms=round(1000 * percentile([q.seconds for q in ok], 0.95), 1) if ok else None,
        database_locked=outputs.count(LOCKED),
        tracebacks=outputs.count("Traceback"),
        watcher_warnings=[line for line in soak.stderr if "warning" in line or "error" in line][:20],
        samples=soak.samples,
        workdir=str(work),
    )
    report["flat"] = flatness(soak.samples)
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return report


def flatness(samples: list[dict]) -> dict:
    """RSS and descriptors of the first quarter of the run against the last quarter."""
    if len(samples) < 4:
        return {}
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]

    def mean(rows: list[dict], key: str) -> float:
        values = [row[key] for row in rows if row[key] is not None]
        return round(sum(values) / len(values), 1) if values else 0.0

    return {
        "rss_first_quarter_mib": mean(first, "rss_mib"),
        "rss_last_quarter_mib": mean(last, "rss_mib"),
        "rss_max_mib": max(row["rss_mib"] or 0 for row in samples),
        "fds_first_quarter": mean(first, "fds"),
        "fds_last_quarter": mean(last, "fds"),
        "fds_max": max(row["fds"] or 0 for row in samples),
        "threads_max": max(row["threads"] or 0 for row in samples),
    }


def print_report(report: dict) -> None:
    print(f"load before {report['load_before']}, after {report['load_after']}")
    print(
        f"initial catch-up {report.get('catch_up_s')} s; churn {report['churn_total']} changes in {report['minutes']} min"
    )
    print("   t_s  rss_MiB  fds  threads  client_rss  client_fds  indexed  changes  queries  p50_ms  p95_ms")
    for s in report["samples"]:
        print(
            f"{s['t_s']:6.0f}  {s['rss_mib'] or 0:7.1f}  {s['fds'] or 0:3d}  {s['threads'] or 0:7d}"
            f"  {s.get('client_rss_mib') or 0:10.1f}  {s.get('client_fds') or 0:10d}  {s['indexed']:7d}"
            f"  {s['changes']:7d}  {s['queries']:7d}  {s['p50_ms'] or 0:6.1f}  {s['p95_ms'] or 0:6.1f}"
        )
    final = report["final"]
    print(f"flat: {report['flat']}")
    print(
        f"end: index equal to the folders: {final['equal']} ({final['photos_on_disk']} photos) after "
        f"{report['converged_s']} s; queries {report['queries']} (p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms),"
        f" query errors {report['query_error_count']}; 'database is locked' {report['database_locked']}; tracebacks "
        f"{report['tracebacks']}; watcher exit {report['exit']}"
    )
    print(f"churn: {report['churn_ops']}")
    print(f"watcher: {report['watcher_rounds']} rounds, {report['watcher_changes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--photos", type=int, default=300, help="library size the churn holds around")
    parser.add_argument("--rate", type=float, default=2.0, help="library changes per second")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--query-interval", type=float, default=0.5, help="mean pause between a client's queries")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--model", default="tiny", help="'tiny' (built on the fly) or a model folder")
    parser.add_argument("--min-image-tokens", type=int, default=4)
    parser.add_argument("--max-image-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--workdir", help="keep everything here (default: a temporary folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", help="write the whole report here")
    args = parser.parse_args()
    # Stopped from outside (a test's timeout, Ctrl-C): unwind, so the watcher this started is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print_report(report)
    healthy = (
        report["final"]["equal"]
        and report["database_locked"] == 0
        and report["tracebacks"] == 0
        and report["query_error_count"] == 0
        and report["exit"] == 0
    )
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
