"""The TUI with videos and PDFs: a hit shows the matching frame or page and opens there."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("textual")
pytest.importorskip("av")
pytest.importorskip("pypdfium2")

from tests.media_support import Scene, write_pdf, write_video
from tests.photos import write_photo
from tests.tui_support import BUDGET, build_index, embedder_factory, run_async, screen_text, settle
from umsearch.pdfpages import render_pdf
from umsearch.settings import max_pixels
from umsearch.tui.app import make_app
from umsearch.video import sample_video

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tui-media")
    media = root / "media"
    write_photo(media / "beach.jpg", 1)
    write_video(media / "clip.mp4", [Scene((210, 30, 30), 2), Scene((30, 40, 200), 2, pattern=1)])
    write_pdf(media / "letter.pdf", [["Dear"], ["Second page", "more", "lines"]])
    return build_index(root / "index.db", media, tiny_model_dir), media


def run_app(db: Path, model: Path, opened: list):
    def opener(path: str, **where) -> None:
        opened.append((path, where))

    return make_app(db, str(model), image_mode="halfcell", embedder_factory=embedder_factory, opener=opener)


@run_async
async def test_a_video_hit_shows_its_frame_time_and_opens_there(library, tiny_model_dir, tmp_path) -> None:
    db, media = library
    frame = sample_video(str(media / "clip.mp4"), max_pixels(BUDGET[1])).frames[1]
    frame.image.save(tmp_path / "frame.png")
    opened: list = []
    app = run_app(db, tiny_model_dir, opened)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press(*f"@{tmp_path / 'frame.png'}", "enter")
        await settle(pilot)
        first = app.results[0]
        assert (first.path, first.kind, first.time) == (str(media / "clip.mp4"), "video", frame.time)
        text = screen_text(app)
        assert "clip.mp4  ▶ 0:02" in text  # the row
        assert "video  ▶ 0:02" in text  # the preview says which frame it shows
        await pilot.press("enter")
        assert opened == [(str(media / "clip.mp4"), {"time": frame.time, "page": None})]


@run_async
async def test_a_document_hit_names_its_page_and_opens_there(library, tiny_model_dir, tmp_path) -> None:
    db, media = library
    page = render_pdf(str(media / "letter.pdf"), max_pixels(BUDGET[1])).pages[1]
    page.image.save(tmp_path / "page.png")
    opened: list = []
    app = run_app(db, tiny_model_dir, opened)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press(*f"@{tmp_path / 'page.png'}", "enter")
        await settle(pilot)
        first = app.results[0]
        assert (Path(first.path).name, first.kind, first.page) == ("letter.pdf", "document", 2)
        assert "letter.pdf  p. 2" in screen_text(app)
        assert app.thumbs.cached(first.path, time=None, page=2)  # the thumbnail is that page
        await pilot.press("enter")
        assert opened == [(str(media / "letter.pdf"), {"time": None, "page": 2})]


@run_async
async def test_a_long_description_in_the_search_box_is_searched_with_a_notice(library, tiny_model_dir) -> None:
    from textual.widgets import Input

    db, _ = library
    app = run_app(db, tiny_model_dir, [])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#query", Input).value = "a red bicycle leaning on a blue wall by the sea " * 400
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.results) == 3
        message = str(app.query_one("#message").render())
        assert "3 results for “a red bicycle" in message and "description cut" in message
