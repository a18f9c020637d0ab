"""Open a photo in the system's image viewer, never through a shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ..errors import UmsearchError


def viewer_command(path: str, platform: str = sys.platform) -> list[str]:
    """The argument vector that opens `path`; the path is made absolute so it can never read as an option."""
    target = os.path.abspath(path)
    if platform == "darwin":
        return ["open", target]
    opener = shutil.which("xdg-open")
    if opener is None:
        raise UmsearchError("cannot open photos here: xdg-open is not installed")
    return [opener, target]


def open_in_viewer(path: str) -> None:
    if not os.path.exists(path):
        raise UmsearchError(f"{path}: no such file (moved or deleted since it was indexed?)")
    if sys.platform == "win32":
        os.startfile(os.path.abspath(path))  # type: ignore[attr-defined]  # no shell, no argument parsing
        return
    argv = viewer_command(path)
    try:
        # Detached and silent: the viewer must neither block nor scribble over the TUI.
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise UmsearchError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
