"""Facts about a photo that people filter by: when it was taken, with what camera, where.

Read from EXIF on the loader threads (next to decoding), never from the network: GPS positions become
place names with reverse-geocoder's bundled offline table when that package is installed
(`pip install 'umsearch[all]'`); without it photos simply have no place.
"""

from __future__ import annotations

import calendar
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

# EXIF tags (numbers from the EXIF 2.3 specification)
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL = 0x9003
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4

METADATA_VERSION = 2  # bump when extraction changes, so `umsearch index` refreshes old rows (2: kinds)


@dataclass(frozen=True)
class PhotoMeta:
    taken: int  # wall-clock time the photo was taken, as seconds since 1970 read as UTC (no time zone in EXIF)
    taken_source: str  # "exif" or "mtime"
    camera: str | None = None  # "Make Model", e.g. "Canon Canon EOS R6" collapsed to "Canon EOS R6"
    place: str | None = None  # "City, Region, Country"
    latitude: float | None = None
    longitude: float | None = None
    width: int | None = None
    height: int | None = None


def wall_clock_seconds(moment: datetime) -> int:
    """A naive wall-clock time as a sortable integer (EXIF dates carry no zone, so none is invented)."""
    return calendar.timegm(moment.timetuple())


def wall_clock_datetime(seconds: int) -> datetime:
    """The naive wall-clock time back from `wall_clock_seconds` (what the camera's clock said); a time beyond the
    years a date can hold (1-9999: some file systems keep file times far past them) as the nearest date there is."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return datetime.max if seconds > 0 else datetime.min


def mtime_wall_clock(mtime_ns: int) -> int:
    """A file time as the wall clock of this machine showed it then (its time zone then applied): before 1970 and
    after 9999 too, where the local zone is unknown and the time is kept as it is."""
    seconds = mtime_ns // 1_000_000_000
    try:
        return wall_clock_seconds(datetime.fromtimestamp(seconds))
    except (ValueError, OverflowError, OSError):  # OSError: Windows refuses times before 1970
        return seconds


def extract_metadata(path: str, mtime_ns: int | None = None) -> PhotoMeta:
    """Everything this module knows about `path`; never raises for a bad or missing EXIF block."""
    from PIL import Image

    from .imageload import upright_size

    if mtime_ns is None:
        mtime_ns = os.stat(path).st_mtime_ns
    try:
        with Image.open(path) as img:
            return metadata_from_exif(img.getexif(), upright_size(img), mtime_ns)
    except Exception:  # unreadable EXIF (or file) must not fail the photo: fall back to the file's facts
        return metadata_from_exif(None, None, mtime_ns)


def metadata_from_exif(
    raw: Image.Exif | None,
    size: tuple[int, int] | None,
    mtime_ns: int,
) -> PhotoMeta:
    """The facts from an EXIF block already read (the loader has it from decoding), else from the file time."""
    try:
        exif = _read_exif(raw) if raw is not None else {}
    except Exception:  # a malformed block: the photo keeps its file facts
        exif = {}
    taken = _parse_exif_date(exif.get("taken"))
    lat, lon = exif.get("lat"), exif.get("lon")
    return PhotoMeta(
        taken=wall_clock_seconds(taken) if taken else mtime_wall_clock(mtime_ns),
        taken_source="exif" if taken else "mtime",
        camera=exif.get("camera"),
        place=place_name(lat, lon) if lat is not None and lon is not None else None,
        latitude=lat,
        longitude=lon,
        width=size[0] if size else None,
        height=size[1] if size else None,
    )


def _read_exif(raw: Image.Exif) -> dict:
    found: dict = {}
    try:
        sub = raw.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    found["taken"] = sub.get(_DATETIME_ORIGINAL) or raw.get(_DATETIME)
    found["camera"] = camera_name(_text(raw.get(_MAKE)), _text(raw.get(_MODEL)))
    try:
        gps = raw.get_ifd(_GPS_IFD)
    except Exception:
        gps = {}
    lat = _degrees(gps.get(_GPS_LAT), _text(gps.get(_GPS_LAT_REF)), "S")
    lon = _degrees(gps.get(_GPS_LON), _text(gps.get(_GPS_LON_REF)), "W")
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0, 0):
        found["lat"], found["lon"] = lat, lon
    return found


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def camera_name(make: str | None, model: str | None) -> str | None:
    """'Canon' + 'Canon EOS R6' reads as 'Canon EOS R6', not 'Canon Canon EOS R6'."""
    if make and model and model.lower().startswith(make.split()[0].lower()):
        return model
    joined = " ".join(part for part in (make, model) if part)
    return joined or None


def _parse_exif_date(value: object) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y:%m:%d"):
        try:
            moment = datetime.strptime(text[: len(datetime(2000, 1, 1).strftime(fmt))], fmt)
        except ValueError:
            continue
        return moment if moment.year > 1800 else None
    return None


def _degrees(value: Any, ref: str | None, negative_ref: str) -> float | None:
    try:
        d, m, s = (float(part) for part in value)
    except Exception:
        return None
    result = d + m / 60 + s / 3600
    return -result if ref and ref.upper().startswith(negative_ref) else result


# ---- places -------------------------------------------------------------------------------------
_geocoder_lock = threading.Lock()
_geocoder: object | None = None
_geocoder_failed: str | None = None


def geocoder_status() -> str | None:
    """None when place names are available; otherwise why not (shown by `status`)."""
    import importlib.util

    if importlib.util.find_spec("reverse_geocoder") is None:
        return "reverse-geocoder is not installed (pip install 'umsearch[all]'): photos get no place names"
    return _geocoder_failed


def place_name(lat: float, lon: float) -> str | None:
    """'City, Region, Country' from the offline GeoNames table, or None when that table is unavailable."""
    geocoder = _load_geocoder()
    if geocoder is None:
        return None
    try:
        found = geocoder.query([(lat, lon)])[0]  # type: ignore[attr-defined]
    except Exception:
        return None
    from .countries import COUNTRY_NAMES

    country = COUNTRY_NAMES.get(found.get("cc", ""), found.get("cc") or None)
    parts: list[str] = []
    for part in (found.get("name"), found.get("admin1"), country):
        if part and part not in parts:
            parts.append(part)
    return ", ".join(parts) or None


def _load_geocoder() -> object | None:
    global _geocoder, _geocoder_failed
    if _geocoder is not None or _geocoder_failed is not None:
        return _geocoder
    with _geocoder_lock:  # loader threads share one table (about 1.3 s to build, once per process)
        if _geocoder is None and _geocoder_failed is None:
            try:
                import contextlib
                import io

                import reverse_geocoder

                # mode=1: a single-process KD-tree; the default forks a pool, which breaks in threads.
                with contextlib.redirect_stdout(io.StringIO()):
                    _geocoder = reverse_geocoder.RGeocoder(mode=1, verbose=False)
            except Exception as exc:
                _geocoder_failed = f"place names unavailable: {type(exc).__name__}: {exc}"
    return _geocoder


def file_extension(path: str) -> str:
    """The type filter's key: lower-case extension, with the common aliases folded (jpeg→jpg, tiff→tif)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"jpeg": "jpg", "jpe": "jpg", "tiff": "tif", "heif": "heic"}.get(ext, ext)
