"""Search results with dates and places, inline thumbnails, and duplicate groups (terminal output)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from .present import display_path, err, out, print_json

if TYPE_CHECKING:
    from .dupes import DuplicateGroup
    from .search import Hit

THUMB_CELLS = (16, 8)  # width x height in terminal cells


def print_hits_with_facts(hits: Sequence["Hit"], *, previews: bool = False) -> None:
    """Rank, score, date taken, place and path; with `previews`, a thumbnail first where the terminal can
    show images (kitty or iTerm2 graphics, sixel, or unicode half blocks) and nothing extra otherwise."""
    from .search import taken_text

    if not hits:
        err.print("no matches")
        return
    renderable = _image_renderable() if previews else None
    table = Table(box=None, pad_edge=False, header_style="bold", show_lines=renderable is not None)
    if renderable is not None:
        table.add_column("")
    table.add_column("#", justify="right", style="dim")
    table.add_column("score", justify="right")
    reranked = any(hit.rerank is not None for hit in hits)
    if reranked:
        table.add_column("rerank", justify="right")
    table.add_column("taken")
    table.add_column("place", overflow="fold")
    table.add_column("path", overflow="fold")
    for hit in hits:
        cells = [
            str(hit.rank),
            f"{hit.score:.3f}",
            *([f"{hit.rerank:.3f}" if hit.rerank is not None else ""] if reranked else []),
            taken_text(hit.taken)[:10] if hit.taken is not None else "",
            Text(hit.place or ""),
            Text(display_path(hit.path)),
        ]
        if renderable is not None:
            try:
                cells.insert(0, renderable(hit.path, width=THUMB_CELLS[0], height=THUMB_CELLS[1]))
            except Exception:  # an unreadable file gets no thumbnail; its row still shows
                cells.insert(0, Text(""))
        table.add_row(*cells)
    try:
        out.print(table)
    except Exception:  # the terminal answered the image probe oddly (e.g. no cell size): no thumbnails
        if renderable is None:
            raise
        print_hits_with_facts(hits, previews=False)


def _image_renderable():
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
            out.print(Text("  " + display_path(path)))
