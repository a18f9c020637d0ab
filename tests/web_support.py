"""Helpers for the gallery's tests: a small photo library (landscape-like pictures, PNGs, odd file names, a
broken file), indexed with the tiny model, and the real gallery server on a free loopback port."""

from __future__ import annotations

import http.client
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from umsearch.index import Indexer
from umsearch.session import Session
from umsearch.settings import max_pixels
from umsearch.store import Store
from umsearch.web.server import GalleryServer

from .service_support import Processes, service_env, umsearch

SKIES = [
    ((32, 58, 120), (250, 160, 90)),  # dusk
    ((70, 140, 220), (190, 225, 250)),  # day
    ((12, 16, 40), (60, 50, 110)),  # night
    ((250, 120, 60), (255, 215, 140)),  # sunset
    ((120, 170, 200), (230, 235, 240)),  # haze
]
GROUNDS = [(40, 90, 60), (90, 110, 70), (30, 60, 110), (150, 130, 100), (60, 70, 80)]
ODD_NAMES = ['it\'s "quoted" & <b>bold<b>.jpg', "<img src=x onerror=alert(1)>.jpg", "<script>alert(1)<.jpg"]
NON_UTF8_NAME = b"caf\xe9 \xff.jpg"


def scene(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A landscape-like picture: a sky gradient, a sun or moon, ridges of hills and water; distinct per seed."""
    rng = random.Random(seed)
    w, h = size
    top, bottom = SKIES[seed % len(SKIES)]
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.45, 0.7))
    for y in range(h):
        t = min(1.0, y / max(1, horizon))
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    sx, sy, r = rng.randint(w // 6, 5 * w // 6), rng.randint(h // 10, horizon // 2), rng.randint(14, 40)
    draw.ellipse([sx - r, sy - r, sx + r, sy + r], fill=(255, 240, 200) if seed % 5 != 2 else (235, 235, 250))
    ground = GROUNDS[(seed // 2) % len(GROUNDS)]
    for layer in range(3):
        shade = tuple(max(0, c - 25 * (2 - layer)) for c in ground)
        base = horizon + layer * (h - horizon) // 4
        points = [(0, h)]
        phase, amp = rng.uniform(0, 6.3), rng.uniform(10, 45)
        for x in range(0, w + 20, 20):
            points.append((x, base - amp * (0.6 + 0.4 * math.sin(x / rng.uniform(40, 90) + phase))))
        points.append((w, h))
        draw.polygon(points, fill=shade)
    if seed % 3 == 0:  # a lake reflecting the sky
        draw.rectangle([0, int(h * 0.82), w, h], fill=tuple(int(c * 0.8) for c in bottom))
    return img.filter(ImageFilter.SMOOTH_MORE)


def write_scene(path: Path, seed: int, size: tuple[int, int] = (480, 360), **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scene(seed, size).save(path, **save)
    return path


@dataclass
class Library:
    db: Path
    photos: Path
    pngs: list[Path]
    broken: Path
    odd: list[Path]


def make_library(root: Path, embedder, count: int = 24) -> Library:
    photos = root / "photos"
    for i in range(count):
        write_scene(photos / "trips" / f"IMG_{i:04d}.jpg", i, quality=88)
    pngs = [write_scene(photos / "screens" / f"shot_{i}.png", 100 + i) for i in range(3)]
    odd = [write_scene(photos / "odd" / name, 200 + i, (240, 180)) for i, name in enumerate(ODD_NAMES)]
    raw = os.fsencode(photos / "odd") + b"/" + NON_UTF8_NAME
    scene(210, (240, 180)).save(raw.decode("utf-8", "surrogateescape"), "JPEG")
    odd.append(Path(raw.decode("utf-8", "surrogateescape")))
    broken = photos / "broken.jpg"
    broken.write_bytes(b"this is not a picture at all")
    db = root / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: embedder, max_pixels=max_pixels(1280)).index([str(photos)])
    return Library(db, photos, pngs, broken, odd)


@contextmanager
def running_gallery(db: Path, embedder, **server_options: object) -> Iterator[GalleryServer]:
    """The gallery of `db` on a free loopback port, stopped (and its session closed) on the way out."""
    session = Session(Store.open(db), embedder_factory=lambda *args: embedder)
    server = GalleryServer(session, **server_options).start()
    try:
        yield server
    finally:
        server.stop()
        session.close()


class Client:
    """Raw HTTP to the gallery, so tests control every header (Host, Origin, Cookie) and the exact path."""

    def __init__(self, server: GalleryServer) -> None:
        self.server = server
        self.port = server.port
        self.cookie = f"umsearch-{server.port}={server.token}"

    def request(
        self,
        method: str,
        path: str,
        *,
        host: str | None = None,
        cookie: str | bool | None = True,
        origin: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{self.port}")
        if cookie is True:
            conn.putheader("Cookie", self.cookie)
        elif cookie:
            conn.putheader("Cookie", cookie)
        if origin is not None:
            conn.putheader("Origin", origin)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        conn.close()
        return response

    def get(self, path: str, **options: object) -> http.client.HTTPResponse:
        return self.request("GET", path, **options)  # type: ignore[arg-type]

    def json(self, path: str) -> dict:
        import json

        response = self.get(path)
        assert response.status == 200, (path, response.status, response.body)  # type: ignore[attr-defined]
        return json.loads(response.body)  # type: ignore[attr-defined]


@dataclass
class ServiceGallery:
    """The gallery as `umsearch web` gives it: served by the index's real background service."""

    url: str
    origin: str
    port: int
    token: str
    pid: int | None


@contextmanager
def gallery_from_the_service(db: Path, home: Path) -> Iterator[ServiceGallery]:
    """Run `umsearch web --no-open --port 0` (which starts the service), and stop that service afterwards."""
    processes = Processes()
    processes.index(db)
    env = service_env(home, db)
    try:
        done = umsearch(env, "web", "--no-open", "--port", "0")
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()
        origin, _, token = url.partition("/?token=")
        port = int(origin.rsplit(":", 1)[1])
        yield ServiceGallery(url, origin, port, token, processes.service_pid(db))
        stopped = umsearch(env, "server", "stop")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        processes.cleanup()
