"""The short soak (benchmarks/soak.py, under a minute of churn): a watcher that is also the service, a steady
churn of photos and folders, clients querying in parallel; at the end the index equals the folders exactly, no
"database is locked", no traceback, no failed query, a clean exit, and no descriptor leak."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc"),
]


def test_a_short_soak_ends_with_the_index_equal_to_the_folders(tmp_path, tiny_model_dir):
    report_path = tmp_path / "soak.json"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "soak.py"),
        "--minutes",
        "0.75",
        "--photos",
        "40",
        "--rate",
        "3",
        "--clients",
        "2",
        "--sample",
        "5",
        "--model",
        str(tiny_model_dir),
        "--workdir",
        str(tmp_path / "work"),
        "--json",
        str(report_path),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the soak stops its watcher on the way out
        output, _ = process.communicate(timeout=30)
        raise AssertionError(f"the soak did not finish in time:\n{output}") from None
    report = json.loads(report_path.read_text())
    assert process.returncode == 0, output
    assert report["final"]["equal"], report["final"]
    assert report["final"]["photos_on_disk"] > 0
    assert (report["database_locked"], report["tracebacks"], report["query_error_count"]) == (0, 0, 0), output
    assert report["exit"] == 0
    assert report["churn_total"] >= 100 and sum(report["watcher_changes"].values()) >= report["churn_total"] / 2
    assert report["queries"] >= 20
    assert report["flat"]["fds_max"] - min(s["fds"] for s in report["samples"]) <= 8, report["samples"]
