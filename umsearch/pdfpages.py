"""Render the pages of a PDF as images, so a scanned letter or a ticket is searched like a photo of it.

Rendering goes through pypdfium2 (Google's PDFium, in the `all` extra): the renderer Chrome uses, shipped
as a wheel with no system dependencies, permissively licensed. Each page is rendered straight at the size
the model will use (never at full resolution and then shrunk), up to `max_pages` pages per file.
PDFium is not thread-safe, so documents take turns (one lock); a page renders in tens of milliseconds.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import ImageLoadError
from .imageload import INSTALL_ALL

if TYPE_CHECKING:
    import pypdfium2
    from PIL import Image

PDF_EXTENSIONS = frozenset({".pdf"})
DEFAULT_MAX_PAGES = 10  # a letter, a receipt, a ticket, a contract's first pages; a manual is not a photo
# Never render finer than this (a business card at full budget would otherwise be 2000 dpi of nothing).
MAX_DPI = 300
_POINTS_PER_INCH = 72

_pdfium_lock = threading.Lock()


@dataclass(frozen=True)
class Page:
    image: Image.Image  # RGB, at most max_pixels
    number: int  # 1-based, as a viewer counts (and `--page` options take)


@dataclass(frozen=True)
class RenderedDocument:
    pages: list[Page]  # the first pages, at least one
    page_count: int  # all pages in the file (more than len(pages) when capped)
    width: int  # the first page as shown, in points (1/72 inch)
    height: int
    created: datetime | None  # the document's creation date, when it has one


def render_pdf(path: str, max_pixels: int, max_pages: int = DEFAULT_MAX_PAGES) -> RenderedDocument:
    """The first `max_pages` pages of the PDF at `path`, each rendered to at most `max_pixels`.

    Raises ImageLoadError with the reason when the file cannot be read (or pypdfium2 is missing), and
    FileNotFoundError when it is gone.
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise ImageLoadError(f"unsupported format PDF ({INSTALL_ALL})") from None
    with _pdfium_lock:
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise ImageLoadError(_open_failure(path, exc)) from None
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ImageLoadError((exc.strerror or str(exc)).lower()) from None
        try:
            return _render(document, max_pixels, max_pages)
        except pdfium.PdfiumError as exc:
            raise ImageLoadError(f"cannot render PDF: {_reason(exc)}") from None
        except MemoryError:
            raise ImageLoadError("cannot render PDF: out of memory") from None
        finally:
            document.close()


def _render(document: pypdfium2.PdfDocument, max_pixels: int, max_pages: int) -> RenderedDocument:
    count = len(document)
    if count == 0:
        raise ImageLoadError("PDF without pages")
    pages: list[Page] = []
    first: tuple[float, float] | None = None
    for index in range(min(count, max_pages)):
        page = document[index]
        try:
            width, height = page.get_size()
            if first is None:
                first = (width, height)
            if width <= 0 or height <= 0:
                continue  # a degenerate page: nothing to see
            scale = min(math.sqrt(max_pixels / (width * height)), MAX_DPI / _POINTS_PER_INCH)
            bitmap = page.render(scale=scale, may_draw_forms=False)
            try:
                image = bitmap.to_pil().convert("RGB")
            finally:
                bitmap.close()
        finally:
            page.close()
        pages.append(Page(_fit(image, max_pixels), index + 1))
    if not pages:
        raise ImageLoadError("PDF pages have no area")
    assert first is not None
    return RenderedDocument(pages, count, round(first[0]), round(first[1]), _created(document))


def _fit(image: Image.Image, max_pixels: int) -> Image.Image:
    """PDFium rounds the bitmap up to whole pixels; trim the last row or column that takes it over."""
    width, height = image.size
    while width * height > max_pixels and width > 1 and height > 1:
        if width >= height:
            width -= 1
        else:
            height -= 1
    return image if (width, height) == image.size else image.crop((0, 0, width, height))


def _open_failure(path: str, exc: Exception) -> str:
    reason = _reason(exc)
    if "password" in reason.lower():
        return "PDF is password protected"
    try:
        if os.path.getsize(path) == 0:
            return "not a readable PDF (empty file)"
    except OSError:
        pass
    return f"not a readable PDF ({reason})"


def _reason(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"\(PDFium: ([^)]*)\)", text)
    return match.group(1).rstrip(".") if match else (text.rstrip(".") or type(exc).__name__)


_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


def parse_pdf_date(text: str | None) -> datetime | None:
    """A PDF date ("D:20240131094500+01'00'") as the wall-clock time it names (no zone, like EXIF)."""
    match = _PDF_DATE.match(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (
        int(g) if g else d for g, d in zip(match.groups(), (0, 1, 1, 0, 0, 0), strict=True)
    )
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def _created(document: pypdfium2.PdfDocument) -> datetime | None:
    try:
        return parse_pdf_date(document.get_metadata_value("CreationDate"))
    except Exception:  # a broken info dictionary must not fail the document
        return None


def render_page(path: str, number: int, max_pixels: int) -> Image.Image:
    """Page `number` (1-based) of the PDF at `path`, at most `max_pixels`: what a preview shows for a hit."""
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise ImageLoadError(f"unsupported format PDF ({INSTALL_ALL})") from None
    with _pdfium_lock:
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise ImageLoadError(_open_failure(path, exc)) from None
        try:
            if not 1 <= number <= len(document):
                raise ImageLoadError(f"PDF has no page {number}")
            page = document[number - 1]
            try:
                width, height = page.get_size()
                scale = min(math.sqrt(max_pixels / max(1.0, width * height)), MAX_DPI / _POINTS_PER_INCH)
                bitmap = page.render(scale=scale, may_draw_forms=False)
                try:
                    return _fit(bitmap.to_pil().convert("RGB"), max_pixels)
                finally:
                    bitmap.close()
            finally:
                page.close()
        except pdfium.PdfiumError as exc:
            raise ImageLoadError(f"cannot render PDF: {_reason(exc)}") from None
        finally:
            document.close()


def read_header(path: str) -> tuple[datetime | None, tuple[int, int]]:
    """A PDF's creation date and first page size in points, without rendering."""
    import pypdfium2 as pdfium

    with _pdfium_lock:
        document = pdfium.PdfDocument(path)
        try:
            width, height = document.get_page_size(0)
            return _created(document), (round(width), round(height))
        finally:
            document.close()
