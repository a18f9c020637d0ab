"""Search results with dates and places, inline thumbnails, and duplicate groups (terminal output)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from .present import err, out, print_json

if TYPE_CHECKING:
    from .dupes import DuplicateGroup
    from .search import Hit

THUMB_CELLS = (16, 8)  # width x height in terminal cells


def print_hits_with_previews(hits: Sequence["Hit"]) -> None:
    """A table whose first column is a thumbnail, where the terminal can show images (kitty or iTerm2
    graphics, sixel, or unicode half blocks); without a terminal, the ordinary table."""
    from .present import print_hits
    from .search import taken_text

    renderable = _image_renderable()
    if not hits:
        err.print("no matches")
        return
    if renderable is None:
        print_hits(hits, as_json=False, paths_only=False)
        return
    table = Table(box=None, pad_edge=False, header_style="bold", show_lines=True)
    for name in ("", "#", "score", "taken", "place", "path"):
        table.add_column(name, overflow="fold")
    for hit in hits:
        try:
            thumb = renderable(hit.path, width=THUMB_CELLS[0], height=THUMB_CELLS[1])
        except Exception:  # an unreadable file gets no thumbnail, the row still shows
            thumb = Text("")
        taken = taken_text(hit.taken)[:10] if hit.taken is not None else ""
        table.add_row(thumb, str(hit.rank), f"{hit.score:.3f}", taken, Text(hit.place or ""), Text(hit.path))
    out.print(table)


def _image_renderable():  # noqa: ANN202
    if not sys.stdout.isatty():
        return None
    try:
        from textual_image.renderable import Image
    except Exception:
        return None
    return Image


def print_duplicate_groups(groups: Sequence["DuplicateGroup"], *, as_json: bool) -> None:
    if as_json:
        print_json([group.as_dict() for group in groups])
        return
    if not groups:
        err.print("no near-duplicates")
        return
    for number, group in enumerate(groups, 1):
        out.print(f"group {number}: {len(group.paths)} photos, similarity ≥ {group.similarity:.3f}")
        for path in group.paths:
            out.print(Text("  " + path))
