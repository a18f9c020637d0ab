"""The result list: one row per photo with its thumbnail, score and name."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Label, ListItem, ListView

from ...present import display_path
from ..service import Result

if TYPE_CHECKING:
    from .images import ImageWidget


def row_label(result: Result) -> str:
    # Escaped: a file name may hold newlines or bytes that are not UTF-8.
    name = display_path(os.path.basename(result.path))
    folder = display_path(os.path.basename(os.path.dirname(result.path)))
    score = f"{result.score:.3f}" if result.score is not None else ""
    where = f"  {result.where}" if result.where else ""
    return f"{score:>5}  {name}{where}\n       {folder}/"


class ResultRow(ListItem):
    def __init__(self, result: Result, image_class: type[ImageWidget]) -> None:
        super().__init__()
        self.result = result
        # Made here, not in compose: a thumbnail may arrive before the row is mounted.
        self.thumb = image_class(None, classes="thumb")
        self.label = Label(row_label(result), classes="row-text", markup=False)

    def compose(self):
        # Two widgets per row, laid out by the stylesheet: every extra widget costs layout time per result.
        yield self.thumb
        yield self.label

    def show(self, result: Result, thumbnail=None) -> None:
        """Reuse this row for another photo (far cheaper than removing and mounting rows)."""
        self.result = result
        self.label.update(row_label(result))
        self.thumb.image = thumbnail

    def set_thumbnail(self, result: Result, image) -> None:
        if image is not None and result == self.result:  # the row may show another photo by now
            self.thumb.image = image


class ResultList(ListView):
    """Arrow keys or j/k move, Enter opens; the app reacts to the highlighted row."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "app.open_selected", "Open", show=True),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, image_class: type[ImageWidget], **kwargs) -> None:
        super().__init__(**kwargs)
        self._image_class = image_class

    async def show_results(self, results: list[Result], cached_thumbnail) -> list[ResultRow]:
        """Show `results`, reusing the rows already mounted; returns the rows in order."""
        rows = [row for row in self.children if isinstance(row, ResultRow)]
        for row, result in zip(rows, results, strict=False):  # either list may be longer
            row.show(result, cached_thumbnail(result.path, time=result.time, page=result.page))
        if len(rows) > len(results):
            await self.remove_children(rows[len(results) :])
            rows = rows[: len(results)]
        if len(results) > len(rows):
            new = [ResultRow(result, self._image_class) for result in results[len(rows) :]]
            for row in new:
                row.show(row.result, cached_thumbnail(row.result.path, time=row.result.time, page=row.result.page))
            await self.extend(new)
            rows += new
        self.scroll_home(animate=False)
        if rows:
            # Re-highlight the first row even when the index was 0 already (it shows another photo now).
            self.index = None
            self.index = 0
        return rows

    @property
    def selected(self) -> Result | None:
        item = self.highlighted_child
        return item.result if isinstance(item, ResultRow) else None
