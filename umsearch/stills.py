"""The picture that stands for an item in a preview: a photo itself, a video's frame at a moment, a PDF's page.

Shared by the front-ends (terminal tables, the TUI, the web gallery), none of which decodes media itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .imageload import load_image
from .kinds import DOCUMENT, VIDEO, kind_by_extension

if TYPE_CHECKING:
    from PIL import Image


def still(path: str, max_pixels: int, *, time: float | None = None, page: int | None = None) -> Image.Image:
    """What to show for an item: a photo, a video's frame (at `time`, else its first), a PDF's page (`page`,
    else the first), upright and RGB, decoded at reduced size where the format allows. Raises ImageLoadError
    (or OSError) with the reason when the file cannot be shown."""
    kind = kind_by_extension(path)
    if kind == VIDEO:
        from .video import frame_at

        return frame_at(path, time or 0.0, max_pixels)
    if kind == DOCUMENT:
        from .pdfpages import render_page

        return render_page(path, page or 1, max_pixels)
    return load_image(path, max_pixels=max_pixels).image
