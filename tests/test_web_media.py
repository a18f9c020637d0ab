"""The web gallery with a video and a PDF: hits say which frame or page matched, thumbnails show it, and the
original is the file itself (a browser plays it from #t= or opens it at #page=)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from umsearch.index import Indexer
from umsearch.store import Store

from .media_support import Scene, write_pdf, write_video
from .photos import write_photo
from .web_support import Client, running_gallery

pytest.importorskip("av")
pytest.importorskip("pypdfium2")

RED, BLUE = (210, 30, 30), (30, 40, 200)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, tiny_embedder):
    root = tmp_path_factory.mktemp("web-media")
    media = root / "media"
    write_photo(media / "beach.jpg", 1)
    write_video(media / "clip.mp4", [Scene(RED, 2, still=True), Scene(BLUE, 2, pattern=1, still=True)])
    write_pdf(media / "letter.pdf", [["Dear"], ["Second page"]])
    db = root / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=1280 * 784).index([str(media)])
    with running_gallery(db, tiny_embedder) as server:
        yield Client(server), media


def mean_colour(body: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(body)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


def test_hits_name_their_kind_and_place_in_the_file(gallery) -> None:
    client, _ = gallery
    hits = {hit["name"]: hit for hit in client.json("/api/search?q=anything&limit=10")["hits"]}
    assert hits["clip.mp4"]["kind"] == "video" and hits["clip.mp4"]["time"] in (0.0, 2.0)
    assert hits["clip.mp4"]["at"].startswith("▶ 0:0")
    assert hits["letter.pdf"]["kind"] == "document" and hits["letter.pdf"]["page"] in (1, 2)
    assert hits["beach.jpg"]["kind"] == "photo" and hits["beach.jpg"]["time"] is None


def test_a_thumbnail_shows_the_frame_or_page_asked_for(gallery) -> None:
    client, _ = gallery
    ids = {hit["name"]: hit["id"] for hit in client.json("/api/search?limit=10")["hits"]}
    start = client.get(f"/api/thumb/{ids['clip.mp4']}/256?t=0")
    later = client.get(f"/api/thumb/{ids['clip.mp4']}/256?t=3")
    assert start.status == later.status == 200 and start.getheader("ETag") != later.getheader("ETag")
    red, blue = mean_colour(start.body), mean_colour(later.body)
    assert red[0] > red[2] + 80 and blue[2] > blue[0] + 80
    first, second = (client.get(f"/api/thumb/{ids['letter.pdf']}/256?p={n}") for n in (1, 2))
    assert first.status == second.status == 200 and first.body != second.body
    assert client.get(f"/api/thumb/{ids['clip.mp4']}/256?t=abc").status == 400
    assert client.get(f"/api/thumb/{ids['letter.pdf']}/256?p=0").status == 400


def test_the_original_of_a_video_or_pdf_is_the_file_for_the_browser(gallery) -> None:
    client, media = gallery
    ids = {hit["name"]: hit["id"] for hit in client.json("/api/search?limit=10")["hits"]}
    video = client.get(f"/api/original/{ids['clip.mp4']}")
    assert video.status == 200 and video.getheader("Content-Type") == "video/mp4"
    assert video.body == (media / "clip.mp4").read_bytes()
    part = client.get(f"/api/original/{ids['clip.mp4']}", headers={"Range": "bytes=0-99"})
    assert part.status == 206 and len(part.body) == 100  # players seek with ranges
    pdf = client.get(f"/api/original/{ids['letter.pdf']}")
    assert pdf.status == 200 and pdf.getheader("Content-Type") == "application/pdf"
