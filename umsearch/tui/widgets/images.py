"""Which textual-image widget draws pictures: the best the terminal supports, or a fixed one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.widget import Widget

IMAGE_MODES = ("auto", "tgp", "sixel", "halfcell", "unicode")


def image_widget_class(mode: str = "auto") -> "type[Widget]":
    """`auto` lets textual-image probe the terminal (Kitty graphics, Sixel, else coloured half blocks)."""
    from textual_image import widget

    classes = {
        "auto": widget.Image,
        "tgp": widget.TGPImage,
        "sixel": widget.SixelImage,
        "halfcell": widget.HalfcellImage,
        "unicode": widget.UnicodeImage,
    }
    try:
        return classes[mode]
    except KeyError:
        raise ValueError(f"unknown image mode {mode!r} (expected one of {', '.join(IMAGE_MODES)})") from None
