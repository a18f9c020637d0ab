"""Write a minimal, valid DNG by hand (TIFF structure): a linear RGB raw image and, optionally, an embedded
JPEG preview in IFD0 with the raw in a SubIFD, as cameras and converters write them."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, SRATIONAL = 1, 2, 3, 4, 10
_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, SRATIONAL: 8}


class _Tiff:
    def __init__(self) -> None:
        self.buf = bytearray(b"II*\x00\x00\x00\x00\x00")

    def blob(self, data: bytes) -> int:
        if len(self.buf) % 2:
            self.buf += b"\x00"
        offset = len(self.buf)
        self.buf += data
        return offset

    def ifd(self, entries: list[tuple[int, int, list]], next_ifd: int = 0) -> tuple[int, int]:
        """Write an IFD; returns (its offset, offset of its next-IFD pointer)."""
        packed = []
        for tag, kind, values in sorted(entries, key=lambda e: e[0]):
            if kind == ASCII:
                raw = values.encode() + b"\x00"
                count = len(raw)
            elif kind == SRATIONAL:
                raw = b"".join(struct.pack("<ii", n, d) for n, d in values)
                count = len(values)
            else:
                fmt = {BYTE: "B", SHORT: "H", LONG: "I"}[kind]
                raw = struct.pack(f"<{len(values)}{fmt}", *values)
                count = len(values)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\x00")
            else:
                field = struct.pack("<I", self.blob(raw))
            packed.append(struct.pack("<HHI", tag, kind, count) + field)
        offset = self.blob(struct.pack("<H", len(packed)) + b"".join(packed) + struct.pack("<I", next_ifd))
        return offset, offset + 2 + 12 * len(packed)


def write_dng(path: Path, rgb: Image.Image, preview: Image.Image | None = None) -> Path:
    """`rgb` becomes the 16-bit linear raw data; `preview` (if given) the embedded JPEG."""
    tiff = _Tiff()
    width, height = rgb.size
    data = (np.asarray(rgb.convert("RGB"), dtype=np.uint16) * 257).astype("<u2").tobytes()
    data_offset = tiff.blob(data)
    raw_entries = [
        (254, LONG, [0]),
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [16, 16, 16]),
        (259, SHORT, [1]),
        (262, SHORT, [34892]),
        (273, LONG, [data_offset]),
        (277, SHORT, [3]),
        (278, LONG, [height]),
        (279, LONG, [len(data)]),
        (284, SHORT, [1]),
    ]
    dng_entries = [
        (271, ASCII, "umsearch"),
        (272, ASCII, "test camera"),
        (50706, BYTE, [1, 4, 0, 0]),
        (50708, ASCII, "umsearch test camera"),
        (50721, SRATIONAL, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]),
        (50778, SHORT, [21]),
    ]
    if preview is None:
        first, _ = tiff.ifd(raw_entries + dng_entries)
    else:
        jpeg = io.BytesIO()
        preview.convert("RGB").save(jpeg, format="JPEG", quality=90)
        jpeg_offset = tiff.blob(jpeg.getvalue())
        raw_ifd, _ = tiff.ifd(raw_entries)
        pw, ph = preview.size
        first, _ = tiff.ifd(
            [
                (254, LONG, [1]),
                (256, LONG, [pw]),
                (257, LONG, [ph]),
                (258, SHORT, [8, 8, 8]),
                (259, SHORT, [7]),
                (262, SHORT, [6]),
                (273, LONG, [jpeg_offset]),
                (277, SHORT, [3]),
                (278, LONG, [ph]),
                (279, LONG, [len(jpeg.getvalue())]),
                (284, SHORT, [1]),
                (330, LONG, [raw_ifd]),
            ]
            + dng_entries
        )
    tiff.buf[4:8] = struct.pack("<I", first)
    Path(path).write_bytes(bytes(tiff.buf))
    return Path(path)
