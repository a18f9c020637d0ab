"""How results look in a terminal: tables, summaries, progress. No search logic lives here."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .index import IndexSummary
    from .pace import Pace
    from .search import Hit

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: object) -> None:
    # Plain print: rich would wrap long lines and colour the JSON. Undecodable file-name bytes (lone
    # surrogates) become \udcXX escapes, which json.loads turns back into the same path.
    text = json.dumps(value, ensure_ascii=False)
    sys.stdout.write(_LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def display_path(path: str) -> str:
    """A path as a terminal can show it: undecodable bytes as \\xNN, newlines and controls escaped."""
    if path.isprintable() and not _LONE_SURROGATE.search(path):
        return path
    return _UNPRINTABLE.sub(_escape_unprintable, path)


def _escape_unprintable(match: "re.Match[str]") -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(
        match.group(), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )


def write_path_line(path: str) -> None:
    """`--paths` output: the file name's own bytes, so pipes to other tools get the real path back."""
    sys.stdout.flush()
    sys.stdout.buffer.write(os.fsencode(path) + b"\n")
    sys.stdout.buffer.flush()


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def hits_table(hits: Sequence["Hit"]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("score", justify="right")
    table.add_column("path", overflow="fold")
    for hit in hits:
        table.add_row(str(hit.rank), f"{hit.score:.3f}", Text(display_path(hit.path)))
    return table


def print_hits(hits: Sequence["Hit"], *, as_json: bool, paths_only: bool) -> None:
    if as_json:
        print_json([hit.as_dict() for hit in hits])
    elif paths_only:
        for hit in hits:
            write_path_line(hit.path)
    elif not hits:
        err.print("no matches")
    else:
        out.print(hits_table(hits))


def print_summary(summary: "IndexSummary", *, as_json: bool, show_failures: int = 20) -> None:
    if as_json:
        print_json(summary.counters())
    else:
        parts = [f"{name} {count}" for name, count in summary.counters().items()]
        state = "interrupted" if summary.interrupted else "done"
        err.print(f"{state}: " + ", ".join(parts))
    for path, reason in summary.failures[:show_failures]:
        err.print(Text(f"  failed: {display_path(path)}: {reason}", style="yellow"))
    if len(summary.failures) > show_failures:
        err.print(f"  … and {len(summary.failures) - show_failures} more ('umsearch status' lists them)")


class RateColumn(ProgressColumn):
    """Photos per second, or seconds per photo when slower than one a second (a CPU)."""

    def __init__(self, pace: Pace) -> None:
        super().__init__()
        self.pace = pace

    def render(self, task) -> Text:
        per_photo = self.pace.per_photo()
        if per_photo is None:
            return Text("– img/s", style="cyan")
        if per_photo > 1:
            return Text(f"{per_photo:.1f} s/img", style="cyan")
        return Text(f"{1 / per_photo:.1f} img/s", style="cyan")


class MeasuredEtaColumn(ProgressColumn):
    """Time left from this run's measured pace ("measuring" until the first batches are done)."""

    def __init__(self, pace: Pace) -> None:
        super().__init__()
        self.pace = pace

    def render(self, task) -> Text:
        left = self.pace.remaining()
        if left is None:
            return Text("eta measuring", style="progress.remaining")
        hours, rest = divmod(int(left), 3600)
        return Text(f"eta {hours}:{rest // 60:02d}:{rest % 60:02d}", style="progress.remaining")


class BarProgress:
    """The indexing progress bar on stderr (silent when stderr is not a terminal), with the measured pace.

    `on_estimate` is called once, with the pace, as soon as the first estimate exists (the CLI then says what
    the run will cost)."""

    def __init__(self, description: str = "embedding", on_estimate: Callable[[Pace], None] | None = None) -> None:
        from .pace import Pace

        self.pace = Pace()
        self.on_estimate = on_estimate
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(self.pace),
            TimeElapsedColumn(),
            MeasuredEtaColumn(self.pace),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        self._description = description
        self._task = None

    def start(self, total: int) -> None:
        self.pace.start(total)
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total)

    def advance(self, count: int = 1) -> None:
        self.pace.advance(count)
        if self._task is not None:
            self._progress.advance(self._task, count)
        if self.on_estimate is not None and self.pace.per_photo() is not None:
            callback, self.on_estimate = self.on_estimate, None
            callback(self.pace)

    def finish(self) -> None:
        self._progress.stop()


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
