"""The gallery in a real browser: Playwright driving Debian's chromium against the real service (started by
`umsearch web`) and the tiny model. One browser and one service for the module; each test opens its own page.

Screenshots of the main states are written to the test's folder and checked for being drawn (thumbnails
really on screen, the preview really showing a photo); UMSEARCH_SCREENSHOTS=FOLDER keeps them, and
UMSEARCH_DOCS_SCREENSHOT=1 refreshes docs/gallery.png for the README.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from umsearch.index import Indexer
from umsearch.settings import max_pixels
from umsearch.store import Store

from .web_support import gallery_from_the_service, make_library

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the dev extra's playwright is not installed")

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)"),
]
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_embedder):
    root = tmp_path_factory.mktemp("browser-lib")
    library = make_library(root, tiny_embedder)
    copies = library.photos / "copies"  # copies reuse their original's vector: more than a page, cheaply
    copies.mkdir()
    for photo in sorted((library.photos / "trips").iterdir()):
        shutil.copy2(photo, copies / f"copy_{photo.name}")
    with Store.open(library.db) as store:
        Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280)).index([str(library.photos)])
    return library


@pytest.fixture(scope="module")
def server(library, tmp_path_factory):
    """What a user gets: `umsearch web` asks the index's background service (started for it) to serve the
    gallery; the service loads the tiny model the real way at the first new query."""
    with gallery_from_the_service(library.db, tmp_path_factory.mktemp("browser-home")) as gallery:
        yield gallery


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses its sandbox as root
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser, server):
    contexts = []

    def opener(width: int = 1280, height: int = 820, *, phone: bool = False, path: str = "/"):
        options = {"viewport": {"width": width, "height": height}}
        if phone:
            options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
        context = browser.new_context(**options)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.origin)
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.on("dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.goto(server.url.replace("/?", f"{path}?", 1))
        return page

    yield opener
    for context in contexts:
        context.close()


@pytest.fixture
def shots(tmp_path):
    keep = os.environ.get("UMSEARCH_SCREENSHOTS")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def search(page, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#info').textContent.startsWith('Best matches')")
    wait_for_thumbnails(page, 20)


def wait_for_thumbnails(page, count: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('.tile img.loaded').length >= {count}")


def tile_names(page) -> list[str]:
    return page.eval_on_selector_all("#grid .tile img", "imgs => imgs.map(i => i.alt)")


def drawn(path: Path, box: tuple[int, int, int, int] | None = None) -> float:
    """How much a screenshot region varies (a blank or single-colour region is ~0)."""
    with Image.open(path) as img:
        region = img.convert("RGB").crop(box) if box else img.convert("RGB")
        return sum(ImageStat.Stat(region).stddev) / 3


def test_a_typed_query_shows_thumbnails_best_first_and_more_on_scroll(open_page, shots) -> None:
    page = open_page()
    wait_for_thumbnails(page, 20)  # the newest photos before anything is typed
    search(page, "a lake at dusk")
    scores = [float(s) for s in page.eval_on_selector_all("#grid .score", "els => els.map(e => e.textContent)")]
    assert len(scores) >= 48 and scores == sorted(scores, reverse=True)  # page 2 may be prefetched already
    page.screenshot(path=shots / "search.png")
    assert drawn(shots / "search.png", (0, 150, 1280, 800)) > 25
    page.mouse.wheel(0, 20000)
    page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 55")
    assert len(set(tile_names(page))) == len(tile_names(page)) == 55
    scores = [float(s) for s in page.eval_on_selector_all("#grid .score", "els => els.map(e => e.textContent)")]
    assert scores == sorted(scores, reverse=True)  # the second page continues the first
    assert page.problems == []
    if os.environ.get("UMSEARCH_DOCS_SCREENSHOT"):  # the README's picture: the first rows, one tile hovered
        page.evaluate("() => window.scrollTo(0, 0)")
        page.set_viewport_size({"width": 1200, "height": 720})
        page.wait_for_function(
            "() => [...document.querySelectorAll('#grid img')].slice(0, 30).every(i => i.classList.contains('loaded'))"
        )
        page.hover("#grid .tile:nth-child(3)")
        page.wait_for_timeout(400)
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=DOCS / "gallery.png")


def test_the_preview_shows_the_photo_its_facts_and_copies_its_path(open_page, library, shots) -> None:
    page = open_page()
    search(page, "mountains under a night sky")
    first = tile_names(page)[0]
    page.click("#grid .tile >> nth=0")
    page.wait_for_selector("#lightbox:not([hidden])")
    page.wait_for_function("() => document.querySelector('#lb-path').textContent.length > 0")
    assert page.text_content("#lb-name") == first
    assert page.text_content("#lb-path").startswith(str(library.photos))
    assert "480 × 360 px" in page.text_content("#lb-size")
    assert page.text_content("#lb-taken") and page.text_content("#lb-score") != "—"
    page.wait_for_function(
        "() => document.querySelector('#lb-img').complete && document.querySelector('#lb-img').naturalWidth > 0"
    )
    page.screenshot(path=shots / "preview.png")
    assert drawn(shots / "preview.png", (300, 250, 700, 550)) > 10  # the photo is there
    page.click("#lb-copy")
    page.wait_for_selector("#toast:not([hidden])")
    assert page.evaluate("navigator.clipboard.readText()") == page.text_content("#lb-path")
    page.keyboard.press("Escape")
    assert page.is_hidden("#lightbox")


def test_more_like_this_searches_from_the_photo_and_leaves_it_out(open_page) -> None:
    page = open_page()
    search(page, "a sunny day")
    index = next(i for i, name in enumerate(tile_names(page)) if name.startswith("IMG_"))
    page.click(f"#grid .tile >> nth={index}")
    page.wait_for_selector("#lightbox:not([hidden])")
    name = page.text_content("#lb-name")
    page.keyboard.press("s")
    page.wait_for_function("() => document.querySelector('#info').textContent.includes('like ')")
    wait_for_thumbnails(page, 20)
    assert page.is_visible("#query-image") and name in page.text_content("#query-image-label")
    names = tile_names(page)
    assert name not in names and names[0] == f"copy_{name}"  # its copy first, with the same vector
    assert "like=" in page.url


def test_dropping_an_image_searches_with_it_and_typed_words_refine_it(open_page, library, shots) -> None:
    page = open_page()
    wait_for_thumbnails(page, 20)
    data = base64.b64encode((library.photos / "trips" / "IMG_0011.jpg").read_bytes()).decode()
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "holiday.jpg", { type: "image/jpeg" }));
            for (const type of ["dragenter", "dragover", "drop"]) {
                document.body.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
        }""",
        data,
    )
    page.wait_for_function("() => document.querySelector('#info').textContent.includes('like holiday.jpg')")
    wait_for_thumbnails(page, 20)
    assert sorted(tile_names(page)[:2]) == ["IMG_0011.jpg", "copy_IMG_0011.jpg"]
    first_score = float(page.text_content("#grid .score"))
    assert first_score > 0.99
    page.screenshot(path=shots / "dropped.png")
    page.fill("#q", "at night")
    page.press("#q", "Enter")
    page.wait_for_function(
        "() => document.querySelector('#info').textContent.includes('“at night” + like holiday.jpg')"
    )
    assert float(page.text_content("#grid .score")) < first_score  # one fused query, not the picture alone


def test_filter_controls_narrow_the_results(open_page, shots) -> None:
    page = open_page()
    search(page, "a quiet landscape")
    page.click("#toggle-filters")
    page.select_option("#filters select[name=type]", "png")
    page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 3")
    assert sorted(tile_names(page)) == ["shot_0.png", "shot_1.png", "shot_2.png"]
    assert page.text_content("#filter-count") == "1" and "type=png" in page.url
    page.screenshot(path=shots / "filtered.png")
    page.click("#clear-filters")
    page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 48")


def test_the_keyboard_alone_searches_moves_previews_and_goes_back(open_page) -> None:
    page = open_page()
    wait_for_thumbnails(page, 20)
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("a lake at dusk")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#info').textContent.startsWith('Best matches')")
    columns = page.evaluate("getComputedStyle(document.querySelector('#grid')).gridTemplateColumns.split(' ').length")
    page.keyboard.press("ArrowDown")  # from the search box into the grid
    selected = "document.querySelector('.tile.selected').dataset.index"
    assert page.evaluate(selected) == "0"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(selected) == str(1 + columns)
    page.keyboard.press("Enter")
    page.wait_for_selector("#lightbox:not([hidden])")
    assert page.text_content("#lb-name") == tile_names(page)[1 + columns]
    page.keyboard.press("ArrowRight")
    assert page.text_content("#lb-name") == tile_names(page)[2 + columns]
    page.keyboard.press("Escape")
    assert page.is_hidden("#lightbox") and page.evaluate(selected) == str(2 + columns)
    page.keyboard.press("s")  # more like this from the grid
    page.wait_for_function("() => document.querySelector('#info').textContent.includes('like ')")
    page.keyboard.press("Escape")  # back: the image leaves the query
    page.wait_for_function("() => !document.querySelector('#info').textContent.includes('like ')")
    assert page.is_hidden("#query-image")
    assert page.problems == []


def test_a_phone_sized_window_is_usable(open_page, shots) -> None:
    page = open_page(390, 844, phone=True)
    wait_for_thumbnails(page, 12)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    columns = page.evaluate("getComputedStyle(document.querySelector('#grid')).gridTemplateColumns.split(' ').length")
    assert columns == 3
    page.screenshot(path=shots / "phone.png")
    assert drawn(shots / "phone.png") > 25
    page.tap("#grid .tile >> nth=0")
    page.wait_for_function("() => document.querySelector('#lb-path').textContent.length > 0")
    image = page.eval_on_selector("#lb-img", "e => e.getBoundingClientRect().toJSON()")
    info = page.eval_on_selector("#lb-info", "e => e.getBoundingClientRect().toJSON()")
    assert image["width"] <= 390 and info["top"] >= image["bottom"] - 1  # facts below the photo
    page.screenshot(path=shots / "phone-preview.png")
    page.tap("#lb-close")
    assert page.is_hidden("#lightbox")


def test_hostile_file_names_are_shown_as_text_and_run_nothing(open_page) -> None:
    page = open_page()
    search(page, "odd names")
    page.fill("#q", "")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#grid .tile').length >= 48")
    page.mouse.wheel(0, 20000)
    page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 55")
    names = tile_names(page)
    assert "<img src=x onerror=alert(1)>.jpg" in names and "<script>alert(1)<.jpg" in names
    assert "caf\\xe9 \\xff.jpg" in names
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], #grid script').length") == 0
    index = names.index("<img src=x onerror=alert(1)>.jpg")
    page.click(f"#grid .tile >> nth={index}")
    page.wait_for_function("() => document.querySelector('#lb-path').textContent.length > 0")
    assert page.text_content("#lb-name") == "<img src=x onerror=alert(1)>.jpg"
    assert page.problems == []


def test_the_status_and_duplicates_pages(open_page, shots) -> None:
    page = open_page(path="/status")
    page.wait_for_selector(".card")
    assert "55" in page.text_content(".cards")
    assert "broken.jpg" in page.text_content("#failures") and "not a recognised image" in page.text_content("#failures")
    page.screenshot(path=shots / "status.png")
    page = open_page(path="/dupes")
    page.wait_for_function("() => document.querySelector('#info').textContent.includes('similarity')")
    grouped = page.eval_on_selector_all(".group figure", "fs => fs.length")
    assert grouped >= 48  # every photo and its copy (same vector) are in a group
    page.click(".group .tile >> nth=0")
    page.wait_for_selector("#lightbox:not([hidden])")
    page.screenshot(path=shots / "dupes.png")
    assert page.problems == []
