"""Good manners for background indexing (`watch`, the service): low priority, a cap on cores, no battery drain.

* Priority: the process is niced (CPU) and put in the idle I/O class where the OS has one (Linux), so the
  user's own work always goes first and embedding takes what is left.
* Cores: the model's thread pool is capped (`background_threads`): by default half the cores are left free,
  so a foreground application keeps whole cores even before the scheduler's priorities come in.
* Battery: `PowerGate.wait_for_mains` holds embedding while the machine runs on battery (the watcher and the
  service keep answering queries meanwhile) and lets it go on when the charger is back.

Battery state is read cheaply: Linux's /sys/class/power_supply (a few small files), elsewhere psutil.
Cheap to import (no torch, no psutil until asked).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ON_BATTERY_CHOICES = ("pause", "run")
NICE_INCREMENT = 10  # of 19: below every interactive program, above `nice -n 19` batch jobs
POWER_SUPPLY_DIR = "/sys/class/power_supply"
# How often a paused watcher looks at the power state again (reading it costs well under a millisecond);
# UMSEARCH_POWER_POLL overrides.
POWER_POLL_SECONDS = 15.0


@dataclass(frozen=True)
class Manners:
    """What `be_polite` did, for the log line and `doctor`."""

    nice: int | None  # the niceness now, or None where it could not be read
    io_idle: bool  # in the idle I/O class
    threads: int | None  # model threads, or None when torch is not loaded yet (applied at load)

    def describe(self) -> str:
        parts = []
        if self.nice is not None:
            parts.append(f"nice {self.nice}")
        parts.append("idle I/O" if self.io_idle else "normal I/O")
        if self.threads is not None:
            parts.append(f"{self.threads} model thread{'s' if self.threads != 1 else ''}")
        return ", ".join(parts)


def background_threads(cores: int | None = None) -> int:
    """Model threads for background work: half the cores, at least one (UMSEARCH_THREADS overrides)."""
    override = os.environ.get("UMSEARCH_THREADS", "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    cores = cores or _usable_cores()
    return max(1, cores // 2)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # Linux: honours taskset and cgroups' cpusets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def be_polite(threads: int | None = None, *, cap_threads: bool = True) -> Manners:
    """Lower this process's CPU and I/O priority and cap the model's threads (now if torch is loaded, else
    through the environment torch reads at import). `cap_threads=False` leaves the cores alone (a service
    that only answers queries: the user is waiting for those). Safe to call more than once; never raises."""
    nice = _lower_cpu_priority()
    io_idle = _idle_io_class()
    applied = _cap_threads(threads or background_threads()) if cap_threads else None
    return Manners(nice=nice, io_idle=io_idle, threads=applied)


def _lower_cpu_priority() -> int | None:
    if not hasattr(os, "nice"):
        return _windows_below_normal()
    try:
        current = os.nice(0)
        if current < NICE_INCREMENT:
            current = os.nice(NICE_INCREMENT - current)
        return current
    except OSError:
        return None


def _windows_below_normal() -> int | None:  # pragma: no cover - Windows only
    try:
        import psutil

        psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
    except Exception:
        pass
    return None


def _idle_io_class() -> bool:
    """Linux's idle I/O scheduling class: the disk serves this process only when nobody else asks."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
        return True
    except Exception:
        return _ioprio_set_idle()


def _ioprio_set_idle() -> bool:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13) without psutil (x86-64 and arm64 numbers)."""
    import ctypes
    import platform

    number = {"x86_64": 251, "aarch64": 30, "arm64": 30}.get(platform.machine())
    if number is None:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(number, 1, 0, 3 << 13) == 0
    except (OSError, AttributeError):
        return False


def _cap_threads(threads: int) -> int | None:
    # Read by torch (OpenMP, MKL) when it is imported; a later import then starts with the cap.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is None:
        return threads
    try:
        torch.set_num_threads(threads)
        return int(torch.get_num_threads())
    except RuntimeError:
        return None


# ---- battery -------------------------------------------------------------------------------------------


class PowerSource(Protocol):
    def on_battery(self) -> bool | None:
        """True on battery, False on mains power, None when it cannot be told (a desktop: treated as mains)."""
        ...


class SysfsPower:
    """Linux: /sys/class/power_supply. On battery when a battery discharges and no mains/USB supply is online."""

    def __init__(self, root: str | None = None) -> None:
        self.root = Path(root or os.environ.get("UMSEARCH_POWER_SUPPLY_DIR") or POWER_SUPPLY_DIR)

    def on_battery(self) -> bool | None:
        try:
            supplies = sorted(self.root.iterdir())
        except OSError:
            return None
        mains_online = battery_discharging = False
        seen_battery = seen_mains = False
        for supply in supplies:
            kind = _read(supply / "type")
            if kind == "Battery":
                if _read(supply / "scope") == "Device":
                    continue  # a mouse's or headset's battery says nothing about this machine
                seen_battery = True
                battery_discharging |= _read(supply / "status") == "Discharging"
            elif kind in ("Mains", "USB", "USB_C", "USB_PD", "Wireless"):
                seen_mains = True
                mains_online |= _read(supply / "online") == "1"
        if not seen_battery:
            return None  # a desktop or a server
        if seen_mains:
            return not mains_online
        return battery_discharging


class PsutilPower:
    """macOS, Windows, the BSDs: psutil's battery sensor."""

    def on_battery(self) -> bool | None:
        try:
            import psutil

            battery = psutil.sensors_battery()
        except Exception:
            return None
        if battery is None or battery.power_plugged is None:
            return None
        return not battery.power_plugged


def _poll_seconds() -> float:
    try:
        return max(0.05, float(os.environ.get("UMSEARCH_POWER_POLL", POWER_POLL_SECONDS)))
    except ValueError:
        return POWER_POLL_SECONDS


def default_power_source() -> PowerSource:
    return SysfsPower() if sys.platform.startswith("linux") else PsutilPower()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


class PowerGate:
    """Holds background embedding while on battery (`policy` "pause"); "run" never holds.

    `wait_for_mains` is called between batches: it returns at once on mains power (or when the power state
    cannot be told), else waits, looking again every `poll` seconds, until the charger is back or `should_stop`
    turns true. Each change is told once through `on_change`.
    """

    def __init__(
        self,
        policy: str = "pause",
        source: PowerSource | None = None,
        *,
        poll: float | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if policy not in ON_BATTERY_CHOICES:
            raise ValueError(f"unknown battery policy {policy!r} (expected {' or '.join(ON_BATTERY_CHOICES)})")
        self.policy = policy
        self.source = source or default_power_source()
        self.poll = poll if poll is not None else _poll_seconds()
        self.on_change = on_change
        self.paused = False
        self._wake = threading.Event()

    def must_wait(self) -> bool:
        """Whether `wait_for_mains` would hold now (cheap: reads the power state once)."""
        return self.policy == "pause" and self.source.on_battery() is True

    def wait_for_mains(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """True when embedding may go on; False when `should_stop` ended the wait."""
        if self.policy == "run":
            return True
        while not should_stop():
            if self.source.on_battery() is not True:
                self._set_paused(False)
                return True
            self._set_paused(True)
            self._wake.wait(self.poll)
            self._wake.clear()
        return False

    def wake(self) -> None:
        """Look at the power state now (a stop request, say), not at the next poll."""
        self._wake.set()

    def _set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        if self.on_change is not None:
            self.on_change(
                "on battery: embedding paused until the charger is back (queries are still answered; "
                "--on-battery run keeps going)"
                if paused
                else "on mains power again: embedding resumes"
            )
