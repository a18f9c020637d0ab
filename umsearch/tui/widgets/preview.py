"""The preview pane: a larger picture of the selected photo and what is known about it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from textual.containers import Vertical
from textual.widgets import Static

from ...present import display_path, human_bytes
from ..service import Details

if TYPE_CHECKING:
    from .images import ImageWidget


def describe(details: Details, where: str = "") -> str:
    folder, name = os.path.split(details.path)
    lines = [display_path(name), display_path(folder) + os.sep]
    if details.kind != "photo" or where:
        lines.append(f"{details.kind}  {where}".rstrip())
    size = human_bytes(details.size)
    if details.width and details.height:
        size = f"{details.width} × {details.height} px · {size}"
    lines.append(size)
    if details.date is not None:
        lines.append(details.date.strftime("%Y-%m-%d %H:%M"))
    return "\n".join(lines)


class Preview(Vertical):
    def __init__(self, image_class: type[ImageWidget], **kwargs) -> None:
        super().__init__(**kwargs)
        self._picture = image_class(None, id="preview-image")

    def compose(self):
        with Vertical(id="preview-image-box"):
            yield self._picture
        yield Static("", id="preview-meta", markup=False)

    def show(self, details: Details | None, image, where: str = "") -> None:
        self._picture.image = image
        self.query_one("#preview-meta", Static).update(describe(details, where) if details else "")

    def clear(self) -> None:
        self.show(None, None)
