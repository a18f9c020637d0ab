"""The result list: one row per photo with its thumbnail, score and name."""

from __future__ import annotations

import os

from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, ListItem, ListView

from ..service import Result


def row_label(result: Result) -> str:
    name = os.path.basename(result.path)
    folder = os.path.basename(os.path.dirname(result.path))
    score = f"{result.score:.3f}" if result.score is not None else ""
    return f"{score:>5}  {name}\n       {folder}/"


class ResultRow(ListItem):
    def __init__(self, result: Result, image_class: type[Widget]) -> None:
        super().__init__()
        self.result = result
        # Made here, not in compose: a thumbnail may arrive before the row is mounted.
        self.thumb = image_class(None, classes="thumb")

    def compose(self):
        with Horizontal(classes="row"):
            yield self.thumb
            yield Label(row_label(self.result), classes="row-text", markup=False)

    def set_thumbnail(self, image) -> None:
        if image is not None:
            self.thumb.image = image


class ResultList(ListView):
    """Arrow keys or j/k move, Enter opens; the app reacts to the highlighted row."""

    BINDINGS = [
        Binding("enter", "open_selected", "Open", show=True),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def action_open_selected(self) -> None:
        self.app.action_open_selected()

    @property
    def selected(self) -> Result | None:
        item = self.highlighted_child
        return item.result if isinstance(item, ResultRow) else None
