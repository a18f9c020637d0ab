"""Decode any photo into an upright RGB image of bounded size, or say why it cannot be decoded."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from .errors import ImageLoadError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, upright, at most ~4x the pixels the model will use)
    width: int  # the file's own pixel size, upright
    height: int
    exif: Image.Exif | None = None  # read while the file was open: metadata needs no reopen
    format: str | None = None  # Pillow's name for the file's format ("PNG", "JPEG" …): kinds read it
    info: dict | None = None  # Pillow's info of the file (PNG text, XMP, dpi): kinds read it


# Pillow's bomb check runs inside Image.open, before the format is known: it warns above 89.5 MP and refuses
# above twice that. umsearch leaves that refusal in place (other code, like a viewer, relies on it), ignores
# the warning, and checks the pixels it will really decode (JPEG draft mode decodes at 1/2..1/8 scale), so a
# 150 MP JPEG panorama is fine and a 100 MP PNG is refused.
MAX_DECODED_PIXELS = 89_478_485  # Pillow's default limit (a 0.25 GB RGBA image)
# Decodes larger than this (non-JPEG panoramas) take turns, so 4 loader threads never hold 4 of them at once.
BIG_DECODE_PIXELS = 16_000_000
_big_decode = threading.BoundedSemaphore(1)

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".avif"})
RAW_EXTENSIONS = frozenset(
    {
        ".dng",
        ".cr2",
        ".cr3",
        ".crw",
        ".nef",
        ".nrw",
        ".arw",
        ".srf",
        ".sr2",
        ".orf",
        ".rw2",
        ".raf",
        ".pef",
        ".srw",
        ".x3f",
        ".3fr",
        ".iiq",
        ".erf",
        ".kdc",
        ".mrw",
        ".rwl",
    }
)
INSTALL_ALL = "pip install 'umsearch[all]'"


def load_image(path: str, max_pixels: int, *, text_max_pixels: int | None = None) -> LoadedImage:
    """Open `path`, apply EXIF orientation, take the first frame, convert to RGB.

    Where the format allows (JPEG draft mode), decode at a reduced scale that still has at least
    `max_pixels` (`text_max_pixels` for an image that may hold text: a screenshot, a scan; see kinds.py),
    so memory stays bounded for 100-megapixel files. HEIC/HEIF come through pillow-heif and camera RAW
    files through their embedded preview (rawpy), when the `all` extra is installed.
    """
    from PIL import Image

    _quiet_pillow()
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in RAW_EXTENSIONS:
            return _load_raw(path, max_pixels)
        if ext in HEIF_EXTENSIONS:
            _register_heif()
        with Image.open(path) as img:
            if text_max_pixels is not None and text_max_pixels > max_pixels and _may_hold_text(path, img):
                max_pixels = text_max_pixels
            return _decode(img, max_pixels)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"too many pixels, refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        if _looks_like_heif(path) and not _register_heif():
            raise ImageLoadError(f"unsupported format HEIC/HEIF ({INSTALL_ALL})") from None
        if _is_empty(path):
            raise ImageLoadError("not a recognised image format (empty file)") from None
        raise ImageLoadError("not a recognised image format") from None
    except OSError as exc:
        raise ImageLoadError(describe_os_error(exc)) from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError, RuntimeError) as exc:
        # Pillow's plugins raise all of these on malformed data.
        raise ImageLoadError(f"cannot decode image: {exc or type(exc).__name__}") from None


def _decode(img: Image.Image, max_pixels: int) -> LoadedImage:
    from PIL import ImageOps

    width, height = upright_size(img)
    _draft(img, max_pixels)
    img.seek(0)
    decoded = img.size[0] * img.size[1]
    _check_pixels(decoded)
    with _big_decode if decoded > BIG_DECODE_PIXELS else contextlib.nullcontext():
        upright = ImageOps.exif_transpose(img)
        rgb = _shrink(to_rgb(upright), 4 * max_pixels)
        rgb.load()
    from .kinds import info_for_kinds

    return LoadedImage(rgb, width, height, img.getexif(), img.format, info_for_kinds(img.info))


def _may_hold_text(path: str, img: Image.Image) -> bool:
    from .kinds import may_hold_text

    try:
        return may_hold_text(path, *upright_size(img), image_format=img.format, exif=img.getexif(), info=img.info)
    except Exception:  # a malformed header decides nothing: the photo budget
        return False


def _check_pixels(pixels: int) -> None:
    if pixels > MAX_DECODED_PIXELS:
        raise ImageLoadError(
            f"too many pixels, refused as a possible decompression bomb ({pixels} pixels to decode, "
            f"limit {MAX_DECODED_PIXELS})"
        )


def _shrink(img: Image.Image, limit: int) -> Image.Image:
    """Huge non-JPEG images are reduced right after decoding, so the read-ahead queue stays small."""
    width, height = img.size
    if width * height <= limit:
        return img
    scale = math.sqrt(limit / (width * height))
    size = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
    return img.resize(size, reducing_gap=3.0)


@functools.cache
def _quiet_pillow() -> None:
    """Pillow warns about odd-but-decodable files (corrupt EXIF, palette transparency) without naming the
    file; on a progress bar that is noise. Real failures still arrive as exceptions with a reason."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # _check_pixels decides


_heif_registered: bool | None = None


def _register_heif() -> bool:
    """Teach Pillow HEIC/HEIF (and AVIF where Pillow lacks it) through pillow-heif, if it is installed."""
    global _heif_registered
    if _heif_registered is None:
        try:
            import pillow_heif
        except ImportError:
            _heif_registered = False
        else:
            pillow_heif.register_heif_opener()
            _heif_registered = True
    return _heif_registered


def _looks_like_heif(path: str) -> bool:
    """An ISO-BMFF 'ftyp' box with a HEIF or AVIF brand, whatever the file is called."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and any(
        brand in head[8:32]
        for brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
    )


def _is_empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def _load_raw(path: str, max_pixels: int) -> LoadedImage:
    """A camera RAW file through the preview the camera embedded (fast, already developed)."""
    try:
        import rawpy
    except ImportError:
        raise ImageLoadError(f"unsupported format camera RAW ({INSTALL_ALL})") from None
    import io

    from PIL import Image

    try:
        with rawpy.imread(path) as raw:
            flip = raw.sizes.flip
            width, height = raw.sizes.width, raw.sizes.height
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            img: Image.Image
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                img = Image.open(io.BytesIO(cast(bytes, thumb.data)))
                oriented = _orientation(img) != 1
            else:
                array = thumb.data if thumb is not None else raw.postprocess(half_size=True, use_camera_wb=True)
                img = Image.fromarray(cast("np.ndarray", array))
                oriented = False
    except rawpy.LibRawError as exc:
        raise ImageLoadError(f"cannot decode camera RAW file: {exc or type(exc).__name__}") from None
    if not oriented:  # LibRaw's flip: 3 = 180°, 5 = 90° counter-clockwise, 6 = 90° clockwise
        transpose = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}
        if flip in transpose:
            img = img.transpose(transpose[flip])
    if flip in (5, 6):
        width, height = height, width
    loaded = _decode(img, max_pixels)
    return LoadedImage(loaded.image, width, height)  # the sensor's size, not the preview's


def _draft(img: Image.Image, max_pixels: int) -> None:
    width, height = img.size
    if img.format != "JPEG" or width * height <= max_pixels:
        return
    scale = math.sqrt(max_pixels / (width * height))
    img.draft("RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) as the photo is shown: EXIF orientations 5-8 swap the axes."""
    width, height = img.size
    return (height, width) if _orientation(img) in (5, 6, 7, 8) else (width, height)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block must not make the photo itself fail
        return 1


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB the way a viewer would show it.

    Transparency is composited on white (not dropped to black); 16-bit and float images are scaled to
    8 bits instead of being clipped.
    """
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _scale_to_8bit(img, 65535 if mode.startswith("I;16") else None).convert("RGB")
    if mode == "F":
        return _scale_to_8bit(img, None).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "P":
        return img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image, full_scale: int | None) -> Image.Image:
    import numpy as np
    from PIL import Image

    data = np.asarray(img, dtype=np.float64)
    if full_scale is None:
        low, high = float(np.nanmin(data)) if data.size else 0.0, float(np.nanmax(data)) if data.size else 1.0
        if high <= 255 and low >= 0:
            low, high = 0.0, 255.0
    else:
        low, high = 0.0, float(full_scale)
    span = high - low or 1.0
    scaled = np.clip((np.nan_to_num(data, nan=low) - low) * (255.0 / span), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def describe_os_error(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror.lower() if exc.errno else exc.strerror
    text = str(exc)
    if "truncated" in text.lower():
        return "truncated file"
    return f"cannot decode image: {text}" if text else "cannot decode image"
