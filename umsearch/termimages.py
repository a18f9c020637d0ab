"""textual-image, imported without surprises: its terminal probes never print, never fail, never wait for nothing.

On import, textual-image asks the terminal which graphics it speaks and how big a cell is (escape sequences,
then a 0.1 s wait per answer). A terminal that does not answer (`script`, some multiplexers and CI logs)
makes it log warnings with tracebacks, and a terminal that reports a 0x0 size makes it divide by zero. So:
- its log records never reach the user's terminal (a picture drawn in half blocks needs no explanation);
- with an explicit mode (`--images halfcell`), nothing is probed at all: the cell size comes from the
  kernel's window size (ioctl, which never waits), else a common default;
- with `auto`, a probe that fails in any way means "no graphics protocol": half blocks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any


def quiet_logs() -> None:
    """textual-image reports failed probes as warnings with tracebacks: keep them off the terminal."""
    logger = logging.getLogger("textual_image")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def widgets(probe: bool) -> ModuleType:
    """`textual_image.widget`; `probe=False` asks the terminal nothing (the caller names the mode)."""
    quiet_logs()
    if probe:
        try:
            from textual_image import widget

            return widget
        except Exception:  # e.g. a terminal reporting a 0x0 window: its cell size divides by zero
            pass
    with _no_terminal_probe():
        from textual_image import widget

        return widget


def renderables() -> ModuleType | None:
    """`textual_image.renderable` with the terminal probed (for `--preview`), or None if that fails."""
    quiet_logs()
    try:
        from textual_image import renderable

        return renderable
    except Exception:
        return None


class _NotATerminal:
    """sys.__stdout__ as textual-image sees it while importing: not a terminal, so it sends no queries."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def _no_terminal_probe() -> Iterator[None]:
    real = sys.__stdout__
    saved = {name: os.environ.get(name) for name in ("TEXTUAL_CELL_WIDTH", "TEXTUAL_CELL_HEIGHT")}
    cell = _cell_size_from_kernel(real)
    if cell is not None:  # textual-image reads these when it cannot ask the terminal (its textual-serve route)
        os.environ["TEXTUAL_CELL_WIDTH"], os.environ["TEXTUAL_CELL_HEIGHT"] = str(cell[0]), str(cell[1])
    sys.__stdout__ = _NotATerminal(real)  # type: ignore[assignment,misc]
    try:
        # A probe that already failed may have left its modules half-imported: import them afresh.
        for name in [m for m in sys.modules if m.startswith("textual_image.widget")]:
            del sys.modules[name]
        yield
    finally:
        sys.__stdout__ = real  # type: ignore[misc]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cell_size_from_kernel(stream: Any) -> tuple[int, int] | None:
    """A terminal cell's size in pixels from the window size the kernel knows (never waits), or None."""
    try:
        import fcntl
        import struct
        import termios

        packed = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, columns, width, height = struct.unpack("HHHH", packed)
    except Exception:  # not a terminal, no fileno, or not POSIX
        return None
    if not (rows and columns and width and height):
        return None
    return width // columns, height // rows
