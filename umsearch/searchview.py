"""Search results with dates and places, inline thumbnails, and duplicate groups (terminal output)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from .present import Column, display_path, err, out, print_columns, print_json

if TYPE_CHECKING:
    from PIL import Image

    from .dupes import DuplicateGroup
    from .search import Hit

THUMB_CELLS = (16, 8)  # width x height in terminal cells


def print_hits_with_facts(hits: Sequence[Hit], *, previews: bool = False) -> None:
    """Rank, score, date taken, place and path; with `previews`, a thumbnail first where the terminal can
    show images (kitty or iTerm2 graphics, sixel, or unicode half blocks) and nothing extra otherwise.
    Piped, one tab-separated line per photo (present.print_columns)."""
    if not hits:
        err.print("no matches")
        return
    renderable = _image_renderable() if previews else None
    if renderable is None:
        print_columns(hit_columns(hits))
        return
    table = Table(box=None, pad_edge=False, header_style="bold", show_lines=True)
    table.add_column("")
    columns = [column for column in hit_columns(hits) if any(column.cells)]
    for column in columns:
        table.add_column(column.header, justify=column.justify, style=column.style, overflow="fold")
    for hit, row in zip(hits, zip(*(column.cells for column in columns), strict=True), strict=True):
        try:
            thumbnail = renderable(_picture_of(hit), width=THUMB_CELLS[0], height=THUMB_CELLS[1])
        except Exception:  # an unreadable file gets no thumbnail; its row still shows
            thumbnail = Text("")
        table.add_row(thumbnail, *map(Text, row))
    try:
        out.print(table)
    except Exception:  # the terminal answered the image probe oddly (e.g. no cell size): no thumbnails
        print_columns(hit_columns(hits))


def hit_columns(hits: Sequence[Hit]) -> list[Column]:
    """What a result row says, one column each (empty columns are left out when printed)."""
    from .search import taken_text

    return [
        Column("#", [str(hit.rank) for hit in hits], "right", "dim"),
        Column("score", [f"{hit.score:.3f}" if hit.score is not None else "" for hit in hits], "right"),
        # the reranker's probability, when `query --rerank` rescored the hit (empty, so left out, otherwise)
        Column("rerank", [f"{hit.rerank:.3f}" if hit.rerank is not None else "" for hit in hits], "right"),
        Column("taken", [taken_text(hit.taken)[:10] if hit.taken is not None else "" for hit in hits]),
        Column("place", [hit.place or "" for hit in hits]),
        Column("path", [display_path(hit.path) for hit in hits]),
        Column("at", [hit.where for hit in hits], style="cyan"),  # a video's moment, a document's page
    ]


def _picture_of(hit: Hit) -> str | Image.Image:
    """What the thumbnail shows: the photo's file, or the matching frame of a video or page of a PDF."""
    if hit.kind not in ("video", "document"):
        return hit.path
    from .stills import still

    return still(hit.path, 160 * 160, time=hit.time, page=hit.page)


def _image_renderable():
    if not sys.stdout.isatty():
        return None
    from .termimages import renderables

    module = renderables()
    return None if module is None else module.Image


def print_duplicate_groups(groups: Sequence[DuplicateGroup], *, as_json: bool) -> None:
    if as_json:
        print_json([group.as_dict() for group in groups])
        return
    if not groups:
        err.print("no near-duplicates")
        return
    for number, group in enumerate(groups, 1):
        out.print(f"group {number}: {len(group.paths)} photos, similarity ≥ {group.similarity:.3f}")
        for path in group.paths:
            out.print(Text("  " + display_path(path)))
