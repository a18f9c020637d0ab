"""Small decoded copies of photos for the TUI, made off the UI thread and kept in a bounded cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..errors import ImageLoadError
from ..imageload import load_image

if TYPE_CHECKING:
    from PIL import Image

THUMB_PIXELS = 96  # a list thumbnail is a few cells wide: more pixels would only cost decode time
PREVIEW_PIXELS = 640
BACKGROUND = (24, 24, 24)


class ThumbnailCache:
    """Least-recently-used cache of (path, size) -> PIL image; thread-safe, at most `capacity` entries."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int, bool], Image.Image | None] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0  # how many times a file was actually decoded (for tests and curiosity)

    def get(self, path: str, pixels: int = THUMB_PIXELS, *, square: bool = True) -> Image.Image | None:
        """The photo scaled to fit `pixels` (padded to a square for list rows), or None if undecodable."""
        key = (path, pixels, square)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        image = self._make(path, pixels, square)
        with self._lock:
            self._items[key] = image
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return image

    def peek(self, path: str, pixels: int = THUMB_PIXELS, *, square: bool = True) -> Image.Image | None:
        """The cached image, or None when it is not cached (never decodes: safe on the UI thread)."""
        with self._lock:
            image = self._items.get((path, pixels, square))
            if image is not None:
                self._items.move_to_end((path, pixels, square))
            return image

    def cached(self, path: str, pixels: int = THUMB_PIXELS, *, square: bool = True) -> bool:
        with self._lock:
            return (path, pixels, square) in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _make(self, path: str, pixels: int, square: bool) -> Image.Image | None:
        from PIL import ImageOps

        try:
            # Decode at reduced size where the format allows: a thumbnail never needs the full photo.
            image = load_image(path, max_pixels=pixels * pixels * 4).image
        except (ImageLoadError, OSError):
            return None
        self.decoded += 1
        if square:
            return ImageOps.pad(image, (pixels, pixels), color=BACKGROUND)
        image.thumbnail((pixels, pixels))
        return image
