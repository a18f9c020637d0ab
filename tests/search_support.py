"""Photos with EXIF (date taken, camera, GPS) written by the tests, for metadata and filter tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .photos import picture

PLACES = {  # (latitude, longitude) of a few cities, for GPS tags
    "lisbon": (38.7223, -9.1393),
    "porto": (41.1496, -8.6109),
    "madrid": (40.4168, -3.7038),
    "shanghai": (31.2304, 121.4737),
}


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 2)
    return (float(degrees), float(minutes), seconds)


def write_exif_photo(
    path: Path,
    seed: int = 0,
    *,
    taken: str | None = None,  # "YYYY:MM:DD HH:MM:SS"
    make: str | None = None,
    model: str | None = None,
    gps: tuple[float, float] | None = None,
    size: tuple[int, int] = (96, 64),
    image: Image.Image | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    if gps:
        lat, lon = gps
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N" if lat >= 0 else "S"
        gps_ifd[2] = _dms(lat)
        gps_ifd[3] = "E" if lon >= 0 else "W"
        gps_ifd[4] = _dms(lon)
    (image or picture(seed, size)).save(path, exif=exif)
    return path
