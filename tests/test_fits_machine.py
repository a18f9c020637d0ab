"""Indexing that fits the machine (issue 17 items 1, 3 and 4 from the user's side): the quality a new index
gets per device, the measured pace and what a first run says, and `umsearch watch` on battery power."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.photos import write_photo
from tests.watch_support import MAX_TOKENS, MIN_TOKENS, wait_for
from umsearch.cli import app
from umsearch.pace import LONG_RUN_HOURS, Pace, RunFacts, first_run_lines
from umsearch.runtime import resolve_budget
from umsearch.settings import QUALITY_PRESETS
from umsearch.store import IndexSettings, Store
from umsearch.watchstate import read_status

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


# ---- quality auto ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, preset", [("cpu", "fast"), ("mps", "balanced"), ("cuda", "best")])
def test_a_new_index_gets_the_preset_of_its_device(device: str, preset: str) -> None:
    assert resolve_budget(None, None, device=device) == QUALITY_PRESETS[preset]
    assert resolve_budget(None, "auto", device=device) == QUALITY_PRESETS[preset]


def test_an_index_keeps_its_budget_and_an_explicit_quality_wins() -> None:
    built = IndexSettings("m", 64, *QUALITY_PRESETS["best"])
    assert resolve_budget(built, "auto", device="cpu") == QUALITY_PRESETS["best"]
    assert resolve_budget(built, None, device="cpu") == QUALITY_PRESETS["best"]
    assert resolve_budget(None, "balanced", device="cpu") == QUALITY_PRESETS["balanced"]
    assert resolve_budget(None) == QUALITY_PRESETS["best"]  # no device, no index: the reference budget


# ---- pace -----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_pace_leaves_out_the_first_batch_and_waits_for_two_more() -> None:
    clock = Clock()
    pace = Pace(clock)
    pace.start(100)
    clock.now = 60.0  # loading the model and the first batch: not a measure of the rest
    pace.advance(4)
    clock.now = 68.0
    pace.advance(4)
    assert pace.per_photo() is None  # one measured batch is not enough
    clock.now = 76.0
    pace.advance(4)
    assert pace.per_photo() == pytest.approx(2.0)
    assert pace.remaining() == pytest.approx(88 * 2.0)


def test_a_first_run_says_its_quality_and_cost_and_on_a_terminal_how_to_save() -> None:
    cpu = RunFacts(device="cpu", quality="fast", auto_quality=True, to_do=10_000)
    lines = first_run_lines(cpu, 8.0, interactive=True)
    assert lines[0] == "CPU: indexing at quality fast, about 8.0 s per photo; use --quality best for GME's full detail"
    assert "about 22 h for the 10,000 photos still to do" in lines[1]
    assert "a CUDA GPU" in lines[1] and "umsearch watch" in lines[1] and "--quality fast" not in lines[1]
    # Not a terminal (a script, a log): the one line only.
    assert first_run_lines(cpu, 8.0, interactive=False) == lines[:1]
    # A short run says nothing more.
    assert len(first_run_lines(RunFacts("cpu", "fast", True, 100), 8.0, interactive=True)) == 1
    gpu = RunFacts(device="cuda", quality="best", auto_quality=True, to_do=1_000_000)
    lines = first_run_lines(gpu, 0.1, interactive=True)
    assert lines[0] == "CUDA: indexing at quality best, about 0.1 s per photo"
    assert LONG_RUN_HOURS * 3600 < 0.1 * 1_000_000 and "--quality fast" in lines[1] and "GPU" not in lines[1]


def test_a_first_cli_run_picks_fast_on_a_cpu_and_says_so_with_the_measured_cost(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    for seed in range(5):
        write_photo(photos / f"{seed}.png", seed)
    db = tmp_path / "index.db"
    args = ["index", str(photos), "--db", str(db), "--model", str(tiny_model_dir), "--batch-size", "1"]
    result = runner.invoke(app, [*args, "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "CPU: indexing at quality fast, about" in result.stderr
    assert "per photo; use --quality best for GME's full detail" in result.stderr
    with Store.open(db, create=False) as store:
        settings = store.settings()
        assert (settings.min_image_tokens, settings.max_image_tokens) == QUALITY_PRESETS["fast"]
        assert store.meta("quality") == "fast"
    # A later run of the same index says nothing of the kind (and keeps its budget).
    write_photo(photos / "new.png", 9)
    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0 and "indexing at quality" not in again.stderr


# ---- watch on battery -----------------------------------------------------------------------------------


def fake_power(root: Path, *, plugged: bool) -> None:
    for name, files in {
        "AC": {"type": "Mains", "online": "1" if plugged else "0"},
        "BAT0": {"type": "Battery", "status": "Charging" if plugged else "Discharging"},
    }.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for key, value in files.items():
            (root / name / key).write_text(value + "\n")


def indexed_count(db: Path) -> int:
    with Store.open(db, create=False) as store:
        return store.counts().indexed


@pytest.mark.timeout(240)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sysfs power supply is Linux's")
def test_watch_pauses_on_battery_politely_and_resumes_on_mains(tiny_model_dir: Path, tmp_path: Path) -> None:
    photos, db, power = tmp_path / "photos", tmp_path / "index.db", tmp_path / "power_supply"
    for seed in range(3):
        write_photo(photos / f"{seed}.png", seed)
    fake_power(power, plugged=False)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "UMSEARCH_POWER_SUPPLY_DIR": str(power),
        "UMSEARCH_POWER_POLL": "0.2",
    }
    command = [sys.executable, "-m", "umsearch", "watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir)]
    command += ["--min-image-tokens", str(MIN_TOKENS), "--max-image-tokens", str(MAX_TOKENS), "--threads", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def activity() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"watch exited ({process.returncode}): {process.stderr.read()}")
            status = read_status(db) if db.exists() else None
            return status.activity if status else None

        wait_for(lambda: activity() == "paused on battery", 90, "the battery pause")
        assert indexed_count(db) == 0
        # Polite: niced (field 19 of /proc/PID/stat) whatever the power.
        assert int(Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[16]) >= 10
        # A query still works meanwhile, and says what it did not search yet.
        status = runner.invoke(app, ["status", "--db", str(db), "--json"], catch_exceptions=False)
        backlog = json.loads(status.stdout)["backlog"]
        assert backlog["pending"] == 3 and backlog["state"] == "paused on battery"

        fake_power(power, plugged=True)
        wait_for(lambda: indexed_count(db) == 3, 90, "embedding after the charger is back")
        wait_for(lambda: activity() == "watching", 30, "the watcher to settle")
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        stderr = process.stderr.read()
    assert code == 0 and time.monotonic() - started < 5, stderr
    assert "on battery: embedding paused" in stderr and "on mains power again" in stderr
    assert "nice 10" in stderr and "1 model thread" in stderr


@pytest.mark.timeout(240)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sysfs power supply is Linux's")
def test_a_watcher_paused_on_battery_stops_at_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    photos, db, power = tmp_path / "photos", tmp_path / "index.db", tmp_path / "power_supply"
    write_photo(photos / "a.png", 1)
    fake_power(power, plugged=False)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "UMSEARCH_POWER_SUPPLY_DIR": str(power),  # the default 15 s poll: the stop must not wait for it
    }
    command = [sys.executable, "-m", "umsearch", "watch", str(photos), "--db", str(db), "--model", str(tiny_model_dir)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: db.exists() and (read_status(db) or None) and read_status(db).activity == "paused on battery",
            90,
            "the battery pause",
        )
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0 and time.monotonic() - started < 5
    assert indexed_count(db) == 0
