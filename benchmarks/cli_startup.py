"""How long `umsearch --help`, `status` and an error path take, and whether any of them imports torch.

Run: python benchmarks/cli_startup.py   (target: each under 0.3 s, none importing torch)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 10

PROBE = """
import sys, runpy
sys.argv = ["umsearch"] + sys.argv[1:]
try:
    runpy.run_module("umsearch", run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "transformers", "numpy.linalg", "textual") if m in sys.modules)
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
"""


def time_command(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    times = []
    heavy = ""
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        heavy = next((line[6:] for line in done.stderr.splitlines() if line.startswith("HEAVY:")), "?")
    return statistics.median(times), heavy


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "UMSEARCH_HOME": home, "HF_HUB_OFFLINE": "1"}
        cases = {
            "umsearch --help": ["--help"],
            "umsearch status (no index yet)": ["status"],
            "umsearch query (no index: error path)": ["query", "anything"],
            "umsearch index /missing (error path)": ["index", str(Path(home) / "missing")],
        }
        print(f"python {sys.version.split()[0]}, median of {RUNS} runs (includes interpreter start-up)")
        for name, args in cases.items():
            seconds, heavy = time_command(args, env)
            print(f"{name:45s} {seconds * 1000:6.0f} ms   heavy modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    main()
