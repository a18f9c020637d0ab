"""What an item is: a photo, a screenshot, a document or a video, decided cheaply from what is already read.

Videos and PDFs are known by their extension. A still image is judged from its name, its metadata and its
size, all of which the loader has at hand; only a page-shaped image without camera EXIF costs a look at
its pixels (a 64x64 thumbnail of the picture already decoded). The rules, first match wins:

1. the name says screenshot ("Screenshot_20240101-…", "Screen Shot …", "Bildschirmfoto …", "スクリーンショット" …),
   or the metadata does (iOS and macOS write EXIF/XMP UserComment "Screenshot"; screenshot tools name
   themselves as the PNG's Software) → screenshot;
2. the name or metadata names a scanner or a scanning app ("scan", CanoScan, ScanSnap, Adobe Scan,
   CamScanner, Microsoft Lens …) and at least a third of the picture is paper → document (a scanned
   photo print stays a photo);
3. camera EXIF (make, model, exposure or date taken) → photo;
4. a lossless image (PNG, GIF, BMP, WebP) exactly the size of a common screen, either way up → screenshot;
5. page-shaped (A-series, Letter or Legal proportions within 3 %, or a till receipt's long strip) and
   mostly paper (at least 55 % of the picture bright and unsaturated), or page-shaped at a scanner's
   resolution (150-600 dpi) → document;
6. anything else → photo.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .pdfpages import PDF_EXTENSIONS
from .video import VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from PIL import Image

PHOTO, SCREENSHOT, DOCUMENT, VIDEO = "photo", "screenshot", "document", "video"
KINDS = (PHOTO, SCREENSHOT, DOCUMENT, VIDEO)
TEXT_KINDS = frozenset({SCREENSHOT, DOCUMENT})  # kinds that hold text worth a larger visual budget

# What screenshot files are called by phones, desktops and tools, in the languages they ship in.
_SCREENSHOT_NAMES = re.compile(
    r"screen ?shot|screen ?capture|screencap|scrnli_|snapshot_\d|bildschirmfoto|bildschirmaufnahme"
    r"|capture d.[ée]cran|capture_d_ecran|schermafbeelding|schermafdruk|captura de (?:pantalla|tela|ecr[ãa])"
    r"|schermata|sk[äa]rmavbild|skjermbilde|sk[æa]rmbillede|n[äa]ytt[öo]kuva|zrzut ekranu|sn[íi]mek obrazovky"
    r"|k[ée]perny[őo]fot[óo]|ekran (?:resmi|g[öo]r[üu]nt[üu]s[üu])|снимок экрана|скриншот|знімок екрана"
    r"|στιγμιότυπο οθόνης|צילום מסך|لقطة الشاشة|スクリーンショット|截屏|截图|屏幕截图|螢幕截圖|螢幕擷取畫面|스크린샷",
    re.IGNORECASE,
)
_SCREENSHOT_TOOLS = re.compile(
    r"screenshot|screen ?capture|\bspectacle\b|flameshot|greenshot|sharex|ksnip|snipping tool|lightshot|snagit"
    r"|screenshooter",
    re.IGNORECASE,
)
_SCAN_WORDS = re.compile(
    r"(?:^|[^a-z])scan(?:ned|ner|s)?(?:[^a-z]|$)|scansnap|canoscan|camscanner|genius ?scan|adobe ?scan|swiftscan"
    r"|microsoft lens|office lens|scanner pro|tiny ?scanner|vflat|naps2|simple scan|xsane|epson perfection"
    r"|epson scan|hp scan|kofax|paperport",
    re.IGNORECASE,
)

# EXIF tags: Make, Model, Software, Exif IFD; ExposureTime, FNumber, DateTimeOriginal, UserComment.
_MAKE, _MODEL, _SOFTWARE, _EXIF_IFD = 0x010F, 0x0110, 0x0131, 0x8769
_EXPOSURE, _FNUMBER, _DATETIME_ORIGINAL, _USER_COMMENT = 0x829A, 0x829D, 0x9003, 0x9286

_LOSSLESS_FORMATS = frozenset({"PNG", "GIF", "BMP", "WEBP", "TIFF"})
# Screens, as width x height in landscape; a screenshot is one of these, either way up.
_SCREEN_SIZES = frozenset(
    {
        # desktops and laptops
        (1024, 768), (1280, 720), (1280, 800), (1280, 1024), (1366, 768), (1440, 900), (1536, 864),
        (1600, 900), (1680, 1050), (1920, 1080), (1920, 1200), (2048, 1152), (2560, 1080), (2560, 1440),
        (2560, 1600), (2560, 1664), (2736, 1824), (2880, 1800), (2880, 1864), (2940, 1912), (3000, 2000),
        (3024, 1964), (3072, 1920), (3200, 1800), (3440, 1440), (3456, 2234), (3840, 1600), (3840, 2160),
        (3840, 2400), (4096, 2304), (4480, 2520), (5120, 1440), (5120, 2160), (5120, 2880), (6016, 3384),
        # phones
        (1136, 640), (1334, 750), (1792, 828), (1920, 1080), (2208, 1242), (2436, 1125), (2532, 1170),
        (2556, 1179), (2622, 1206), (2688, 1242), (2778, 1284), (2796, 1290), (2868, 1320), (2340, 1080),
        (2400, 1080), (2412, 1080), (2460, 1080), (2160, 1080), (2220, 1080), (2280, 1080), (1600, 720),
        (1520, 720), (1560, 720), (2960, 1440), (3040, 1440), (3088, 1440), (3120, 1440), (3200, 1440),
        (2992, 1344), (2400, 1344), (2640, 1200), (2856, 1280),
        # tablets
        (2048, 1536), (2160, 1620), (2224, 1668), (2360, 1640), (2388, 1668), (2420, 1668), (2732, 2048),
        (2752, 2064), (2266, 1488), (2560, 1600), (2800, 1752), (2960, 1848), (2000, 1200),
    }
)  # fmt: skip
# Paper, as height / width: ISO A/B series (√2), US Letter, US Legal; receipts are long strips.
_PAGE_RATIOS = (2**0.5, 11 / 8.5, 14 / 8.5)
_PAGE_TOLERANCE = 0.03
_RECEIPT_RATIO = 2.5
_SCANNER_DPI = range(150, 601)
_PAPER_SHARE = 0.55
_SCANNED_PAPER_SHARE = 0.33


_TEXT_INFO_KEYS = ("Software", "software", "Description", "Title", "Comment", "comment")  # PNG text chunks
_XMP_INFO_KEYS = ("XML:com.adobe.xmp", "xmp")
_INFO_KEYS = ("dpi", *_TEXT_INFO_KEYS, *_XMP_INFO_KEYS)


def info_for_kinds(info: Mapping[Any, Any]) -> dict[str, Any]:
    """The few entries of Pillow's `info` the rules read (not the ICC profile or thumbnails)."""
    return {key: info[key] for key in _INFO_KEYS if key in info}


def kind_by_extension(path: str) -> str | None:
    """Videos and PDFs are known by name; None means a still image, judged by `image_kind`."""
    ext = os.path.splitext(path)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return VIDEO
    if ext in PDF_EXTENSIONS:
        return DOCUMENT
    return None


def image_kind(
    path: str,
    width: int,
    height: int,
    *,
    image_format: str | None = None,
    exif: Image.Exif | None = None,
    info: Mapping[Any, Any] | None = None,
    picture: Image.Image | None = None,
) -> str:
    """The kind of a still image: `width` x `height` is its upright pixel size, `image_format` Pillow's
    format name, `exif`/`info` what Pillow read with it, `picture` the decoded RGB image (any size)."""
    info = info or {}
    facts = _exif_facts(exif)
    name = unicodedata.normalize("NFC", os.path.basename(path))
    if _SCREENSHOT_NAMES.search(name) or _says_screenshot(facts, info):
        return SCREENSHOT
    scanner = " ".join(facts.get(key, "") for key in ("make", "model", "software"))
    if (_SCAN_WORDS.search(name) or _SCAN_WORDS.search(scanner)) and (
        picture is None or paper_share(picture) >= _SCANNED_PAPER_SHARE
    ):
        return DOCUMENT
    if facts.get("camera"):
        return PHOTO
    if (image_format or "").upper() in _LOSSLESS_FORMATS and _is_screen_size(width, height):
        return SCREENSHOT
    if _is_page_shaped(width, height) and (
        _scanner_dpi(info) or (picture is not None and paper_share(picture) >= _PAPER_SHARE)
    ):
        return DOCUMENT
    return PHOTO


def may_hold_text(
    path: str,
    width: int,
    height: int,
    *,
    image_format: str | None = None,
    exif: Image.Exif | None = None,
    info: Mapping[Any, Any] | None = None,
) -> bool:
    """Before decoding: could this image be a screenshot or a document (worth decoding at the text budget)?"""
    if image_kind(path, width, height, image_format=image_format, exif=exif, info=info) != PHOTO:
        return True
    return _needs_pixels(path, width, height, _exif_facts(exif))


def _exif_facts(exif: Image.Exif | None) -> dict[str, str]:
    """The few EXIF facts the rules read; a malformed block reads as none."""
    if exif is None:
        return {}
    try:
        facts = {
            "make": _text(exif.get(_MAKE)),
            "model": _text(exif.get(_MODEL)),
            "software": _text(exif.get(_SOFTWARE)),
        }
        sub = exif.get_ifd(_EXIF_IFD)
        facts["comment"] = _user_comment(sub.get(_USER_COMMENT))
        camera = facts["make"] or facts["model"] or any(sub.get(t) for t in (_EXPOSURE, _FNUMBER, _DATETIME_ORIGINAL))
        facts["camera"] = "yes" if camera else ""
        return facts
    except Exception:
        return {}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 ") if value is not None else ""


def _user_comment(value: object) -> str:
    """EXIF UserComment starts with an 8-byte character code ("ASCII\\0\\0\\0", "UNICODE\\0")."""
    if isinstance(value, bytes):
        code, body = value[:8], value[8:]
        encoding = "utf-16" if code.startswith(b"UNICODE") else "utf-8"
        return body.decode(encoding, "replace").strip("\x00 ")
    return _text(value)


def _says_screenshot(facts: Mapping[str, str], info: Mapping[Any, Any]) -> bool:
    if facts.get("comment", "").lower() == "screenshot" or _SCREENSHOT_TOOLS.search(facts.get("software", "")):
        return True
    for key in _TEXT_INFO_KEYS:
        value = info.get(key)
        if isinstance(value, (str, bytes)) and _SCREENSHOT_TOOLS.search(_text(value)):
            return True
    xmp = next((info[key] for key in _XMP_INFO_KEYS if info.get(key)), None)
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8", "replace")
    return isinstance(xmp, str) and bool(re.search(r"UserComment>\s*(?:<[^>]*>\s*)*Screenshot\b", xmp))


def _is_screen_size(width: int, height: int) -> bool:
    return (max(width, height), min(width, height)) in _SCREEN_SIZES


def _is_page_shaped(width: int, height: int) -> bool:
    if width <= 0 or height <= 0:
        return False
    ratio = max(width, height) / min(width, height)
    if height > width and ratio >= _RECEIPT_RATIO:
        return True
    return any(abs(ratio - page) / page <= _PAGE_TOLERANCE for page in _PAGE_RATIOS)


def _scanner_dpi(info: Mapping[Any, Any]) -> bool:
    dpi = info.get("dpi")
    try:
        return dpi is not None and all(round(float(d)) in _SCANNER_DPI for d in dpi)
    except (TypeError, ValueError):
        return False


def paper_share(picture: Image.Image) -> float:
    """The share of a picture that looks like paper: bright and nearly grey (from a 64x64 thumbnail)."""
    import numpy as np

    thumb = picture.convert("RGB").resize((64, 64), reducing_gap=2.0)
    pixels = np.asarray(thumb, dtype=np.int16)
    brightest, darkest = pixels.max(axis=2), pixels.min(axis=2)
    paper = (darkest >= 170) & (brightest - darkest <= 40)
    return float(paper.mean())


def kind_of_file(path: str) -> str:
    """The kind of the file at `path`, reading only what the rules need (for rows indexed before kinds).

    The header gives name, size, format and metadata; pixels are decoded (small, JPEG draft mode) only for
    the images whose kind depends on them. An unreadable image is a photo, as it was before kinds existed.
    """
    by_extension = kind_by_extension(path)
    if by_extension is not None:
        return by_extension
    from PIL import Image

    from .imageload import upright_size

    try:
        with Image.open(path) as img:
            width, height = upright_size(img)
            exif = img.getexif()
            facts: dict[str, Any] = dict(image_format=img.format, exif=exif, info=dict(img.info))
            if _needs_pixels(path, width, height, _exif_facts(exif)):
                img.draft("RGB", (128, 128))
                facts["picture"] = img.convert("RGB")
            return image_kind(path, width, height, **facts)
    except Exception:  # a damaged file keeps the default kind; indexing it reports the damage
        return PHOTO


def _needs_pixels(path: str, width: int, height: int, facts: Mapping[str, str]) -> bool:
    """Whether the rules would look at the pixels: scanner-named files, and page-shaped ones without a camera."""
    scanner = " ".join(facts.get(key, "") for key in ("make", "model", "software"))
    if _SCAN_WORDS.search(os.path.basename(path)) or _SCAN_WORDS.search(scanner):
        return True
    return not facts.get("camera") and _is_page_shaped(width, height)
