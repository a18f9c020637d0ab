"""Index a folder of N hostile files (every kind from tests/hostile_support.py) through the real CLI.

    PYTHONPATH=. python benchmarks/hostile_folder.py [--files 1000] [--workdir /tmp/umsearch-hostile]

Checks what the issue's "done when" asks: the run finishes without a crash, exits 3 (some files failed),
the summary and `umsearch status` count exactly the expected indexed and failed files, and a damaged file
is listed with its reason. Prints one JSON line with the figures; exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile_support import make_hostile_folder  # noqa: E402
from umsearch.devmodel import build_model_dir  # noqa: E402


def umsearch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "umsearch", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/umsearch-hostile"))
    args = parser.parse_args()

    photos, db = args.workdir / "photos", args.workdir / "index.db"
    if photos.exists():
        subprocess.run(["chmod", "-R", "u+rwX", str(photos)], check=True)
        shutil.rmtree(photos)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    model = args.workdir / "tiny-model"
    if not (model / "config.json").exists():
        build_model_dir(model, "tiny")

    expected: dict[str, str | None] = {}
    batch = 0
    while len(expected) < args.files:
        more, _ = make_hostile_folder(photos / f"set{batch:03d}", seed=batch * 100)
        expected.update(more)
        batch += 1
    failed = sum(reason is not None for reason in expected.values())

    started = time.perf_counter()
    run = umsearch("index", "--db", str(db), "--model", str(model), "--json", str(photos))
    seconds = time.perf_counter() - started
    counts = json.loads(run.stdout.splitlines()[0]) if run.stdout.strip() else {}
    status = json.loads(umsearch("status", "--db", str(db), "--json", "--failures", "100000").stdout)
    reasons = {item["path"]: item["reason"] for item in status["failures"]}
    wrong = [p for p, r in expected.items() if r is not None and r not in (reasons.get(p) or "\0")]

    checks = {
        "no traceback": "Traceback" not in run.stderr,
        "exit code 3": run.returncode == 3,
        "summary counts": (counts.get("added"), counts.get("failed")) == (len(expected) - failed, failed),
        "status counts": (status["indexed"], status["failed"]) == (len(expected) - failed, failed),
        "reasons listed": not wrong,
    }
    print(
        json.dumps(
            {
                "files": len(expected),
                "expected_failed": failed,
                "exit_code": run.returncode,
                "summary": counts,
                "status": {"indexed": status["indexed"], "failed": status["failed"]},
                "seconds": round(seconds, 1),
                "checks": checks,
                "load": os.getloadavg(),
            }
        )
    )
    if not all(checks.values()):
        print(run.stderr[-3000:], file=sys.stderr)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
