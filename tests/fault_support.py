"""Helpers for fault tests: a small real disk (tmpfs), filling it up, umsearch processes, consistency checks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.watch_support import MAX_TOKENS, MIN_TOKENS, wait_for
from umsearch.store import Store
from umsearch.store.schema import FLOAT_TABLE, VEC_TABLE
from umsearch.watchstate import holder

REPO = Path(__file__).resolve().parent.parent


# ---- a small disk --------------------------------------------------------------------------------
@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder`: a real file system that really runs out of room (ENOSPC, which
    SQLite reports as SQLITE_FULL). Needs root (the tests run as root in CI); skipped where mounting is refused."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root on Linux")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)  # still busy: detach it


class ExternalDrive:
    """A real separate disk: an ext4 image on a loop device, plugged in (mounted) and out (unmounted) at will.
    Needs root and mkfs.ext4 (the tests run as root in CI); skipped elsewhere."""

    def __init__(self, image: Path, mount_point: Path) -> None:
        self.image = image
        self.mount_point = mount_point

    @classmethod
    def make(cls, folder: Path, name: str = "drive", size: str = "16M") -> ExternalDrive:
        import shutil

        if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
            pytest.skip("an external drive is simulated with a loop-mounted ext4 image, which needs root on Linux")
        folder.mkdir(parents=True, exist_ok=True)
        image = folder / f"{name}.img"
        subprocess.run(["truncate", "-s", size, str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        drive = cls(image, folder / "media" / name)
        drive.mount_point.mkdir(parents=True)
        if not drive.plug_in(check=False):
            pytest.skip("cannot mount a loop device here")
        return drive

    def plug_in(self, check: bool = True) -> bool:
        done = subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mount_point)], capture_output=True)
        if check and done.returncode != 0:
            raise AssertionError(f"mount failed: {done.stderr!r}")
        return done.returncode == 0

    def unplug(self) -> None:
        subprocess.run(["umount", str(self.mount_point)], check=True)  # loop mounts detach their device too

    def cleanup(self) -> None:
        if (
            os.path.ismount(self.mount_point)
            and subprocess.run(["umount", str(self.mount_point)], capture_output=True).returncode != 0
        ):
            subprocess.run(["umount", "-l", str(self.mount_point)], capture_output=True)  # busy: detach it


@contextmanager
def external_drive(folder: Path, name: str = "drive") -> Iterator[ExternalDrive]:
    drive = ExternalDrive.make(folder, name)
    try:
        yield drive
    finally:
        drive.cleanup()


def resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def fill_disk(folder: Path, name: str = "filler") -> Path:
    """Write one file until the disk holding `folder` has no room left; returns it (delete it to free space)."""
    path = folder / name
    block = b"\0" * 4096
    with open(path, "ab", buffering=0) as fh:
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return path


# ---- the index -----------------------------------------------------------------------------------
def assert_consistent(db: Path) -> None:
    """The index is whole: SQLite finds no damage, every indexed photo has one vector, no vector is orphaned."""
    with Store.open(db, create=False) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ok_ids = {r[0] for r in store.db.execute("SELECT id FROM files WHERE status = 'ok'")}
        if store.has_vectors_table():
            assert ok_ids == {r[0] for r in store.db.execute(f"SELECT rowid FROM {VEC_TABLE}")}
            assert ok_ids == {r[0] for r in store.db.execute(f"SELECT id FROM {FLOAT_TABLE}")}
        else:
            assert not ok_ids
        paths = [r[0] for r in store.db.execute("SELECT path FROM files")]
        assert len(paths) == len(set(paths))


def indexed_count(db: Path) -> int:
    with Store.open(db, create=False) as store:
        return store.counts().indexed


# ---- umsearch processes --------------------------------------------------------------------------
def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "umsearch", *args]


def environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def budget_args() -> list[str]:
    return ["--min-image-tokens", str(MIN_TOKENS), "--max-image-tokens", str(MAX_TOKENS)]


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), env=environment(), capture_output=True, text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen:
    # A process group of its own: the finaliser can stop it and anything it started.
    return subprocess.Popen(
        command(*args),
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
    """Send `sig` and wait; (exit status, seconds it took). Killed (and the test failed) if it hangs."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise AssertionError(f"the process did not stop within {timeout:.0f} s of signal {sig}") from None
    return process.returncode, time.monotonic() - started


def kill_group(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def close_all(started: list[subprocess.Popen]) -> None:
    for process in started:
        if process.poll() is None:
            kill_group(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def wait_for_holder(db: Path, process: subprocess.Popen, kind: str, activity: str | None = None) -> None:
    """Until `process` holds the index's writer lock as `kind` (and reports `activity`, when given)."""

    def holding() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the process exited early ({process.returncode}): {process.stderr.read()}")
        current = holder(db) if db.exists() else None
        return (
            current is not None
            and current.pid == process.pid
            and current.kind == kind
            and (activity is None or current.activity == activity)
        )

    wait_for(holding, 120, f"pid {process.pid} to hold the index as {kind}")


class Lines:
    """A process's stderr (or stdout) read line by line on a thread, so a test can wait for a line to appear."""

    def __init__(self, stream) -> None:
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 120) -> str:
        wait_for(lambda: any(text in line for line in self.lines), timeout, f"a line with {text!r}")
        return next(line for line in self.lines if text in line)

    def text(self, timeout: float = 10) -> str:
        """Everything, once the stream has ended (the process exited)."""
        self._thread.join(timeout)
        return "\n".join(self.lines)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
