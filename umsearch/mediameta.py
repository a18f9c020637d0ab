"""Date, camera and place of a video (from its container's tags) or a PDF (its creation date), as PhotoMeta,
so `after:`, `camera:` and `place:` filter videos and documents like photos."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone

from .metadata import PhotoMeta, camera_name, mtime_wall_clock, place_name, wall_clock_seconds

# ISO 6709 as phones write it: "+37.7858-122.4064+000.000/" (Apple), "+37.4219-122.0840/" (Android).
_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def video_metadata(tags: Mapping[str, str], size: tuple[int, int], mtime_ns: int) -> PhotoMeta:
    """Facts from a video's tags (lower-case keys, as `video.SampledVideo.tags`), else the file time."""
    taken = _video_taken(tags)
    lat_lon = _location(tags)
    make = _first(tags, ("com.apple.quicktime.make", "make", "com.android.manufacturer", "manufacturer"))
    model = _first(tags, ("com.apple.quicktime.model", "model", "com.android.model"))
    return PhotoMeta(
        taken=wall_clock_seconds(taken) if taken else mtime_wall_clock(mtime_ns),
        taken_source="video" if taken else "mtime",
        camera=camera_name(make, model),
        place=place_name(*lat_lon) if lat_lon else None,
        latitude=lat_lon[0] if lat_lon else None,
        longitude=lat_lon[1] if lat_lon else None,
        width=size[0],
        height=size[1],
    )


def document_metadata(created: datetime | None, size: tuple[int, int] | None, mtime_ns: int) -> PhotoMeta:
    return PhotoMeta(
        taken=wall_clock_seconds(created) if created else mtime_wall_clock(mtime_ns),
        taken_source="pdf" if created else "mtime",
        width=size[0] if size else None,
        height=size[1] if size else None,
    )


def _first(tags: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = (tags.get(key) or "").strip()
        if value:
            return value
    return None


def _video_taken(tags: Mapping[str, str]) -> datetime | None:
    """The wall-clock time of recording, like a photo's EXIF date.

    Apple's creationdate carries the local offset ("2024-06-01T14:03:22+0200"): its local part is the wall
    clock. The generic creation_time is UTC (phones write it so): shown in this machine's time zone, the
    best guess of where it was taken. Cameras that write 1970 or 1904 (no clock set) count as no date.
    """
    apple = _parse_iso(tags.get("com.apple.quicktime.creationdate"))
    if apple is not None:
        return apple.replace(tzinfo=None)
    moment = _parse_iso(tags.get("creation_time") or tags.get("date"))
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return moment


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)  # +0200 -> +02:00 (Python 3.10 needs the colon)
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # nanoseconds -> microseconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.year <= 1970:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def _location(tags: Mapping[str, str]) -> tuple[float, float] | None:
    text = _first(tags, ("com.apple.quicktime.location.iso6709", "location", "location-eng"))
    match = _ISO6709.match(text or "")
    if not match:
        return None
    lat, lon = float(match[1]), float(match[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        return None
    return lat, lon


def media_metadata(path: str, mtime_ns: int) -> PhotoMeta:
    """The facts of a video or PDF on disk, reading only its header (for rows indexed without them, e.g. a
    copy that reused another file's vectors). Falls back to the file time when the header cannot be read."""
    from .kinds import VIDEO, kind_by_extension

    try:
        if kind_by_extension(path) == VIDEO:
            from .video import read_header

            tags, size = read_header(path)
            return video_metadata(tags, size, mtime_ns)
        from .pdfpages import read_header as read_pdf_header

        created, size = read_pdf_header(path)
        return document_metadata(created, size, mtime_ns)
    except Exception:  # unreadable now: the file's own time stands for it
        return document_metadata(None, None, mtime_ns)
