"""Images dropped or pasted on the gallery: checked, kept in the gallery's private folder under a random
handle for the searches (and their further pages) that use them, and deleted after a while.

The page refers to an upload only by its handle; the server alone knows where the file lies.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ImageLoadError

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_BYTES = 50 * 1024 * 1024
KEEP = 16  # uploads remembered at once (older ones are deleted)
MAX_AGE_S = 6 * 3600
# The extension tells the decoder what to expect (HEIC needs pillow-heif registered, for example).
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/avif": ".avif",
}


class UploadError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Uploads:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._handles: dict[str, Path] = {}
        self._lock = threading.Lock()

    async def read_body(self, request: Request) -> bytes:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in EXTENSIONS:
            raise UploadError("send an image (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF)", 415)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BYTES:
            raise UploadError(f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB", 413)
        chunks: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_BYTES:
                raise UploadError(f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB", 413)
            chunks.append(chunk)
        if not received:
            raise UploadError("the upload is empty")
        return b"".join(chunks)

    def keep(self, data: bytes, content_type: str) -> str:
        """Store the image if it decodes; returns its handle."""
        from ..imageload import load_image

        media = content_type.split(";")[0].strip().lower()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        handle, temp = tempfile.mkstemp(dir=self.folder, prefix="upload-", suffix=EXTENSIONS[media])
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            load_image(temp, 64 * 64)  # decodes (bounded): a broken or hostile file is refused now
        except ImageLoadError as exc:
            os.unlink(temp)
            raise UploadError(f"the dropped file is not an image that can be read ({exc})") from None
        name = secrets.token_urlsafe(12)
        with self._lock:
            self._handles[name] = Path(temp)
            while len(self._handles) > KEEP:
                oldest = next(iter(self._handles))
                self._handles.pop(oldest).unlink(missing_ok=True)
        return name

    def path(self, handle: str) -> str:
        with self._lock:
            found = self._handles.get(handle)
        if found is None or not found.is_file():
            raise UploadError("that dropped image is gone: drop it again")
        return str(found)

    def expire(self) -> None:
        """Delete uploads older than MAX_AGE_S, and files left by an earlier run."""
        if not self.folder.is_dir():
            return
        now = time.time()
        with self._lock:
            known = set(self._handles.values())
            for handle, path in list(self._handles.items()):
                if not path.is_file() or now - path.stat().st_mtime > MAX_AGE_S:
                    self._handles.pop(handle)
                    path.unlink(missing_ok=True)
            for entry in self.folder.iterdir():
                if entry not in known:
                    entry.unlink(missing_ok=True)

    def clear(self) -> None:
        with self._lock:
            for path in self._handles.values():
                path.unlink(missing_ok=True)
            self._handles.clear()
