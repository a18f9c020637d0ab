"""How fast indexing really goes on this machine, and what the rest will cost: measured, not guessed.

`Pace` times the photos as they are stored. The first step is left out (it carries loading the model and a
warm-up), and no estimate is given before a few steps are measured; after that the seconds per photo and
the time left come from what this run actually did. `first_run_lines` turns the first estimate into what
`umsearch index` tells a user at the start of a long first run. Cheap to import (stdlib only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Steps measured (after the first) before an estimate is given: one batch is too noisy on a busy machine.
MIN_STEPS = 2
# A first run estimated beyond this says so, with how to make it cheaper (an interactive terminal only).
LONG_RUN_HOURS = 2.0

DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "Apple MPS"}


class Pace:
    """Seconds per photo and time left, from the photos stored so far (the first step excluded)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.total = 0
        self.done = 0
        self._mark: tuple[float, int] | None = None  # (time, done) at the end of the first step
        self._last = 0.0
        self._steps = 0

    def start(self, total: int) -> None:
        self.total, self.done, self._mark, self._steps = total, 0, None, 0

    def restart(self) -> None:
        """Measure from the next step on (the model has just been loaded: the time before says nothing)."""
        self._mark, self._steps = None, 0

    def advance(self, count: int = 1) -> None:
        now = self._clock()
        self.done += count
        if self._mark is None:
            self._mark = (now, self.done)
            return
        self._last = now
        self._steps += 1

    def per_photo(self) -> float | None:
        """Measured seconds per photo, or None until enough is measured."""
        if self._mark is None or self._steps < MIN_STEPS:
            return None
        started, done_then = self._mark
        photos = self.done - done_then
        return (self._last - started) / photos if photos > 0 else None

    def remaining(self) -> float | None:
        """Measured seconds still to go (None until measured)."""
        per_photo = self.per_photo()
        return None if per_photo is None else per_photo * max(0, self.total - self.done)


@dataclass(frozen=True)
class RunFacts:
    """What the first-run lines need to know about the run."""

    device: str  # "cpu", "cuda", "mps"
    quality: str  # the preset name, or "custom"
    auto_quality: bool  # chosen by `--quality auto` for this device, not by the user
    to_do: int  # photos still to embed when the estimate was made
    model: str = "GME"  # the model family's name for people (families.Family.label)


def first_run_lines(facts: RunFacts, per_photo: float, interactive: bool) -> list[str]:
    """The one line about quality and cost at a first run, and, on a terminal, the long-run advice."""
    device = DEVICE_NAMES.get(facts.device, facts.device)
    line = f"{device}: indexing at quality {facts.quality}, about {_duration(per_photo)} per photo"
    if facts.auto_quality and facts.quality != "best":
        line += f"; use --quality best for {facts.model}'s full detail"
    lines = [line]
    left = per_photo * facts.to_do
    if interactive and left > LONG_RUN_HOURS * 3600:
        cheaper = []
        if facts.quality not in ("fast",):
            cheaper.append("--quality fast (in a new index: --db FILE)")
        if facts.device != "cuda":
            cheaper.append("a CUDA GPU")
        cheaper.append("'umsearch watch' to do it in the background, politely")
        lines.append(
            f"about {_duration(left)} for the {facts.to_do:,} photos still to do; the newest are searchable "
            f"first, and Ctrl-C keeps what is done. Cheaper: {', '.join(cheaper)}"
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h" if seconds >= 10 * 3600 else f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
