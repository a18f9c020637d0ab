"""Clocks and timestamps that are wrong or odd: EXIF dates in 2099, file times before 1970 or far in the future, a
system clock that jumps. Ordering and date filters stay correct; nothing crashes; the watcher waits for files
still being written whatever the wall clock says."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fault_support import small_disk
from tests.photos import write_photo
from tests.search_support import write_exif_photo
from tests.watch_support import MAX_PIXELS
from umsearch.filters import build_filters
from umsearch.index import Indexer
from umsearch.metadata import mtime_wall_clock, wall_clock_datetime, wall_clock_seconds
from umsearch.querylang import SearchRequest, Term
from umsearch.scan import FoundFile
from umsearch.session import SearchQuery, Session
from umsearch.store import Store
from umsearch.watch import Stability

pytestmark = pytest.mark.slow  # indexes real photos with the model: see CONTRIBUTING.md

DAY = 86400
NS = 10**9
LAST_NS = 2**63 - 1


def set_mtime(path: Path, seconds: int) -> None:
    os.utime(path, ns=(seconds * NS, seconds * NS))


def seconds_of(text: str) -> int:
    from datetime import datetime

    return wall_clock_seconds(datetime.strptime(text, "%Y-%m-%d"))


def build_library(root: Path) -> dict[str, int]:
    """Photos whose dates span 1901 to 2099, from EXIF or from the file time; returns name -> wall-clock seconds."""
    write_exif_photo(root / "future_exif.jpg", seed=1, taken="2099:12:31 23:59:59")
    write_exif_photo(root / "exif_1950.jpg", seed=2, taken="1950:06:01 12:00:00")
    write_photo(root / "mtime_1960.png", seed=3)
    set_mtime(root / "mtime_1960.png", seconds_of("1960-01-01") + 3600)
    write_photo(root / "mtime_1901.png", seed=4)
    set_mtime(root / "mtime_1901.png", -(2**31) + 1)  # the oldest time ext4 keeps (1901-12-13)
    write_photo(root / "mtime_2400.png", seed=5)
    set_mtime(root / "mtime_2400.png", seconds_of("2400-02-29"))  # the future, as a wrong camera clock leaves it
    write_photo(root / "now.png", seed=6)
    return {
        "future_exif.jpg": seconds_of("2099-12-31") + DAY - 1,
        "exif_1950.jpg": seconds_of("1950-06-01") + 12 * 3600,
        "mtime_1960.png": mtime_wall_clock((seconds_of("1960-01-01") + 3600) * NS),
        "mtime_1901.png": mtime_wall_clock((-(2**31) + 1) * NS),
        # Beyond 2262 nanoseconds since 1970 overflow SQLite's integers: such a time is kept as 2262-04-11.
        "mtime_2400.png": mtime_wall_clock(LAST_NS),
        "now.png": mtime_wall_clock(os.stat(root / "now.png").st_mtime_ns),
    }


def names(hits) -> list[str]:
    return [Path(hit.path).name for hit in hits]


def search_by_date(session: Session, anchor: Path, **filters: str) -> list[str]:
    """Everything matching the filters, newest first (the ranking photo only decides which photos are near)."""
    request = SearchRequest(
        positives=(Term(photo_id=session.photo_id(str(anchor))),),
        filters=build_filters(**filters),
        sort="date",
    )
    return names(session.search(SearchQuery(request, limit=20)).hits)


def test_dates_before_1970_and_far_in_the_future_sort_and_filter_correctly(tmp_path, small_embedder):
    photos = tmp_path / "photos"
    expected = build_library(photos)
    db = tmp_path / "index.db"
    with Store.open(db) as store:
        summary = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS).index([str(photos)])
        assert (summary.added, summary.failed) == (6, 0)
        taken = {Path(p).name: t for p, t in store.db.execute("SELECT path, taken FROM files")}
    assert taken == expected
    newest_first = sorted(expected, key=lambda name: -expected[name])
    with Session(Store.open(db)) as session:
        anchor = photos / "now.png"
        assert search_by_date(session, anchor) == newest_first
        assert names(session.recent(10)) == newest_first
        assert search_by_date(session, anchor, before="1970") == ["mtime_1960.png", "exif_1950.jpg", "mtime_1901.png"]
        assert search_by_date(session, anchor, after="2099") == ["mtime_2400.png", "future_exif.jpg"]
        assert search_by_date(session, anchor, after="2099-12-31", before="2100") == ["future_exif.jpg"]
        assert search_by_date(session, anchor, after="1901", before="1902") == ["mtime_1901.png"]
        for name in expected:  # a preview of each says its date, whatever the year
            details = session.details(session.photo_id(str(photos / name)))
            assert details.taken is not None


def test_times_beyond_what_a_date_can_hold_do_not_crash(tmp_path, small_embedder):
    """File systems like tmpfs keep 64-bit times (year 36812 and beyond); Python dates end at year 9999."""
    for seconds in (2**40, -(2**40), 253402300800, -62135596801):
        taken = mtime_wall_clock(seconds * NS)
        assert abs(taken - seconds) <= DAY  # the time itself, with at most the zone's offset
        assert wall_clock_datetime(taken).year in (1, 9999)  # shown as the nearest date there is
    with small_disk(tmp_path / "disk", "8m") as disk:
        photo = write_photo(disk / "far.png", seed=1)
        set_mtime(photo, 2**40)
        if os.stat(photo).st_mtime_ns // NS != 2**40:
            pytest.skip("this tmpfs does not keep 64-bit times")
        with Store.open(tmp_path / "index.db") as store:
            summary = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS).index([str(disk)])
            assert (summary.added, summary.failed) == (1, 0)
            assert store.file_by_path(str(photo)).mtime_ns == LAST_NS
            again = Indexer(store, lambda: small_embedder, max_pixels=MAX_PIXELS).index([str(disk)])
            assert (again.added, again.updated, again.unchanged) == (0, 0, 1)  # seen as unchanged, not re-embedded
        with Session(Store.open(tmp_path / "index.db")) as session:
            [hit] = session.recent(5)
            assert session.details(hit.file_id).taken.year == 2262
            assert hit.as_dict()["taken"].startswith("2262-04-1")


def test_a_file_still_being_written_waits_for_its_quiet_period_though_the_wall_clock_jumps(tmp_path):
    """A clock that jumps forward (NTP, a laptop waking) must not make a file being written look old and done."""
    jump = {"seconds": 0.0}
    stability = Stability(quiet_period=0.5, clock=lambda: time.time() + jump["seconds"])
    path = str(tmp_path / "arriving.jpg")
    now_ns = time.time_ns()
    stability.writing(path)  # the watcher saw it being written
    assert not stability.ready(FoundFile(path, 100, now_ns))
    jump["seconds"] = 3600.0  # an hour later by the wall clock, a moment later in truth
    assert not stability.ready(FoundFile(path, 200, now_ns))  # still growing: not ready
    assert not stability.ready(FoundFile(path, 200, now_ns))  # still inside its quiet period
    time.sleep(0.6)
    assert stability.ready(FoundFile(path, 200, now_ns))  # quiet for the period, by the monotonic clock
    jump["seconds"] = -3600.0  # and an hour back: a file written "in the future" is judged by the same clock
    other = str(tmp_path / "other.jpg")
    stability.writing(other)
    assert not stability.ready(FoundFile(other, 1, now_ns))
    time.sleep(0.6)
    assert stability.ready(FoundFile(other, 1, now_ns))
    # Untouched files found by a scan (no event about them) are ready at once, as before.
    assert stability.ready(FoundFile(str(tmp_path / "old.jpg"), 1, now_ns - 3600 * NS))
