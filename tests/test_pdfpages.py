"""PDF pages become images with their page numbers, rendered at the model's size, up to a cap per file."""

from __future__ import annotations

import sys
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from umsearch.errors import ImageLoadError
from umsearch.imageload import INSTALL_ALL
from umsearch.pdfpages import DEFAULT_MAX_PAGES, parse_pdf_date, render_pdf

from .media_support import write_pdf

pytest.importorskip("pypdfium2")

BUDGET = 1280 * 28 * 28


def ink_rows(image: Image.Image) -> int:
    """How many pixel rows hold dark text (a page's own fingerprint: its number of lines)."""
    grey = np.asarray(image.convert("L"))
    return int((grey < 128).any(axis=1).sum())


def test_each_page_is_an_image_with_its_number(tmp_path):
    pages = [["page one"], ["page two", "second line"], ["page three", "b", "c", "d"]]
    path = write_pdf(tmp_path / "letter.pdf", pages)
    document = render_pdf(str(path), BUDGET)
    assert [page.number for page in document.pages] == [1, 2, 3]
    assert document.page_count == 3
    assert (document.width, document.height) == (595, 842)
    inks = [ink_rows(page.image) for page in document.pages]
    assert inks[0] < inks[1] < inks[2]  # the pages come in order, each with its own text
    for page in document.pages:
        width, height = page.image.size
        assert page.image.mode == "RGB"
        assert width * height <= BUDGET
        assert width * height > BUDGET * 0.95  # rendered at the budget, not a thumbnail
        assert height / width == pytest.approx(842 / 595, rel=0.01)


def test_pages_beyond_the_cap_are_left_out_but_counted(tmp_path):
    path = write_pdf(tmp_path / "long.pdf", [[f"page {i}"] for i in range(1, 13)])
    document = render_pdf(str(path), 256 * 28 * 28)
    assert len(document.pages) == DEFAULT_MAX_PAGES and document.page_count == 12
    assert [p.number for p in render_pdf(str(path), 256 * 28 * 28, max_pages=2).pages] == [1, 2]


def test_small_pages_are_not_blown_up_past_300_dpi(tmp_path):
    path = write_pdf(tmp_path / "ticket.pdf", [["ADMIT ONE"]], size=(144, 72))  # 2 x 1 inch
    page = render_pdf(str(path), BUDGET).pages[0]
    assert page.image.size == (600, 300)


def test_creation_date_is_read():
    assert parse_pdf_date("D:20240131094500+01'00'") == datetime(2024, 1, 31, 9, 45)
    assert parse_pdf_date("D:2023") == datetime(2023, 1, 1)
    assert parse_pdf_date("yesterday") is None
    assert parse_pdf_date("D:20241399") is None


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", r"not a readable PDF \(empty file\)"),
        (b"%PDF-1.4\nthis is not really a PDF", "not a readable PDF"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not a readable PDF"),
    ],
)
def test_broken_files_fail_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason):
        render_pdf(str(path), BUDGET)


def test_truncated_pdf_fails_with_a_reason_or_renders_what_is_there(tmp_path):
    path = write_pdf(tmp_path / "t.pdf", [["one"], ["two"]])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        document = render_pdf(str(path), BUDGET)
    except ImageLoadError as exc:
        assert "PDF" in str(exc)
    else:  # PDFium rebuilds a lost cross-reference table where it can
        assert document.pages and document.pages[0].number == 1


def test_without_pypdfium2_pdfs_are_unsupported_with_the_fix(tmp_path, monkeypatch):
    path = write_pdf(tmp_path / "a.pdf", [["x"]])
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    with pytest.raises(ImageLoadError, match="unsupported format PDF") as info:
        render_pdf(str(path), BUDGET)
    assert INSTALL_ALL in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        render_pdf(str(tmp_path / "gone.pdf"), BUDGET)


def test_pages_render_from_many_threads_at_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    paths = [write_pdf(tmp_path / f"{i}.pdf", [[f"doc {i}"], ["more"]]) for i in range(6)]
    with ThreadPoolExecutor(4) as pool:
        documents = list(pool.map(lambda p: render_pdf(str(p), 256 * 28 * 28), paths))
    assert all(len(d.pages) == 2 for d in documents)


def test_one_page_for_a_preview(tmp_path):
    from umsearch.pdfpages import render_page

    path = write_pdf(tmp_path / "p.pdf", [["a"], ["b", "c", "d", "e"]])
    first, second = (render_page(str(path), n, 256 * 28 * 28) for n in (1, 2))
    assert ink_rows(first) < ink_rows(second)
    assert second.size[0] * second.size[1] <= 256 * 28 * 28
    with pytest.raises(ImageLoadError, match="no page 3"):
        render_page(str(path), 3, BUDGET)
