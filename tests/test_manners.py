"""Good manners in the background (issue 17 item 4): priority, a cap on cores, pausing on battery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from umsearch.manners import PowerGate, SysfsPower, background_threads

ROOT = Path(__file__).resolve().parent.parent


def supply(root: Path, name: str, **files: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    for key, value in files.items():
        (folder / key).write_text(value + "\n")


@pytest.mark.parametrize(
    "supplies, expected",
    [
        ({"AC": dict(type="Mains", online="1"), "BAT0": dict(type="Battery", status="Charging")}, False),
        ({"AC": dict(type="Mains", online="0"), "BAT0": dict(type="Battery", status="Discharging")}, True),
        # A full battery on the charger says "Not charging" or "Full": still mains.
        ({"ADP1": dict(type="Mains", online="1"), "BAT1": dict(type="Battery", status="Full")}, False),
        # USB-C chargers appear as USB supplies.
        ({"ucsi-source-psy-1": dict(type="USB", online="1"), "BAT0": dict(type="Battery", status="Charging")}, False),
        # No mains entry at all (some tablets): the battery's own status decides.
        ({"BAT0": dict(type="Battery", status="Discharging")}, True),
        ({"BAT0": dict(type="Battery", status="Charging")}, False),
        # A desktop: no battery, or only a wireless mouse's: cannot be on battery.
        ({}, None),
        ({"hidpp_battery_0": dict(type="Battery", scope="Device", status="Discharging")}, None),
    ],
    ids=["charging", "discharging", "full", "usb-c", "no-mains-entry", "no-mains-charging", "desktop", "mouse-only"],
)
def test_sysfs_power_state(tmp_path: Path, supplies: dict, expected: bool | None) -> None:
    for name, files in supplies.items():
        supply(tmp_path, name, **files)
    assert SysfsPower(str(tmp_path)).on_battery() is expected


def test_a_missing_power_supply_folder_means_unknown(tmp_path: Path) -> None:
    assert SysfsPower(str(tmp_path / "nowhere")).on_battery() is None


class FakePower:
    def __init__(self, on_battery: bool | None) -> None:
        self.state = on_battery
        self.reads = 0

    def on_battery(self) -> bool | None:
        self.reads += 1
        return self.state


def test_the_gate_pauses_on_battery_and_resumes_on_mains() -> None:
    power = FakePower(True)
    messages: list[str] = []
    gate = PowerGate("pause", power, poll=0.01, on_change=messages.append)
    passed = threading.Event()

    def worker() -> None:
        if gate.wait_for_mains():
            passed.set()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.2)
    assert not passed.is_set() and gate.paused
    power.state = False
    thread.join(5)
    assert passed.is_set() and not gate.paused
    assert len(messages) == 2 and "paused" in messages[0] and "resumes" in messages[1]


def test_the_gate_lets_everything_through_with_run_or_an_unknown_state() -> None:
    assert PowerGate("run", FakePower(True)).wait_for_mains()
    assert PowerGate("pause", FakePower(None)).wait_for_mains()  # a desktop
    assert PowerGate("pause", FakePower(False)).wait_for_mains()


def test_a_stop_request_ends_a_battery_pause() -> None:
    stop = threading.Event()
    gate = PowerGate("pause", FakePower(True), poll=30)
    threading.Timer(0.1, lambda: (stop.set(), gate.wake())).start()
    started = time.monotonic()
    assert gate.wait_for_mains(stop.is_set) is False
    assert time.monotonic() - started < 5


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="battery policy"):
        PowerGate("sometimes", FakePower(False))


def test_background_threads_leave_half_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UMSEARCH_THREADS", raising=False)
    assert background_threads(8) == 4
    assert background_threads(2) == 1
    assert background_threads(1) == 1
    monkeypatch.setenv("UMSEARCH_THREADS", "3")
    assert background_threads(8) == 3


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no nice() on this OS")
def test_be_polite_lowers_priority_and_caps_model_threads() -> None:
    # In a child process: niceness cannot be raised back, and the test process must keep its own.
    code = (
        "import json, os, torch\n"
        "from umsearch.manners import be_polite\n"
        "m = be_polite(threads=1)\n"
        "io = None\n"
        "try:\n"
        "    import psutil; io = int(psutil.Process().ionice().ioclass)\n"
        "except Exception: pass\n"
        "print(json.dumps({'nice': os.nice(0), 'threads': torch.get_num_threads(), 'io': io, "
        "'io_idle': m.io_idle, 'describe': m.describe()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    report = json.loads(result.stdout)
    assert report["nice"] >= 10
    assert report["threads"] == 1
    if sys.platform.startswith("linux") and report["io_idle"]:
        assert report["io"] in (None, 3)  # IOPRIO_CLASS_IDLE
    assert "nice" in report["describe"] and "1 model thread" in report["describe"]
