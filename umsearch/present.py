"""How results look in a terminal: tables, summaries, progress. No search logic lives here."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status
from rich.table import Table
from rich.text import Text

from .settings import FAILURES_SHOWN

if TYPE_CHECKING:
    from .index import IndexSummary
    from .pace import Pace
    from .search import Hit

# emoji=False: rich would turn `:smile:` in a file name or a query into 😄. Paths and user text print as given.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


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


def _escape_unprintable(match: re.Match[str]) -> str:
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


def spinner(text: str) -> Status:
    """A spinner on stderr while something slow runs; the text shows as given (a model path may hold `[`)."""
    return err.status(Text(text))


def print_hits(hits: Sequence[Hit], *, as_json: bool, paths_only: bool = True) -> None:
    """`--json` (a list of objects) or `--paths` (one path per line); the table is searchview's."""
    if as_json or not paths_only:
        print_json([hit.as_dict() for hit in hits])
        return
    for hit in hits:
        write_path_line(hit.path)


@dataclass(frozen=True)
class Column:
    header: str
    cells: list[str]  # plain text: never read as markup
    justify: JustifyMethod = "left"
    style: str = ""


def print_columns(columns: Sequence[Column]) -> None:
    """A table of results: aligned for a terminal; piped, one row per line with tab-separated cells, never
    wrapped (grep and cut get whole paths). Columns with no value in any row are left out either way."""
    columns = [column for column in columns if any(column.cells)]
    if not columns:
        return
    if not out.is_terminal:
        sys.stdout.flush()
        lines = ["\t".join(column.header for column in columns)]
        lines += ["\t".join(row) for row in zip(*(column.cells for column in columns), strict=True)]
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column.header, justify=column.justify, style=column.style, overflow="fold")
    for row in zip(*(column.cells for column in columns), strict=True):
        table.add_row(*map(Text, row))
    out.print(table)


def print_summary(summary: IndexSummary, *, as_json: bool, show_failures: int = FAILURES_SHOWN) -> None:
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
    earlier = summary.failed - len(summary.failures)
    if earlier > 0:
        err.print(f"  {earlier} failed in an earlier run and are unchanged since ('umsearch status' lists them)")


class RateColumn(ProgressColumn):
    """Images per second over the batches done since the model was ready (not over files skipped or copied
    while it loaded, which would promise thousands per second), and the time left at that rate."""

    def render(self, task: Task) -> Text:
        rate = measured_rate(task)
        if rate is None:
            return Text("– img/s  eta –", style="cyan")
        remaining = (task.total or 0) - task.completed
        return Text(f"{rate:.1f} img/s  eta {_duration(remaining / rate)}", style="cyan")


def measured_rate(task: Task) -> float | None:
    since, done_then = task.fields.get("rate_origin", (None, 0.0))
    if since is None or task.completed <= done_then:
        return None  # nothing embedded yet: no rate to show
    elapsed = time.monotonic() - since
    return (task.completed - done_then) / elapsed if elapsed > 0 else None


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class BarProgress:
    """The indexing progress bar (rate and ETA) on stderr; silent when stderr is not a terminal.

    `on_estimate` is called once, with the run's measured `Pace`, as soon as it has an estimate (the CLI then
    says what a first run will cost)."""

    def __init__(self, description: str = "embedding", on_estimate: Callable[[Pace], None] | None = None) -> None:
        from .pace import Pace

        self.pace = Pace()
        self.on_estimate = on_estimate
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            RateColumn(),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        self._description = description
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self.pace.start(total)
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total, rate_origin=(time.monotonic(), 0.0))

    def advance(self, count: int = 1) -> None:
        self.pace.advance(count)
        if self._task is not None:
            self._progress.advance(self._task, count)
        if self.on_estimate is not None and self.pace.per_photo() is not None:
            callback, self.on_estimate = self.on_estimate, None
            callback(self.pace)

    def note(self, text: str | None) -> None:
        """Say what the bar waits for (e.g. "loading model"); None: work again, and measure the rate from now."""
        if text is None:
            self.pace.restart()  # the model is ready: what came before says nothing about the pace
        if self._task is None:
            return
        if text is not None:
            self._progress.update(self._task, description=text, rate_origin=(None, 0.0))
            return
        done = self._progress.tasks[self._task].completed
        self._progress.update(self._task, description=self._description, rate_origin=(time.monotonic(), done))

    def finish(self) -> None:
        self._progress.stop()


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
