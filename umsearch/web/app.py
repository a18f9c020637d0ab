"""The gallery as an ASGI app (Starlette): the pages, their JSON endpoints, thumbnails and photos.

`build_app(session, token=..., host=..., port=...)` is what the resident service (or `umsearch web` on its
own) serves on a loopback TCP listener. Every request passes `security.Guard` first. Endpoints that touch the
index or the disk are plain functions, which Starlette runs on its worker threads (the Session is
thread-safe), so a slow model call never blocks the event loop.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import UmsearchError
from ..store.segments import Position
from . import pages
from .query import WebQuery, to_request
from .security import Guard
from .thumbs import SIZES, ThumbCache, ThumbnailError, cache_folder
from .uploads import UploadError, Uploads

if TYPE_CHECKING:
    from ..search import Hit
    from ..session import Session
    from ..store import FileRow, Store

PAGE_SIZE = 48  # tiles per page: a whole number of rows for 2, 3, 4, 6 and 8 columns
MAX_PAGE = 200
MAX_RESULTS = 4096
FIRST_WINDOW = 200  # results ranked at the first page of a query; doubled as the user scrolls past them
MAX_ID = 2**62  # larger numbers are no index id (and would overflow SQLite's integers)
WINDOW_TTL_S = 120.0  # how long a query's ranked list is reused for its further pages
SWEEP_EVERY_S = 600.0
STATIC = {
    "gallery.js": "text/javascript; charset=utf-8",
    "gallery.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# What a browser shows as it is; other formats (HEIC, RAW, TIFF) are previewed through the large thumbnail.
BROWSER_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "AVIF": "image/avif",
}


class Json(JSONResponse):
    """JSON as pure ASCII: undecodable file-name bytes (lone surrogates) cannot break the encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(message: str, status: int = 400) -> Json:
    return Json({"error": message}, status_code=status, headers={"cache-control": "no-store"})


@dataclass
class _Window:
    hits: list[Hit]
    complete: bool  # the ranking holds every match there is
    notice: str | None
    searched: int
    made: float = field(default_factory=time.monotonic)


class Gallery:
    """The endpoints, over one session, one thumbnail cache and one side connection for browsing facts."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.thumbs = ThumbCache(cache_folder(session.db_path))
        self.uploads = Uploads(self.thumbs.folder / "uploads")
        self._side: Store | None = None
        self._side_lock = threading.Lock()
        self._windows: dict[WebQuery, _Window] = {}
        self._windows_lock = threading.Lock()
        self._last_sweep = 0.0
        self._sweeping = threading.Lock()
        self._dupes: dict[float, tuple[float, list[dict]]] = {}

    # ---- a second connection for what the Session does not offer (facets, dupes, sweeping) ----------
    def side(self) -> Store:
        from ..store import Store

        if self._side is None:
            self._side = Store.open(self.session.db_path, create=False)
        return self._side

    def close(self) -> None:
        self.uploads.clear()
        with self._side_lock:
            if self._side is not None:
                self._side.close()
                self._side = None

    def maybe_sweep(self) -> None:
        """Now and then (on requests, never on a timer thread), drop thumbnails of photos that left the index."""
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_S or not self._sweeping.acquire(blocking=False):
            return
        self._last_sweep = now

        def sweep() -> None:
            try:
                with self._side_lock:
                    ids = self.side().ok_ids()
                self.thumbs.sweep(ids)
                self.uploads.expire()
            except Exception:
                pass  # a sweep is housekeeping: the next one tries again
            finally:
                self._sweeping.release()

        threading.Thread(target=sweep, name="umsearch-web-sweep", daemon=True).start()

    # ---- pages ---------------------------------------------------------------------------------------
    def page(self, request: Request) -> Response:
        name = {"/": "search", "/dupes": "dupes", "/status": "status"}[request.url.path]
        from ..present import display_path

        body = pages.shell(name, index_name=display_path(str(self.session.db_path)))
        return Response(body, media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"})

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:  # a fixed list: no path from the request ever reaches the file system
            return Response("not found\n", status_code=404, media_type="text/plain")
        data = resources.files(__package__).joinpath("static").joinpath(name).read_bytes()  # one part each: 3.10
        return Response(data, media_type=STATIC[name], headers={"cache-control": "no-cache"})

    # ---- search ----------------------------------------------------------------------------------------
    def search(self, request: Request) -> Response:
        self.maybe_sweep()
        params = request.query_params
        try:
            query = WebQuery(
                text=params.get("q", "")[:4000],
                like=_int_param(params.get("like"), "like"),
                upload=params.get("upload") or None,
                after=params.get("after") or None,
                before=params.get("before") or None,
                folders=tuple(f for f in params.getlist("in") if f),
                types=params.get("type") or None,
                camera=params.get("camera") or None,
                place=params.get("place") or None,
            )
            offset = max(0, _int_param(params.get("offset"), "offset") or 0)
            limit = min(MAX_PAGE, max(1, _int_param(params.get("limit"), "limit") or PAGE_SIZE))
            if query.is_browse():
                hits = self.session.recent(min(MAX_RESULTS, offset + limit))[offset:]
                return self._answer(hits, offset, limit, complete=len(hits) < limit, notice=None, searched=None)
            window = self._window(query, offset + limit)
        except (UmsearchError, UploadError) as exc:
            return _error(str(exc))
        page = window.hits[offset : offset + limit]
        complete = window.complete and offset + limit >= len(window.hits)
        return self._answer(page, offset, limit, complete=complete, notice=window.notice, searched=window.searched)

    def _window(self, query: WebQuery, wanted: int) -> _Window:
        """The ranked list of a query, long enough for `wanted` results: further pages of the same query
        reuse it (an uploaded image is embedded once, and the order stays put while the user scrolls)."""
        from ..session import SearchQuery

        now = time.monotonic()
        with self._windows_lock:
            self._windows = {k: w for k, w in self._windows.items() if now - w.made < WINDOW_TTL_S}
            window = self._windows.get(query)
        if window is not None and (window.complete or len(window.hits) >= wanted):
            return window
        size = min(MAX_RESULTS, max(FIRST_WINDOW, 2 * wanted, 2 * len(window.hits) if window else 0))
        upload_path = self.uploads.path(query.upload) if query.upload else None
        request = to_request(self.session, query, upload_path)
        result = self.session.search(SearchQuery(request, limit=min(size, request.limit or size)))
        complete = len(result.hits) < size or size >= MAX_RESULTS or request.limit is not None
        hits = result.hits
        if window is not None:
            # A longer ranking rescores a longer shortlist, so its order may differ slightly from the shorter
            # one's: keep what the page already shows as it was, and only append, so scrolling never skips
            # or repeats a photo.
            shown = {hit.file_id for hit in window.hits}
            hits = window.hits + [hit for hit in hits if hit.file_id not in shown]
            hits = [replace(hit, rank=i + 1) for i, hit in enumerate(hits)]
        window = _Window(hits, complete, result.notice, result.searched)
        with self._windows_lock:
            if len(self._windows) > 32:
                self._windows.pop(next(iter(self._windows)))
            self._windows[query] = window
        return window

    def _answer(
        self, hits: list[Hit], offset: int, limit: int, *, complete: bool, notice: str | None, searched: int | None
    ) -> Json:
        body = {
            "hits": [_hit(h) for h in hits[:limit]],
            "offset": offset,
            "more": not complete and len(hits) >= limit,
            "notice": notice,
            "searched": searched,
        }
        return Json(body, headers={"cache-control": "no-store"})

    async def upload(self, request: Request) -> Response:
        """An image dropped or pasted on the page, kept privately for the searches that use it."""
        from starlette.concurrency import run_in_threadpool

        try:
            data = await self.uploads.read_body(request)
            handle = await run_in_threadpool(self.uploads.keep, data, request.headers.get("content-type", ""))
        except UploadError as exc:
            return _error(str(exc), exc.status)
        return Json({"upload": handle}, headers={"cache-control": "no-store"})

    # ---- one photo -----------------------------------------------------------------------------------
    def _row(self, request: Request) -> FileRow | None:
        file_id = request.path_params["file_id"]
        if file_id > MAX_ID:
            return None
        row = self.session.photo(file_id)
        if row is None or row.status != "ok":
            self.thumbs.forget(file_id)
            return None
        return row

    def details(self, request: Request) -> Response:
        row = self._row(request)
        details = self.session.details(row.id) if row is not None else None
        if details is None:
            return _error("no such photo in the index", 404)
        from ..metadata import file_extension
        from ..present import display_path

        shown = display_path(details.path)
        body = {
            "id": details.file_id,
            "path": shown,
            "name": display_path(os.path.basename(details.path)),
            "folder": display_path(os.path.dirname(details.path)),
            "width": details.width,
            "height": details.height,
            "bytes": details.size,
            "taken": details.taken.strftime("%Y-%m-%d %H:%M") if details.taken else None,
            "camera": details.camera,
            "place": details.place,
            "type": file_extension(details.path),
        }
        return Json(body, headers={"cache-control": "no-store"})

    def thumb(self, request: Request) -> Response:
        size = request.path_params["size"]
        if size not in SIZES:
            return _error(f"thumbnail sizes are {', '.join(map(str, SIZES))}", 404)
        row = self._row(request)
        if row is None:
            return _error("no such photo in the index", 404)
        try:
            position = _position(request)
            found = self.thumbs.lookup(row, size, position)
            if found is not None and request.headers.get("if-none-match") == found.etag:
                return Response(status_code=304, headers=_image_cache(found.etag))
            thumb = found or self.thumbs.get(row, size, position)
        except UmsearchError as exc:
            return _error(str(exc))
        except ThumbnailError as exc:
            return _error(str(exc), 404)
        return FileResponse(thumb.path, media_type="image/jpeg", headers=_image_cache(thumb.etag), stat_result=None)

    def original(self, request: Request) -> Response:
        """The photo file itself when a browser can show it, else its large preview."""
        row = self._row(request)
        if row is None:
            return _error("no such photo in the index", 404)
        media = _browser_type(row.path) or _media_type(row)
        if media is None:
            try:
                thumb = self.thumbs.get(row, max(SIZES))
            except ThumbnailError as exc:
                return _error(str(exc), 404)
            return FileResponse(thumb.path, media_type="image/jpeg", headers=_image_cache(thumb.etag))
        try:
            etag = f'"{ThumbCache.fingerprint(row)}-o"'
        except ThumbnailError as exc:
            return _error(str(exc), 404)
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=_image_cache(etag))
        return FileResponse(row.path, media_type=media, headers=_image_cache(etag))

    # ---- the index -----------------------------------------------------------------------------------
    def status(self, request: Request) -> Response:
        from ..present import display_path

        report = self.session.status(failures=500)
        report["db"] = display_path(report["db"])
        report["failures"] = [{"path": display_path(f["path"]), "reason": f["reason"]} for f in report["failures"]]
        watcher = report.get("watcher")
        if watcher:
            watcher["roots"] = [display_path(r) for r in watcher["roots"]]
        files, size = self.thumbs.usage()
        report["thumbnails"] = {"files": files, "bytes": size, "folder": display_path(str(self.thumbs.folder))}
        report["model_loaded"] = self.session.model_loaded
        return Json(report, headers={"cache-control": "no-store"})

    def facets(self, request: Request) -> Response:
        from ..present import display_path

        with self._side_lock:
            side = self.side()
            body = {
                kind: [
                    {"value": display_path(v) if kind == "folder" else v, "count": c}
                    for v, c in side.facet_counts(kind)
                ]
                for kind in ("camera", "place", "ext", "folder")
            }
        return Json(body, headers={"cache-control": "no-store"})

    def dupes(self, request: Request) -> Response:
        from ..dupes import find_duplicates
        from ..present import display_path

        try:
            threshold = float(request.query_params.get("threshold", "0.95"))
        except ValueError:
            return _error("threshold: not a number")
        if not 0.5 <= threshold <= 1.0:
            return _error("threshold: between 0.5 and 1")
        with self._side_lock:
            side = self.side()
            cached = self._dupes.get(threshold)
            generation = side.vectors_generation()
            if cached is None or cached[0] != generation:
                groups = find_duplicates(side, threshold)
                found = [
                    {
                        "ids": list(group.ids),
                        "names": [display_path(os.path.basename(p)) for p in group.paths],
                        "paths": [display_path(p) for p in group.paths],
                        "similarity": round(group.similarity, 4),
                    }
                    for group in groups
                ]
                self._dupes = {threshold: (generation, found)}
                cached = self._dupes[threshold]
        return Json({"threshold": threshold, "groups": cached[1]}, headers={"cache-control": "no-store"})


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.strip().lstrip("-").isdigit() or len(value) > 18:
        raise UmsearchError(f"{name}: not a number")
    return int(value)


def _hit(hit: Hit) -> dict:
    from ..present import display_path
    from ..search import taken_text

    return {
        "id": hit.file_id,
        "rank": hit.rank,
        "score": None if hit.score is None else round(hit.score, 4),
        "name": display_path(os.path.basename(hit.path)),
        "taken": taken_text(hit.taken)[:16] if hit.taken is not None else None,
        "place": hit.place,
        "kind": hit.kind,
        "time": hit.time,  # a video: the matching frame (its thumbnail: ?t=, the original: #t=)
        "page": hit.page,  # a document: the matching page (?p=, #page=)
        "at": hit.where,
    }


def _position(request: Request) -> Position:
    """A thumbnail's frame (`?t=SECONDS`) or page (`?p=N`)."""
    time, page = request.query_params.get("t"), request.query_params.get("p")
    seconds = None
    if time is not None:
        try:
            seconds = float(time)
        except ValueError:
            raise UmsearchError("t: not a number of seconds") from None
        if not 0 <= seconds < 10**7:
            raise UmsearchError("t: out of range")
    number = _int_param(page, "p")
    if number is not None and not 1 <= number <= 100_000:
        raise UmsearchError("p: out of range")
    return Position(seconds, number)


# Videos and PDFs a browser plays or shows itself (its player starts at #t=, its PDF viewer at #page=).
_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".3gp": "video/3gpp",
    ".avi": "video/x-msvideo",
    ".pdf": "application/pdf",
}


def _media_type(row: FileRow) -> str | None:
    if row.kind not in ("video", "document"):
        return None
    return _MEDIA_TYPES.get(os.path.splitext(row.path)[1].lower())


def _image_cache(etag: str) -> dict[str, str]:
    return {"etag": etag, "cache-control": "private, max-age=60"}


def _browser_type(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:  # reads the header only
            return BROWSER_FORMATS.get(img.format or "")
    except Exception:
        return None


def build_app(session: Session, *, token: str, host: str, port: int) -> Guard:
    """The gallery of `session`'s index, answering only at host:port with this start's token."""
    gallery = Gallery(session)
    routes = [
        Route("/", gallery.page),
        Route("/dupes", gallery.page),
        Route("/status", gallery.page),
        Route("/static/{name}", gallery.static),
        Route("/api/search", gallery.search),
        Route("/api/upload", gallery.upload, methods=["POST"]),
        Route("/api/photo/{file_id:int}", gallery.details),
        Route("/api/thumb/{file_id:int}/{size:int}", gallery.thumb),
        Route("/api/original/{file_id:int}", gallery.original),
        Route("/api/status", gallery.status),
        Route("/api/facets", gallery.facets),
        Route("/api/dupes", gallery.dupes),
    ]
    app = Starlette(routes=routes)
    app.state.gallery = gallery
    guarded = Guard(app, token=token, host=host, port=port)
    guarded.gallery = gallery  # type: ignore[attr-defined]
    return guarded
