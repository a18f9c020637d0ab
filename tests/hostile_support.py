"""Generate folders of hostile files for the robustness tests: what a decades-old photo library holds."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from PIL import Image

from .photos import picture, write_photo

MODES = ["1", "L", "LA", "P", "I", "I;16", "F", "CMYK", "YCbCr", "RGBA"]
_MODE_FORMAT = {"CMYK": "tif", "YCbCr": "jpg", "F": "tif", "I": "tif"}


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims 10 gigapixels: opening it must not try to allocate them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def mode_image(seed: int, mode: str) -> Image.Image:
    img = picture(seed)
    return img.convert("L").convert("I;16") if mode == "I;16" else img.convert(mode)


def animated(path: Path, seed: int, fmt: str) -> Path:
    frames = [picture(seed + k) for k in range(3)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return path


def odd_name(folder: Path, raw_name: bytes) -> Path:
    """A path whose file name is arbitrary bytes (not necessarily UTF-8)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + raw_name))


def make_hostile_folder(folder: Path, seed: int = 0, prefix: str = "") -> tuple[dict[str, str | None], int]:
    """Write one of each kind of hostile file; return {path: expected failure reason or None} and the
    number of things the scan must silently skip (broken links, loops, unreadable when root)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}

    def ok(path: Path) -> None:
        expected[os.fspath(path)] = None

    def bad(path: Path, reason: str) -> None:
        expected[os.fspath(path)] = reason

    p = folder / f"{prefix}plain.jpg"
    ok(write_photo(p, seed))
    for k, mode in enumerate(MODES):
        path = folder / f"{prefix}mode-{mode.replace(';', '_')}.{_MODE_FORMAT.get(mode, 'png')}"
        mode_image(seed + 10 + k, mode).save(path)
        ok(path)
    ok(animated(folder / f"{prefix}anim.gif", seed + 30, "GIF"))
    ok(animated(folder / f"{prefix}anim.webp", seed + 40, "WEBP"))
    ok(animated(folder / f"{prefix}anim.png", seed + 50, "PNG"))  # APNG
    ok(write_photo(folder / f"{prefix}png-named.jpg", seed + 60, format="PNG"))  # wrong extension
    ok(write_photo(folder / f"{prefix}jpeg-named.png", seed + 61, format="JPEG"))
    ok(write_photo(odd_name(folder, prefix.encode() + b"caf\xe9-latin1-\xff.jpg"), seed + 62))
    ok(write_photo(folder / f"{prefix}new\nline.jpg", seed + 63))
    ok(write_photo(folder / f"{prefix}--help.jpg" if not prefix else folder / f"--help-{prefix}.jpg", seed + 64))
    ok(write_photo(folder / f"-rf{prefix}.jpg", seed + 65))

    zero = folder / f"{prefix}zero.jpg"
    zero.write_bytes(b"")
    bad(zero, "empty file")
    full = write_photo(folder / f"{prefix}whole.tmpl", seed + 70, size=(300, 200), format="JPEG").read_bytes()
    (folder / f"{prefix}whole.tmpl").unlink()
    (folder / f"{prefix}truncated.jpg").write_bytes(full[: len(full) // 3])
    bad(folder / f"{prefix}truncated.jpg", "truncated")
    (folder / f"{prefix}garbage.jpg").write_bytes(full[:20] + os.urandom(2000))
    bad(folder / f"{prefix}garbage.jpg", "")
    (folder / f"{prefix}notes.png").write_text("not a picture at all\n")
    bad(folder / f"{prefix}notes.png", "not a recognised image format")
    bad(png_bomb(folder / f"{prefix}bomb.png"), "decompression bomb")

    skipped = 0
    os.symlink("does-not-exist.jpg", folder / f"{prefix}broken-link.jpg")
    skipped += 1
    os.symlink(".", folder / f"{prefix}loop")  # a folder link back to itself
    locked = folder / f"{prefix}locked.jpg"
    write_photo(locked, seed + 80)
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway
        ok(locked)
    else:
        bad(locked, "permission denied")
    return expected, skipped
