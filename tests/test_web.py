"""The web gallery over real HTTP (uvicorn on a loopback port, the tiny model): its security rules one by one,
its endpoints, and its thumbnail cache."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from umsearch.store import Store
from umsearch.web import pages
from umsearch.web.security import allowed_hosts
from umsearch.web.thumbs import ThumbCache, cache_folder

from .service_support import service_env, umsearch
from .web_support import Client, gallery_from_the_service, make_library, running_gallery, scene, write_scene

pytestmark = pytest.mark.slow  # a served gallery over a real index, the service as a process

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_embedder):
    return make_library(tmp_path_factory.mktemp("web-lib"), tiny_embedder)


@pytest.fixture(scope="module")
def server(library, tiny_embedder):
    with running_gallery(library.db, tiny_embedder) as gallery:
        yield gallery


@pytest.fixture
def client(server) -> Client:
    return Client(server)


def ids_by_name(client: Client) -> dict[str, int]:
    hits = client.json("/api/search?limit=200")["hits"]
    return {hit["name"]: hit["id"] for hit in hits}


# ---- the token -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/", "/status", "/api/search?q=lake", "/api/thumb/1/256", "/api/original/1", "/static/gallery.js"]
)
def test_every_request_without_the_token_is_refused(client, path) -> None:
    for cookie in (None, f"umsearch-{client.port}=not-the-token", f"umsearch-{client.port + 1}={client.server.token}"):
        response = client.get(path, cookie=cookie)
        assert response.status == 403, (path, cookie)
        assert client.server.token.encode() not in response.body


def test_the_token_in_the_url_becomes_a_strict_httponly_cookie_and_leaves_the_address(client) -> None:
    response = client.get(f"/status?token={client.server.token}", cookie=None)
    assert response.status == 303
    assert response.getheader("Location") == "/status"
    cookie = response.getheader("Set-Cookie")
    assert cookie.startswith(f"umsearch-{client.port}={client.server.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/status", cookie=cookie.split(";")[0])
    assert page.status == 200 and b"Index status" in page.body


def test_a_wrong_token_in_the_url_is_refused_and_sets_nothing(client) -> None:
    for query in ("token=wrong", f"token={client.server.token}x", f"token={client.server.token}&token=wrong"):
        response = client.get(f"/?{query}", cookie=None)
        assert response.status == 403 and response.getheader("Set-Cookie") is None


def test_the_token_redirect_never_leads_off_the_gallery(client) -> None:
    for path in ("//evil.example/", "/\\evil.example", "/api/../..//evil.example"):
        response = client.get(f"{path}?token={client.server.token}", cookie=None)
        assert response.status in (303, 404)
        if response.status == 303:
            assert response.getheader("Location") == "/"


# ---- Host and Origin -------------------------------------------------------------------------------------
def test_a_foreign_host_header_is_refused_even_with_the_token(client) -> None:
    for host in ("evil.example", f"evil.example:{client.port}", f"127.0.0.1:{client.port + 1}", "127.0.0.1", ""):
        assert client.get("/api/search?q=lake", host=host).status == 421, host
    for host in (f"127.0.0.1:{client.port}", f"localhost:{client.port}", f"[::1]:{client.port}"):
        assert client.get("/api/status", host=host).status == 200, host


def test_a_rebinding_name_or_a_wildcard_host_is_never_allowed() -> None:
    assert allowed_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    assert "0.0.0.0:80" not in allowed_hosts("0.0.0.0", 80)
    assert "192.168.1.5:80" in allowed_hosts("192.168.1.5", 80)  # only with --allow-remote, see below


def test_requests_that_change_anything_need_the_gallerys_own_origin(client) -> None:
    png = io.BytesIO()
    scene(7).save(png, "PNG")
    upload = {"body": png.getvalue(), "headers": {"Content-Type": "image/png"}}
    for origin in (None, "http://evil.example", f"http://127.0.0.1:{client.port + 1}", "null"):
        response = client.request("POST", "/api/upload", origin=origin, **upload)
        assert response.status == 403, origin
    ok = client.request("POST", "/api/upload", origin=f"http://127.0.0.1:{client.port}", **upload)
    assert ok.status == 200 and json.loads(ok.body)["upload"]


def test_cross_site_fetches_are_refused(client) -> None:
    response = client.get("/api/status", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status == 403


def test_every_response_carries_the_security_headers(client) -> None:
    for path in ("/", "/api/status", "/static/gallery.js", "/api/thumb/1/256", "/nope"):
        response = client.get(path)
        assert response.getheader("X-Content-Type-Options") == "nosniff", path
        assert "script-src 'self'" in response.getheader("Content-Security-Policy"), path
        assert response.getheader("X-Frame-Options") == "DENY", path
        assert response.getheader("Cross-Origin-Resource-Policy") == "same-origin", path


# ---- files by id only ------------------------------------------------------------------------------------
TRAVERSALS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "..\\..\\x"]


@pytest.mark.parametrize("evil", TRAVERSALS)
def test_path_traversal_in_any_parameter_reaches_no_file(client, evil) -> None:
    paths = [
        f"/static/{evil}",
        f"/static/{quote(evil, safe='')}",
        f"/api/thumb/{evil}",
        f"/api/thumb/1/{quote(evil, safe='')}",
        f"/api/original/{evil}",
        f"/api/original/{quote(evil, safe='')}",
        f"/api/photo/{quote(evil, safe='')}",
        f"/{evil}",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status in (400, 404, 405), (path, response.status)
        assert b"root:" not in response.body
    for query in (
        f"like={quote(evil)}",
        f"upload={quote(evil)}",
        f"q={quote('like:' + evil)}",
        f"q={quote('lake in:' + evil)}",
        f"q=lake&in={quote(evil)}",
        f"q=lake&type={quote(evil)}",
        f"q=lake&after={quote(evil)}",
    ):
        response = client.get(f"/api/search?{query}")
        assert response.status in (200, 400), (query, response.status)
        body = json.loads(response.body)
        assert "root:" not in json.dumps(body)
        if response.status == 200:
            assert body["hits"] == [], query  # a folder outside the library filters everything out


def test_static_files_are_a_fixed_list_and_never_a_listing(client) -> None:
    assert client.get("/static/").status == 404
    assert client.get("/static").status == 404
    assert client.get("/static/app.py").status == 404
    js = client.get("/static/gallery.js")
    assert js.status == 200 and js.getheader("Content-Type").startswith("text/javascript")


def test_like_in_the_search_box_takes_only_photos_of_the_index(client, library) -> None:
    outside = write_scene(library.db.parent / "elsewhere" / "not-indexed.jpg", 5)
    refused = client.get(f"/api/search?q={quote(f'like:{outside}')}")
    assert refused.status == 400 and b"in the index" in refused.body
    inside = library.photos / "trips" / "IMG_0003.jpg"
    found = client.json(f"/api/search?q={quote(f'like:{inside}')}&limit=1")["hits"]
    assert found[0]["name"] == "IMG_0003.jpg" and found[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_ids_not_in_the_index_are_not_found_never_an_error(client, library) -> None:
    broken_id = next(h for h in _all_rows(library) if h.status == "failed").id
    for file_id in (999_999, 2**62 + 1, 10**30, broken_id):
        for path in (f"/api/photo/{file_id}", f"/api/thumb/{file_id}/256", f"/api/original/{file_id}"):
            response = client.get(path)
            assert response.status == 404, (path, response.status)
        response = client.get(f"/api/search?like={file_id}")
        assert response.status == 400, file_id
    assert client.get("/api/thumb/1/300").status == 404  # only the cache's sizes
    assert client.get("/api/search?offset=abc").status == 400
    assert client.get("/api/search?like=-1").status == 400


def _all_rows(library):
    with Store.open(library.db, create=False) as store:
        return list(store.iter_files())


# ---- odd file names ----------------------------------------------------------------------------------------
def test_odd_file_names_come_back_as_plain_escaped_text(client, library) -> None:
    names = ids_by_name(client)
    for name in ('it\'s "quoted" & <b>bold<b>.jpg', "<img src=x onerror=alert(1)>.jpg", "<script>alert(1)<.jpg"):
        assert name in names  # JSON strings, shown by the page as text
        details = client.json(f"/api/photo/{names[name]}")
        assert details["name"] == name
        assert client.get(f"/api/thumb/{names[name]}/256").status == 200
    undecodable = "caf\\xe9 \\xff.jpg"  # undecodable bytes shown escaped, as in the terminal
    assert undecodable in names
    details = client.json(f"/api/photo/{names[undecodable]}")
    assert details["path"].endswith("/odd/" + undecodable)
    thumb = client.get(f"/api/thumb/{names[undecodable]}/256")
    assert thumb.status == 200 and thumb.getheader("Content-Type") == "image/jpeg"


def test_the_page_escapes_what_it_renders_on_the_server() -> None:
    hostile = "/tmp/<script>alert('x')</script>/\"quoted\" & more.db"
    html = pages.shell("search", index_name=hostile).decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html and "&quot;quoted&quot; &amp; more" in html
    assert not re.search(r"<script>(?!</script>)", html.replace('<script src="/static/gallery.js" defer>', ""))


# ---- what the endpoints answer -----------------------------------------------------------------------------
def test_search_pages_continue_without_repeats_best_first(client) -> None:
    first = client.json("/api/search?q=a%20lake%20at%20dusk&limit=10")
    second = client.json("/api/search?q=a%20lake%20at%20dusk&limit=10&offset=10")
    scores = [h["score"] for h in first["hits"] + second["hits"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 20
    assert not {h["id"] for h in first["hits"]} & {h["id"] for h in second["hits"]}
    assert first["more"] and first["searched"] == 31


def test_scrolling_a_growing_ranking_shows_every_photo_once(client, monkeypatch) -> None:
    from umsearch.web import app

    monkeypatch.setattr(app, "FIRST_WINDOW", 4)  # the ranking grows (4, 8, 16, 32) while we page through it
    seen: list[int] = []
    while True:
        body = client.json(f"/api/search?q=hills%20by%20the%20water&limit=3&offset={len(seen)}")
        seen += [hit["id"] for hit in body["hits"]]
        if not body["more"]:
            break
    assert len(seen) == len(set(seen)) == 31


def test_more_like_this_leaves_out_the_photo_itself_and_takes_filters(client) -> None:
    names = ids_by_name(client)
    like = names["IMG_0004.jpg"]
    hits = client.json(f"/api/search?like={like}&limit=50")["hits"]
    assert like not in [h["id"] for h in hits] and len(hits) == 30
    pngs = client.json(f"/api/search?like={like}&type=png")["hits"]
    assert sorted(h["name"] for h in pngs) == ["shot_0.png", "shot_1.png", "shot_2.png"]


def test_the_search_language_filters_in_the_box_and_the_controls_agree(client, library) -> None:
    boxed = client.json(f"/api/search?q={quote('sunset type:png')}")["hits"]
    controlled = client.json("/api/search?q=sunset&type=png")["hits"]
    assert [h["id"] for h in boxed] == [h["id"] for h in controlled] and len(boxed) == 3
    folder = client.json(f"/api/search?q=sunset&in={quote(str(library.photos / 'screens'))}")["hits"]
    assert {h["name"] for h in folder} == {"shot_0.png", "shot_1.png", "shot_2.png"}
    error = client.get(f"/api/search?q={quote('sunset after:someday-or-other')}")
    assert error.status == 400 and json.loads(error.body)["error"]


def test_an_uploaded_image_searches_alone_and_fused_with_words(client, library) -> None:
    data = (library.photos / "trips" / "IMG_0007.jpg").read_bytes()
    origin = f"http://127.0.0.1:{client.port}"
    answer = client.request("POST", "/api/upload", origin=origin, body=data, headers={"Content-Type": "image/jpeg"})
    handle = json.loads(answer.body)["upload"]
    alone = client.json(f"/api/search?upload={handle}&limit=3")["hits"]
    assert alone[0]["name"] == "IMG_0007.jpg" and alone[0]["score"] > 0.99
    fused = client.json(f"/api/search?upload={handle}&q=at%20night&limit=3")["hits"]
    assert fused and fused[0]["score"] < alone[0]["score"]  # one fused input, not the picture alone
    page2 = client.json(f"/api/search?upload={handle}&limit=3&offset=3")["hits"]
    assert not {h["id"] for h in page2} & {h["id"] for h in alone}


def test_uploads_that_are_not_images_are_refused(client) -> None:
    origin = f"http://127.0.0.1:{client.port}"
    for body, kind, status in (
        (b"not an image", "image/jpeg", 400),
        (b"<svg/>", "image/svg+xml", 415),
        (b"", "image/png", 400),
    ):
        response = client.request("POST", "/api/upload", origin=origin, body=body, headers={"Content-Type": kind})
        assert response.status == status, kind
        assert "error" in json.loads(response.body)


def test_status_lists_failures_with_their_reasons(client) -> None:
    status = client.json("/api/status")
    assert status["indexed"] == 31 and status["failed"] == 1
    [failure] = status["failures"]
    assert failure["path"].endswith("broken.jpg") and "not a recognised image" in failure["reason"]
    assert status["model"] and status["thumbnails"]["folder"].endswith("index.db.thumbs")


def test_facets_and_dupes(client, library) -> None:
    facets = client.json("/api/facets")
    assert {f["value"]: f["count"] for f in facets["ext"]} == {"jpg": 28, "png": 3}
    dupes = client.json("/api/dupes?threshold=0.9")
    assert all(len(g["ids"]) >= 2 and g["similarity"] >= 0.9 for g in dupes["groups"])
    assert client.get("/api/dupes?threshold=2").status == 400


def test_the_original_is_served_with_its_real_type(client, library) -> None:
    names = ids_by_name(client)
    fake = library.photos / "screens" / "shot_1.png"
    original = client.get(f"/api/original/{names[fake.name]}")
    assert original.status == 200 and original.getheader("Content-Type") == "image/png"
    assert original.body == fake.read_bytes()
    assert (
        client.get(f"/api/original/{names[fake.name]}", headers={"If-None-Match": original.getheader("ETag")}).status
        == 304
    )


# ---- thumbnails --------------------------------------------------------------------------------------------
def test_thumbnails_are_cached_with_an_etag_and_answer_304(client) -> None:
    url = f"/api/thumb/{ids_by_name(client)['IMG_0002.jpg']}/256"
    first = client.get(url)
    again = client.get(url)
    assert first.status == again.status == 200 and first.getheader("ETag") == again.getheader("ETag")
    assert first.body == again.body
    with Image.open(io.BytesIO(first.body)) as img:
        assert max(img.size) == 256 and img.format == "JPEG"
    revalidated = client.get(url, headers={"If-None-Match": first.getheader("ETag")})
    assert revalidated.status == 304 and not revalidated.body


def test_a_thumbnail_is_remade_when_the_photo_changes_and_removed_with_it(tmp_path, tiny_embedder) -> None:
    photos = tmp_path / "photos"
    upright = write_scene(photos / "turned.jpg", 3, (300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° to show: the thumbnail must be portrait
    scene(3, (300, 200)).save(upright, exif=exif)
    other = write_scene(photos / "other.jpg", 4)
    from umsearch.index import Indexer
    from umsearch.settings import max_pixels

    db = tmp_path / "index.db"
    with Store.open(db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280)).index([str(photos)])
        rows = {Path(r.path).name: r for r in store.iter_files()}
    with running_gallery(db, tiny_embedder) as server:
        client = Client(server)
        turned = client.get(f"/api/thumb/{rows['turned.jpg'].id}/1024")
        with Image.open(io.BytesIO(turned.body)) as img:
            assert img.size == (200, 300)
        before = client.get(f"/api/thumb/{rows['other.jpg'].id}/256")
        time.sleep(0.01)
        write_scene(other, 40)  # new content, size and time
        after = client.get(f"/api/thumb/{rows['other.jpg'].id}/256")
        assert after.getheader("ETag") != before.getheader("ETag") and after.body != before.body
        folder = cache_folder(db)
        names = sorted(p.name for p in folder.rglob(f"{rows['other.jpg'].id}-256-*.jpg"))
        assert len(names) == 1  # the stale one is gone
        assert os.stat(folder).st_mode & 0o777 == 0o700
        with Store.open(db) as store:
            store.delete_files([rows["other.jpg"].id])
        assert client.get(f"/api/thumb/{rows['other.jpg'].id}/256").status == 404
        assert not list(folder.rglob(f"{rows['other.jpg'].id}-*"))
        ThumbCache(folder).sweep({rows["turned.jpg"].id})
        assert {p.name.split("-")[0] for p in folder.rglob("*.jpg")} == {str(rows["turned.jpg"].id)}


# ---- the command --------------------------------------------------------------------------------------------
def test_umsearch_web_refuses_a_remote_host_without_allow_remote(tmp_path) -> None:
    from typer.testing import CliRunner

    from umsearch.cli import app

    result = CliRunner().invoke(app, ["web", "--no-open", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and "--allow-remote" in result.output


def test_umsearch_web_asks_the_service_which_serves_the_gallery_until_stopped(library, tmp_path) -> None:
    with gallery_from_the_service(library.db, tmp_path / "home") as gallery:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{24,}", gallery.url)
        client = Client(gallery)  # type: ignore[arg-type]
        assert client.json("/api/search?q=a%20lake&limit=5")["hits"]
        assert client.get("/api/status", cookie=None).status == 403
        again = umsearch(service_env(tmp_path / "home", library.db), "web", "--no-open", "--port", "0")
        assert again.returncode == 0 and again.stdout.strip() == gallery.url  # the one gallery, its URL again
    with pytest.raises(OSError):  # the gallery stopped with the service
        Client(gallery).get("/api/status")  # type: ignore[arg-type]


def test_umsearch_web_no_server_serves_in_process_and_stops_on_sigterm(library, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "UMSEARCH_DB": str(library.db)}
    process = subprocess.Popen(
        [sys.executable, "-m", "umsearch", "web", "--no-open", "--port", "0", "--no-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        url = process.stdout.readline().strip()
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]{24,})", url)
        assert match, url
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", int(match[1]), timeout=30)
        conn.request("GET", "/api/status", headers={"Cookie": f"umsearch-{match[1]}={match[2]}"})
        assert conn.getresponse().status == 200
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        process.stdout.close()
        process.stderr.close()
