"""Which photos a search may return, by facts rather than meaning (folder, date, type, camera, place, kind)."""

from __future__ import annotations

import calendar
import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from .errors import UmsearchError

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


@dataclass(frozen=True)
class Filters:
    """All given conditions must hold. Text conditions match case-insensitively as substrings."""

    folders: tuple[str, ...] = ()  # absolute folders (or files); a photo must lie below one of them
    after: int | None = None  # taken at or after (wall-clock seconds, see metadata.wall_clock_seconds)
    before: int | None = None  # taken strictly before
    types: tuple[str, ...] = ()  # extensions without dot, folded like metadata.file_extension
    camera: str | None = None
    place: str | None = None
    kinds: tuple[str, ...] = ()  # photo, screenshot, document, video (kinds.KINDS); any of them
    exclude_ids: frozenset[int] = field(default_factory=frozenset)  # e.g. the photo given to `similar`

    def is_empty(self) -> bool:
        return self == Filters()

    def merged(self, other: Filters) -> Filters:
        """`other`'s conditions added to these (command-line flags on top of the query text)."""
        return replace(
            self,
            folders=self.folders + tuple(f for f in other.folders if f not in self.folders),
            after=max((v for v in (self.after, other.after) if v is not None), default=None),
            before=min((v for v in (self.before, other.before) if v is not None), default=None),
            types=self.types + tuple(t for t in other.types if t not in self.types),
            camera=other.camera or self.camera,
            place=other.place or self.place,
            kinds=self.kinds + tuple(k for k in other.kinds if k not in self.kinds),
            exclude_ids=self.exclude_ids | other.exclude_ids,
        )


def parse_date(text: str, *, end: bool = False) -> int:
    """YYYY, YYYY-MM or YYYY-MM-DD as wall-clock seconds: the start of that period, or with end=True the
    start of the next one (so `before:2025` excludes all of 2025 and `after:2025-06` includes June)."""
    match = _DATE.match(text.strip())
    if not match:
        raise UmsearchError(f"'{text}' is not a date: use YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(match[1]), int(match[2] or 1), int(match[3] or 1)
    try:
        start = datetime(year, month, day)
    except ValueError as exc:
        raise UmsearchError(f"'{text}' is not a date: {exc}") from None
    if end:
        if match[3]:
            return calendar.timegm(start.timetuple()) + 86400
        if match[2]:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        else:
            year += 1
        start = datetime(year, month, 1)
    return calendar.timegm(start.timetuple())


def parse_types(text: str) -> tuple[str, ...]:
    """`jpg,png` as file-type keys; a type umsearch never indexes is named (it would only ever match nothing)."""
    from .metadata import file_extension

    types = tuple(file_extension("x." + part.strip().lstrip(".")) for part in text.split(",") if part.strip())
    if not types:
        raise UmsearchError(f"'{text}' names no file type: use e.g. jpg,png")
    known = known_types()
    unknown = [kind for kind in types if kind not in known]
    if unknown:
        raise UmsearchError(
            f"unknown file type {', '.join(repr(kind) for kind in unknown)}: umsearch indexes {', '.join(sorted(known))}"
        )
    return types


def parse_kinds(text: str) -> tuple[str, ...]:
    """`video`, `screenshot,document`, plurals too, as kinds.KINDS names."""
    from .kinds import KINDS

    aliases = {"photos": "photo", "screenshots": "screenshot", "documents": "document", "videos": "video"}
    aliases.update({"doc": "document", "docs": "document", "pdf": "document", "pdfs": "document"})
    kinds: list[str] = []
    for part in text.split(","):
        word = part.strip().lower()
        if not word:
            continue
        kind = aliases.get(word, word)
        if kind not in KINDS:
            raise UmsearchError(f"'{part.strip()}' is not a kind: use {', '.join(KINDS[:-1])} or {KINDS[-1]}")
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise UmsearchError(f"'{text}' names no kind: use e.g. video or screenshot,document")
    return tuple(kinds)


def known_types() -> frozenset[str]:
    """Every type key a photo in the index can have (the extensions a scan looks for, folded)."""
    from .metadata import file_extension
    from .scan import IMAGE_EXTENSIONS

    return frozenset(file_extension("x" + extension) for extension in IMAGE_EXTENSIONS)


def folder_filter(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def build_filters(
    *,
    folders: list[str] | None = None,
    after: str | None = None,
    before: str | None = None,
    types: str | None = None,
    camera: str | None = None,
    place: str | None = None,
    kinds: str | None = None,
) -> Filters:
    """Filters from the command line's text options."""
    return Filters(
        folders=tuple(folder_filter(f) for f in folders or ()),
        after=parse_date(after) if after else None,
        before=parse_date(before) if before else None,
        types=parse_types(types) if types else (),
        camera=camera.strip() or None if camera else None,
        place=place.strip() or None if place else None,
        kinds=parse_kinds(kinds) if kinds else (),
    )
