"""Small decoded copies of photos (a video's frame, a PDF's page) for the TUI, made off the UI thread and kept
in a bounded cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..errors import ImageLoadError
from ..stills import still

if TYPE_CHECKING:
    from PIL import Image

THUMB_PIXELS = 96  # a list thumbnail is a few cells wide: more pixels would only cost decode time
PREVIEW_PIXELS = 640
BACKGROUND = (24, 24, 24)


class ThumbnailCache:
    """Least-recently-used cache of (path, size) -> PIL image; thread-safe, at most `capacity` entries."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, Image.Image | None] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0  # how many times a file was actually decoded (for tests and curiosity)

    def get(
        self,
        path: str,
        pixels: int = THUMB_PIXELS,
        *,
        square: bool = True,
        time: float | None = None,
        page: int | None = None,
    ) -> Image.Image | None:
        """The photo (or the video's frame at `time`, the PDF's `page`) scaled to fit `pixels` (padded to a
        square for list rows), or None if undecodable."""
        key = (path, pixels, square, time, page)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        image = self._make(path, pixels, square, time, page)
        with self._lock:
            self._items[key] = image
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return image

    def peek(
        self,
        path: str,
        pixels: int = THUMB_PIXELS,
        *,
        square: bool = True,
        time: float | None = None,
        page: int | None = None,
    ) -> Image.Image | None:
        """The cached image, or None when it is not cached (never decodes: safe on the UI thread)."""
        key = (path, pixels, square, time, page)
        with self._lock:
            image = self._items.get(key)
            if image is not None:
                self._items.move_to_end(key)
            return image

    def cached(
        self, path: str, pixels: int = THUMB_PIXELS, *, square: bool = True, time: float | None = None, page=None
    ) -> bool:
        with self._lock:
            return (path, pixels, square, time, page) in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _make(self, path: str, pixels: int, square: bool, time: float | None, page: int | None) -> Image.Image | None:
        from PIL import ImageOps

        try:
            image = still(path, pixels * pixels * 4, time=time, page=page)
        except (ImageLoadError, OSError):
            return None
        self.decoded += 1
        if square:
            return ImageOps.pad(image, (pixels, pixels), color=BACKGROUND)
        image.thumbnail((pixels, pixels))
        return image
