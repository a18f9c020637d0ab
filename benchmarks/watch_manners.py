"""How much of a busy machine background indexing takes: `umsearch watch` (polite) against `umsearch index`.

The user's own work is played by one busy process per core (a tight arithmetic loop at normal priority,
counting its iterations). Three phases of `--seconds` each, side by side in one run:

1. the user's work alone (its speed is the 100 % mark);
2. the same, with `umsearch watch` catching up on a folder of photos (niced, idle I/O, half the cores);
3. the same, with a plain `umsearch index` of another copy of the folder (normal priority, all cores).

For 2 and 3: the indexer's share of the machine's CPU time (its CPU seconds over wall time x cores), how
many photos it embedded, and the speed the user's work kept. Default model: the tiny random model (the
pipeline's decode and resize are most of the work); `--model` takes a full-size one.

Example:
    python benchmarks/watch_manners.py --photos 1500 --seconds 60
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from embed_throughput import machine_line, photo  # noqa: E402


def busy(counter, stop) -> None:  # the user's work: a CPU-bound loop
    n = 0
    while not stop.is_set():
        for _ in range(20000):
            n += 1
        with counter.get_lock():
            counter.value += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", help="model folder (default: build the tiny random model)")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = args.model
        if model is None:
            from umsearch.devmodel import build_model_dir

            model = str(build_model_dir(tmp_path / "model", "tiny"))
        folders = [tmp_path / "watched", tmp_path / "indexed"]
        for folder in folders:
            folder.mkdir()
        for i in range(args.photos):
            picture = photo(i, (800, 600))
            for folder in folders:
                picture.save(folder / f"IMG_{i:05d}.jpg", quality=85)
        print(f"{args.photos} photos written to each of 2 folders; {cores} cores", flush=True)

        alone = user_work(cores, args.seconds, None)
        print(f"user's work alone: {alone['rate']:.1f} units/s", flush=True)
        rows = []
        for label, command in (
            ("watch (polite)", ["watch", str(folders[0]), "--db", str(tmp_path / "w.db"), "--model", model]),
            ("index (plain)", ["index", str(folders[1]), "--db", str(tmp_path / "i.db"), "--model", model]),
        ):
            result = user_work(cores, args.seconds, command)
            result["kept"] = result["rate"] / alone["rate"]
            rows.append((label, result))
            print(f"{label}: {result}", flush=True)

    print()
    print("| indexer | its CPU share | photos embedded | user's work kept | load avg |")
    print("|---|---|---|---|---|")
    for label, r in rows:
        print(
            f"| {label} | {r['share']:.0%} | {r['photos']} in {args.seconds:.0f} s | {r['kept']:.0%} | {r['load']:.1f} |"
        )


def user_work(cores: int, seconds: float, command: list[str] | None) -> dict:
    counter = multiprocessing.Value("q", 0)
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=busy, args=(counter, stop)) for _ in range(cores)]
    process = None
    if command is not None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "UMSEARCH_SERVER": "off"}
        process = subprocess.Popen(
            [sys.executable, "-m", "umsearch", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(8)  # let it import and start embedding before the clock starts
    for worker in workers:
        worker.start()
    cpu_before = _cpu_seconds(process.pid) if process else 0.0
    db = Path(command[3]) if command else None
    photos_before = _indexed(db)
    started = time.monotonic()
    start_count = counter.value
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    units = counter.value - start_count
    cpu = (_cpu_seconds(process.pid) - cpu_before) if process else 0.0
    photos = _indexed(db) - photos_before
    load = os.getloadavg()[0]
    stop.set()
    for worker in workers:
        worker.join()
    if process is not None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return {"rate": units / elapsed, "share": cpu / (elapsed * cores), "photos": photos, "load": load}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _indexed(db: Path | None) -> int:
    if db is None or not db.exists():
        return 0
    from umsearch.store import Store

    try:
        with Store.open(db, create=False) as store:
            return store.counts().indexed
    except Exception:
        return 0


if __name__ == "__main__":
    main()
