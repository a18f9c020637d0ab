"""Load less, before and after, side by side: a cold `umsearch query` as a whole process, with the full-size model.

Runs the real command line of two source trees (``--before``: a checkout of the code before the change, say
``git archive main | tar -x -C /tmp/before``; ``--after``: this tree) against one index built with the model,
alternating them, each run in a fresh process: whole-process wall time and peak RSS (the child's
ru_maxrss), for a text query and for an image query, in each precision asked for. Every run asks a new
text, so the index's query cache (which would skip the model) never answers.

The image query is a photo outside the index, at the index's budget (fast). The page cache is warm (the model files were read just before): this is the start-up cost of a second
query on a machine with enough memory, not a first read from disk.

Example:
    git archive main | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python benchmarks/load_less.py --model /work/models/gme-2b-f32 --before /tmp/before --runs 3
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from embed_throughput import machine_line, photo  # noqa: E402

LOCK = "/tmp/umsearch-heavy.lock"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--before", required=True, help="source tree of the code before the change")
    parser.add_argument("--after", default=str(ROOT), help="source tree after (default: this one)")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma list of --dtype values to query with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-lock", action="store_true")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp, open(LOCK, "a") as lock:
        if not args.no_lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
        load_before = os.getloadavg()[0]
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(2):
            photo(200 + i, (1200, 900)).save(folder / f"IMG_{i}.jpg", quality=90)
        # A query photo outside the index: embedded by the model (an indexed one would use its stored vector).
        query_photo = Path(tmp) / "query.jpg"
        photo(300, (1200, 900)).save(query_photo, quality=90)
        db = Path(tmp) / "index.db"
        # The index is built once, by the "after" tree, at the cheapest setting: the queries are what is timed.
        built = run(
            args.after,
            [
                "index",
                str(folder),
                "--db",
                str(db),
                "--model",
                args.model,
                "--quality",
                "fast",
                "--dtype",
                "bfloat16",
                "--quant",
                "none",
            ],
        )
        if built["code"] != 0:
            raise SystemExit(f"indexing failed: {built['stderr'][-500:]}")
        results = []
        counter = 0
        for n in range(args.runs):
            for dtype in args.dtypes.split(","):
                for kind in ("text", "image"):
                    for label, tree in (("before", args.before), ("after", args.after)):
                        counter += 1
                        query = (
                            [f"a red bike by a lake, run {counter}"]
                            if kind == "text"
                            else ["--image", str(query_photo)]
                        )
                        command = ["query", *query, "--db", str(db), "--json", "--dtype", dtype, "--quant", "none"]
                        r = run(tree, command)
                        r.update(code_version=label, dtype=dtype, kind=kind, run=n)
                        results.append(r)
                        print(json.dumps({k: v for k, v in r.items() if k != "stderr"}), flush=True)
        load_after = os.getloadavg()[0]
    print()
    print(table(results, load_before, load_after))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine_line(), "results": results}, indent=1))


def run(tree: str, command: list[str]) -> dict:
    """One whole `umsearch` process: wall time, exit code, and its own peak RSS (from wait4, not a sampler)."""
    env = {**os.environ, "PYTHONPATH": tree, "HF_HUB_OFFLINE": "1", "UMSEARCH_SERVER": "off"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "umsearch", *command], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    return {
        "code": process.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
        "stderr": stderr[-2000:],
    }


def table(results: list[dict], load_before: float, load_after: float) -> str:
    lines = [
        "| query | dtype | code | wall s (median) | wall s (all) | peak RSS GB (median) |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["kind"], r["dtype"], r["code_version"]) for r in results}, key=lambda k: (k[0], k[1], k[2] != "before")
    )
    for kind, dtype, label in keys:
        rows = [r for r in results if (r["kind"], r["dtype"], r["code_version"]) == (kind, dtype, label)]
        ok = [r for r in rows if r["code"] == 0]
        if not ok:
            lines.append(f"| {kind} | {dtype} | {label} | failed: {rows[0]['stderr'][-200:]!r} | | |")
            continue
        walls = [r["wall_s"] for r in ok]
        peaks = [r["peak_rss_gb"] for r in ok if r["peak_rss_gb"] is not None]
        lines.append(
            f"| {kind} | {dtype} | {label} | {statistics.median(walls):.1f} | {', '.join(f'{w:.1f}' for w in walls)} "
            f"| {statistics.median(peaks):.2f} |"
        )
    lines.append(f"\nload average {load_before:.1f} before, {load_after:.1f} after")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
