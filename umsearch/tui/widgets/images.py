"""Which textual-image widget draws pictures: the best the terminal supports, or a fixed one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The base class of every textual-image widget (a Textual Widget with an `image` to draw).
    from textual_image.widget._base import Image as ImageWidget

IMAGE_MODES = ("auto", "tgp", "sixel", "halfcell", "unicode")


def image_widget_class(mode: str = "auto") -> type[ImageWidget]:
    """`auto` lets textual-image probe the terminal (Kitty graphics, Sixel, else coloured half blocks); any other
    mode asks the terminal nothing (a terminal that never answers costs no wait and prints nothing)."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"unknown image mode {mode!r} (expected one of {', '.join(IMAGE_MODES)})")
    from ...termimages import widgets

    widget = widgets(probe=mode == "auto")

    classes = {
        "auto": widget.Image,
        "tgp": widget.TGPImage,
        "sixel": widget.SixelImage,
        "halfcell": widget.HalfcellImage,
        "unicode": widget.UnicodeImage,
    }
    return classes[mode]
