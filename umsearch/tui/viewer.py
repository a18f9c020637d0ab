"""Open a photo in the system's viewer, a video at a moment or a PDF at a page where a player allows it;
never through a shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from ..errors import UmsearchError

# Players that start a video at a given second, in order of preference, and how each is told.
_VIDEO_PLAYERS: tuple[tuple[str, Callable[[float], list[str]]], ...] = (
    ("mpv", lambda t: [f"--start={t:.3f}"]),
    ("vlc", lambda t: [f"--start-time={t:.3f}"]),
    ("celluloid", lambda t: [f"--mpv-start={t:.3f}"]),
    ("ffplay", lambda t: ["-ss", f"{t:.3f}"]),
)
# PDF viewers that open at a given page (1-based), and how each is told.
_PDF_VIEWERS: tuple[tuple[str, Callable[[int], list[str]]], ...] = (
    ("zathura", lambda n: [f"--page={n}"]),
    ("evince", lambda n: [f"--page-index={n}"]),
    ("okular", lambda n: ["--page", str(n)]),
    ("qpdfview", lambda n: []),  # takes the page as a path suffix, below
)
_MAC_VLC = "/Applications/VLC.app/Contents/MacOS/VLC"


def viewer_command(
    path: str, platform: str = sys.platform, *, time: float | None = None, page: int | None = None
) -> list[str]:
    """The argument vector that opens `path` (at `time` seconds of a video, or at `page` of a PDF, when a
    player that can do that is installed); the path is absolute so it can never read as an option."""
    target = os.path.abspath(path)
    positioned = _positioned_command(target, platform, time, page)
    if positioned is not None:
        return positioned
    if platform == "darwin":
        return ["open", target]
    opener = shutil.which("xdg-open")
    if opener is None:
        raise UmsearchError("cannot open files here: xdg-open is not installed")
    return [opener, target]


def _positioned_command(target: str, platform: str, time: float | None, page: int | None) -> list[str] | None:
    if time is not None and time > 0:
        for name, start_at in _VIDEO_PLAYERS:
            program = shutil.which(name)
            if program is None and name == "vlc" and platform == "darwin" and os.path.exists(_MAC_VLC):
                program = _MAC_VLC
            if program is not None:
                return [program, *start_at(time), target]
    if page is not None and page > 1:
        for name, at_page in _PDF_VIEWERS:
            program = shutil.which(name)
            if program is not None:
                return [program, *at_page(page), f"{target}#{page}" if name == "qpdfview" else target]
    return None


def open_in_viewer(path: str, *, time: float | None = None, page: int | None = None) -> None:
    if not os.path.exists(path):
        raise UmsearchError(f"{path}: no such file (moved or deleted since it was indexed?)")
    if sys.platform == "win32" and _positioned_command(path, sys.platform, time, page) is None:
        os.startfile(os.path.abspath(path))  # type: ignore[attr-defined]  # no shell, no argument parsing
        return
    argv = viewer_command(path, time=time, page=page)
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
