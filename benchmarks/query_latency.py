"""Whole-process `umsearch query` wall time: in-process, through a warm service, and a cached query, side by side.

    PYTHONPATH=. python benchmarks/query_latency.py --model tiny
    flock /tmp/umsearch-heavy.lock env PYTHONPATH=. python benchmarks/query_latency.py \\
        --model /work/models/gme-2b-f32 --dtype float32 bfloat16

Each run is a fresh `python -m umsearch query --json TEXT` process, timed from spawn to exit, as a user
types it. Modes, all in one run on the same index:

- in-process: `--no-server` with a text never asked before (imports torch, loads the model, one forward);
- warm service: a service already running with the model loaded, a text never asked before (one forward
  in the service, the rest is the client);
- model only: the same forward measured inside the service (`/v1/embed` round trip from this process), so
  warm minus this is what the service costs on top of the model's own work;
- cached: a text asked before, `--no-server` (the index's query cache: no model, no torch, no service);
- cached via service: the same, with the service running.

Client RSS is each query process's peak (wait4), service RSS is from `server status --json`. The index is
synthetic (random unit vectors through the real Store API, `--photos` rows): the search itself is ~ms and
not what is measured here. Load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from umsearch.service.client import find_service
from umsearch.service.paths import service_paths
from umsearch.store import IndexSettings, Store

REPO = Path(__file__).resolve().parent.parent


def model_dim(model: Path) -> int:
    config = json.loads((model / "config.json").read_text())
    return int(config.get("hidden_size") or config["text_config"]["hidden_size"])


def build_index(db: Path, model: Path, photos: int) -> None:
    rng = np.random.default_rng(0)
    dim = model_dim(model)
    with Store.open(db) as store:
        store.bind(IndexSettings(str(model), dim, 256, 1280))
        with store.transaction():
            for i in range(photos):
                vector = rng.standard_normal(dim).astype(np.float32)
                vector /= np.linalg.norm(vector)
                store.put_file(f"/photos/{i:06d}.jpg", size=1000 + i, mtime_ns=i, digest=f"{i:032x}", vector=vector)


# The process's own peak RSS (VmHWM starts afresh at exec; ru_maxrss of a child would include this
# script's pages at fork). runpy adds nothing measurable to `python -m umsearch`.
PROBE = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    sys.stderr.write(f"PEAK_RSS_KB {kb}\\n")
atexit.register(peak)
sys.argv = ["umsearch", *sys.argv[1:]]
runpy.run_module("umsearch", run_name="__main__")
"""


def run_query(env: dict[str, str], *args: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one `umsearch query` process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "query", "--json", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    peak = [line for line in lines if line.startswith("PEAK_RSS_KB ")]
    other = [line for line in lines if not line.startswith("PEAK_RSS_KB ")]
    if done.returncode != 0 or other or not peak:
        raise SystemExit(f"query failed ({done.returncode}): {done.stderr.strip()}")
    return seconds, int(peak[-1].split()[1]) * 1024


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, seconds: list[float], rss: list[int] | None = None) -> dict:
    found = {"mode": name, "p50_s": statistics.median(seconds), "p95_s": p(seconds, 0.95), "runs": len(seconds)}
    if rss:
        found["client_peak_rss_mb"] = max(rss) / 2**20
    return found


def bench(model: Path, dtype: str, runs: int, photos: int, work: Path) -> dict:
    db = work / f"index-{dtype}.db"
    build_index(db, model, photos)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMSEARCH_")}
    env.update(
        PYTHONPATH=str(REPO), UMSEARCH_HOME=str(work), UMSEARCH_DB=str(db), HF_HUB_OFFLINE="1", UMSEARCH_DTYPE=dtype
    )
    results = []
    in_process, in_rss = [], []
    for i in range(runs):
        seconds, rss = run_query(env, "--no-server", f"in-process question {i}")
        in_process.append(seconds)
        in_rss.append(rss)
    results.append(row("in-process (--no-server)", in_process, in_rss))

    service = subprocess.Popen(
        [sys.executable, "-m", "umsearch", "serve", "--idle-timeout", "0", "--dtype", dtype],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = None
        deadline = time.monotonic() + 120
        while client is None and time.monotonic() < deadline:
            client = find_service(service_paths(db))
            time.sleep(0.05)
        assert client is not None, "the service did not start"
        load_started = time.perf_counter()
        client.load_model()
        load_seconds = time.perf_counter() - load_started
        run_query(env, "warm-up question")
        warm, warm_rss = [], []
        for i in range(runs):
            seconds, rss = run_query(env, f"warm question {i}")
            warm.append(seconds)
            warm_rss.append(rss)
        results.append(row("warm service", warm, warm_rss))
        forward = []
        for i in range(runs):
            started = time.perf_counter()
            client.embed(f"forward only {i}", None, None)
            forward.append(time.perf_counter() - started)
        results.append(row("model forward alone (in the service)", forward))
        cached_service, cached_service_rss = [], []
        for i in range(runs):
            seconds, rss = run_query(env, f"in-process question {i}")
            cached_service.append(seconds)
            cached_service_rss.append(rss)
        results.append(row("cached, via the service", cached_service, cached_service_rss))
        status = client.status()
    finally:
        os.killpg(service.pid, 15)
        service.wait(30)
    cached, cached_rss = [], []
    for i in range(runs):
        seconds, rss = run_query(env, "--no-server", f"warm question {i}")
        cached.append(seconds)
        cached_rss.append(rss)
    results.append(row("cached, no service", cached, cached_rss))
    return {
        "model": str(model),
        "dtype": dtype,
        "photos": photos,
        "service_model_load_s": load_seconds,
        "service_rss_mb": (status["rss_bytes"] or 0) / 2**20,
        "service_peak_rss_mb": status["peak_rss_bytes"] / 2**20,
        "service_runtime": f"{status['device']}, {status['dtype']}, quantization {status['quant']}",
        "results": results,
    }


def report(found: dict) -> None:
    print(f"\n## {found['model']} — {found['service_runtime']} ({found['photos']} photos)")
    print(
        f"service: model load {found['service_model_load_s']:.2f} s, RSS {found['service_rss_mb']:.0f} MB "
        f"(peak {found['service_peak_rss_mb']:.0f} MB)"
    )
    rows = {r["mode"]: r for r in found["results"]}
    forward = rows["model forward alone (in the service)"]["p50_s"]
    print("| mode | p50 | p95 | client peak RSS |")
    print("|---|---:|---:|---:|")
    for r in found["results"]:
        rss = f"{r['client_peak_rss_mb']:.0f} MB" if "client_peak_rss_mb" in r else ""
        print(f"| {r['mode']} | {r['p50_s']:.3f} s | {r['p95_s']:.3f} s | {rss} |")
    warm = rows["warm service"]["p50_s"]
    cold = rows["in-process (--no-server)"]["p50_s"]
    print(
        f"warm − model forward = {warm - forward:.3f} s (target ≤ 0.3 s); "
        f"in-process / warm = {cold / warm:.1f}×; cached (no service) p50 {rows['cached, no service']['p50_s']:.3f} s "
        f"(target ≤ 0.3 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (built here) or a model folder")
    parser.add_argument("--dtype", nargs="+", default=["float32"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    with tempfile.TemporaryDirectory(prefix="umsearch-latency-") as tmp:
        work = Path(tmp)
        if args.model == "tiny":
            from umsearch.devmodel import build_model_dir

            model = build_model_dir(work / "tiny-model", "tiny")
        else:
            model = Path(args.model).resolve()
        found = [bench(model, dtype, args.runs, args.photos, work) for dtype in args.dtype]
    for one in found:
        report(one)
    print(f"\nload average after: {Path('/proc/loadavg').read_text().strip()}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this script's own peak RSS: {own:.0f} MB)")
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
