"""Decode any photo into an upright RGB image of bounded size, or say why it cannot be decoded."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from .errors import ImageLoadError


@dataclass(frozen=True)
class LoadedImage:
    image: "PIL.Image.Image"  # noqa: F821  (RGB, upright, at most ~4x the pixels the model will use)
    width: int  # the file's own pixel size, upright
    height: int


def load_image(path: str, max_pixels: int) -> LoadedImage:
    """Open `path`, apply EXIF orientation, take the first frame, convert to RGB.

    Where the format allows (JPEG draft mode), decode at a reduced scale that still has at least
    `max_pixels`, so memory stays bounded for 100-megapixel files.
    """
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if _orientation(img) in (5, 6, 7, 8):  # these EXIF orientations swap the axes
                    width, height = height, width
                _draft(img, max_pixels)
                img.seek(0)
                upright = ImageOps.exif_transpose(img)
                rgb = to_rgb(upright)
                rgb.load()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"too many pixels, refused as a possible decompression bomb ({exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise ImageLoadError(f"too many pixels, refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format") from None
    except OSError as exc:
        raise ImageLoadError(_describe_os_error(exc)) from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError, RuntimeError) as exc:
        # Pillow's plugins raise all of these on malformed data.
        raise ImageLoadError(f"cannot decode image: {exc or type(exc).__name__}") from None
    return LoadedImage(rgb, width, height)


def _draft(img: "PIL.Image.Image", max_pixels: int) -> None:
    width, height = img.size
    if img.format != "JPEG" or width * height <= max_pixels:
        return
    scale = math.sqrt(max_pixels / (width * height))
    img.draft("RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))


def _orientation(img: "PIL.Image.Image") -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block must not make the photo itself fail
        return 1


def to_rgb(img: "PIL.Image.Image") -> "PIL.Image.Image":
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


def _scale_to_8bit(img: "PIL.Image.Image", full_scale: int | None) -> "PIL.Image.Image":
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


def _describe_os_error(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror.lower() if exc.errno else exc.strerror
    text = str(exc)
    if "truncated" in text.lower():
        return "truncated file"
    return f"cannot decode image: {text}" if text else "cannot decode image"
