"""Time `umsearch dupes` (find_duplicates) on a benchmark index built by search_scale.py.

PYTHONPATH=. python benchmarks/dupes_scale.py .bench/scale-100000-m003.db --threshold 0.95
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from umsearch.dupes import find_duplicates
from umsearch.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--threshold", type=float, default=0.95)
    args = parser.parse_args()
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    with Store.open(args.db, create=False) as store:
        photos = store.counts().indexed
        started = time.perf_counter()
        groups = find_duplicates(store, args.threshold)
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{photos:,} photos, threshold {args.threshold}: {len(groups)} groups "
        f"({sum(len(g.paths) for g in groups)} photos) in {elapsed:.1f} s, peak RSS {peak:.0f} MiB"
    )
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
