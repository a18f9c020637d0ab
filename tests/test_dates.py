"""Everyday dates, as a specification: what each phrase means on a fixed day.

"Now" is Wednesday 19 November 2025, 15:30 on the local wall clock (autumn in the north, spring in the
south), and, for the turn of the year, Saturday 10 January 2026. Periods are written as the first and the
last day they include.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from umsearch import dates
from umsearch.cli import app
from umsearch.dates import DatePhrase, parse, split_words
from umsearch.errors import UmsearchError
from umsearch.filters import Filters, build_filters, parse_date
from umsearch.metadata import PhotoMeta
from umsearch.querylang import Term, parse_search_text
from umsearch.search import browse, search
from umsearch.store import IndexSettings, Store

NOW = datetime(2025, 11, 19, 15, 30)  # a Wednesday
NEW_YEAR = datetime(2026, 1, 10, 9, 0)  # a Saturday, in the northern winter


def days(when: dates.When | None, south: bool = False) -> tuple[str, str] | None:
    """A period as (first day, last day), ISO; the southern one with south=True."""
    if when is None:
        return None
    span = when.for_south() if south else when.north
    first = span.start.isoformat() if span.start else "…"
    last = (span.end - timedelta(days=1)).isoformat() if span.end else "…"
    return first, last


# ---- calendar words ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("today", "2025-11-19", "2025-11-19"),
        ("yesterday", "2025-11-18", "2025-11-18"),
        ("the day before yesterday", "2025-11-17", "2025-11-17"),
        ("this week", "2025-11-17", "2025-11-23"),  # weeks run Monday to Sunday (ISO 8601)
        ("last week", "2025-11-10", "2025-11-16"),
        ("this weekend", "2025-11-22", "2025-11-23"),
        ("last weekend", "2025-11-15", "2025-11-16"),
        ("this month", "2025-11-01", "2025-11-30"),
        ("last month", "2025-10-01", "2025-10-31"),
        ("this year", "2025-01-01", "2025-12-31"),
        ("last year", "2024-01-01", "2024-12-31"),
        ("3 days ago", "2025-11-16", "2025-11-16"),
        ("3 weeks ago", "2025-10-27", "2025-11-02"),  # the calendar week three before this one
        ("a month ago", "2025-10-01", "2025-10-31"),
        ("two years ago", "2023-01-01", "2023-12-31"),
        ("last 3 days", "2025-11-16", "2025-11-19"),  # rolling: the same day N units ago through today
        ("past 2 weeks", "2025-11-05", "2025-11-19"),
        ("past month", "2025-10-19", "2025-11-19"),
        ("last 6 months", "2025-05-19", "2025-11-19"),
    ],
)
def test_calendar_words(phrase, first, last):
    assert days(parse(phrase, NOW)) == (first, last)


# ---- months and years ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("june 2024", "2024-06-01", "2024-06-30"),
        ("Jun 2024", "2024-06-01", "2024-06-30"),
        ("in june", "2025-06-01", "2025-06-30"),  # the latest June that has begun
        ("in december", "2024-12-01", "2024-12-31"),  # this year's has not begun yet
        ("in november", "2025-11-01", "2025-11-30"),  # under way: this one
        ("last june", "2025-06-01", "2025-06-30"),  # the latest June that has ended
        ("last november", "2024-11-01", "2024-11-30"),
        ("june 3rd, 2024", "2024-06-03", "2024-06-03"),
        ("3 june 2024", "2024-06-03", "2024-06-03"),
        ("2024-06", "2024-06-01", "2024-06-30"),
        ("2024-06-03", "2024-06-03", "2024-06-03"),
        ("in 2024", "2024-01-01", "2024-12-31"),
        ("2024", "2024-01-01", "2024-12-31"),  # as a value of after:/before:/--after (explicit)
    ],
)
def test_months_and_years(phrase, first, last):
    assert days(parse(phrase, NOW)) == (first, last)


# ---- seasons: meteorological, per hemisphere -------------------------------------------------------
@pytest.mark.parametrize(
    ("phrase", "now", "north", "south"),
    [
        # In November the northern summer of 2025 is over; the latest southern summer that has ended
        # ran from December 2024 to February 2025.
        ("last summer", NOW, ("2025-06-01", "2025-08-31"), ("2024-12-01", "2025-02-28")),
        ("this summer", NOW, ("2025-06-01", "2025-08-31"), ("2025-12-01", "2026-02-28")),
        ("last autumn", NOW, ("2024-09-01", "2024-11-30"), ("2025-03-01", "2025-05-31")),  # this one is not over
        ("last fall", NOW, ("2024-09-01", "2024-11-30"), ("2025-03-01", "2025-05-31")),
        ("last winter", NOW, ("2024-12-01", "2025-02-28"), ("2025-06-01", "2025-08-31")),
        ("last spring", NOW, ("2025-03-01", "2025-05-31"), ("2024-09-01", "2024-11-30")),
        # A season belongs to the year it starts in.
        ("summer 2024", NOW, ("2024-06-01", "2024-08-31"), ("2024-12-01", "2025-02-28")),
        ("winter of 2024", NOW, ("2024-12-01", "2025-02-28"), ("2024-06-01", "2024-08-31")),
        # In January the northern winter under way started in December.
        ("this winter", NEW_YEAR, ("2025-12-01", "2026-02-28"), ("2026-06-01", "2026-08-31")),
        ("last winter", NEW_YEAR, ("2024-12-01", "2025-02-28"), ("2025-06-01", "2025-08-31")),
        ("last summer", NEW_YEAR, ("2025-06-01", "2025-08-31"), ("2024-12-01", "2025-02-28")),
    ],
)
def test_seasons_differ_by_hemisphere(phrase, now, north, south):
    when = parse(phrase, now)
    assert when is not None and when.hemispheric
    assert (days(when), days(when, south=True)) == (north, south)


# ---- Chinese ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("今天", "2025-11-19", "2025-11-19"),
        ("昨天", "2025-11-18", "2025-11-18"),
        ("前天", "2025-11-17", "2025-11-17"),
        ("这周", "2025-11-17", "2025-11-23"),
        ("本周", "2025-11-17", "2025-11-23"),
        ("上周", "2025-11-10", "2025-11-16"),
        ("上个星期", "2025-11-10", "2025-11-16"),
        ("上周末", "2025-11-15", "2025-11-16"),
        ("这个月", "2025-11-01", "2025-11-30"),
        ("上个月", "2025-10-01", "2025-10-31"),
        ("上上个月", "2025-09-01", "2025-09-30"),
        ("今年", "2025-01-01", "2025-12-31"),
        ("去年", "2024-01-01", "2024-12-31"),
        ("前年", "2023-01-01", "2023-12-31"),
        ("2024年", "2024-01-01", "2024-12-31"),
        ("二〇二四年", "2024-01-01", "2024-12-31"),
        ("2024年6月", "2024-06-01", "2024-06-30"),
        ("2024年6月3日", "2024-06-03", "2024-06-03"),
        ("2024 年 6 月 3 号", "2024-06-03", "2024-06-03"),
        ("去年6月", "2024-06-01", "2024-06-30"),
        ("6月", "2025-06-01", "2025-06-30"),  # like "in june": the latest June that has begun
        ("十二月", "2024-12-01", "2024-12-31"),
        ("3天前", "2025-11-16", "2025-11-16"),
        ("三周前", "2025-10-27", "2025-11-02"),
        ("两个月前", "2025-09-01", "2025-09-30"),
        ("一年前", "2024-01-01", "2024-12-31"),
        ("最近三天", "2025-11-16", "2025-11-19"),
        ("过去两周", "2025-11-05", "2025-11-19"),
        ("2019年到2021年", "2019-01-01", "2021-12-31"),
        ("2024年6月至2024年8月", "2024-06-01", "2024-08-31"),
        ("2019年至今", "2019-01-01", "…"),
    ],
)
def test_chinese(phrase, first, last):
    assert days(parse(phrase, NOW)) == (first, last)


@pytest.mark.parametrize(
    ("phrase", "north", "south"),
    [
        ("去年夏天", ("2024-06-01", "2024-08-31"), ("2024-12-01", "2025-02-28")),  # last year's summer
        ("今年夏天", ("2025-06-01", "2025-08-31"), ("2025-12-01", "2026-02-28")),
        ("去年冬天", ("2024-12-01", "2025-02-28"), ("2024-06-01", "2024-08-31")),
        ("2023年秋季", ("2023-09-01", "2023-11-30"), ("2023-03-01", "2023-05-31")),
    ],
)
def test_chinese_seasons(phrase, north, south):
    when = parse(phrase, NOW)
    assert (days(when), days(when, south=True)) == (north, south)


# ---- ranges and open periods ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("2019..2021", "2019-01-01", "2021-12-31"),
        ("2024-06..2024-08", "2024-06-01", "2024-08-31"),
        ("june 2024..august 2024", "2024-06-01", "2024-08-31"),
        ("from 2019 to 2021", "2019-01-01", "2021-12-31"),
        ("between march 2024 and may 2024", "2024-03-01", "2024-05-31"),
        ("2023..now", "2023-01-01", "…"),
        ("since june 2024", "2024-06-01", "…"),
        ("before 2020", "…", "2019-12-31"),
    ],
)
def test_ranges_and_open_periods(phrase, first, last):
    assert days(parse(phrase, NOW)) == (first, last)


def test_a_range_over_seasons_runs_from_each_hemispheres_start_to_its_end():
    when = parse("summer 2023..summer 2024", NOW)
    assert days(when) == ("2023-06-01", "2024-08-31")
    assert days(when, south=True) == ("2023-12-01", "2025-02-28")


# ---- what is not a date stays words ------------------------------------------------------------------
@pytest.mark.parametrize(
    "phrase",
    ["june", "may", "2024", "summer", "summer dress", "last supper", "in the morning", "march of penguins", "夏天"],
)
def test_in_free_text_bare_months_years_and_seasons_are_words(phrase):
    assert parse(phrase, NOW, explicit=False) is None


@pytest.mark.parametrize("phrase", ["someday", "2025-02-30", "2024-13", "9999 years ago", "june 31 2024", ""])
def test_nonsense_is_not_a_date_and_never_raises(phrase):
    assert parse(phrase, NOW) is None


def test_explicit_values_accept_bare_months_years_and_seasons():
    assert days(parse("june", NOW)) == ("2025-06-01", "2025-06-30")
    assert days(parse("summer", NOW)) == ("2025-06-01", "2025-08-31")
    assert days(parse("夏天", NOW)) == ("2025-06-01", "2025-08-31")


# ---- finding phrases among words ------------------------------------------------------------------------
def test_split_words_picks_the_longest_date_phrases_and_keeps_the_other_words_in_order():
    words = "dogs on the beach from last summer with friends"
    pieces = split_words(words.split(), NOW)
    assert [p.text if isinstance(p, DatePhrase) else p for p in pieces] == [
        "dogs",
        "on",
        "the",
        "beach",
        "from last summer",
        "with",
        "friends",
    ]


def test_chinese_phrases_are_found_inside_words_with_their_particles():
    def shown(text):
        return [p.text if isinstance(p, DatePhrase) else p for p in split_words(text.split(), NOW)]

    assert shown("去年夏天的海滩") == ["去年夏天", "海滩"]
    assert shown("在2024年6月拍的 猫") == ["2024年6月", "猫"]
    assert shown("海滩 日落") == ["海滩", "日落"]


# ---- the search language and the command line ------------------------------------------------------
def test_free_date_phrases_become_filters_and_leave_the_words():
    request = parse_search_text("beach 3 weeks ago -people", now=NOW)
    assert request.positives == (Term("beach"),)
    assert request.filters.after == parse_date("2025-10-27")
    assert request.filters.before == parse_date("2025-11-03")
    assert [p.text for p in request.dates] == ["3 weeks ago"]


def test_seasons_become_per_hemisphere_filters():
    request = parse_search_text("去年夏天的海滩", now=NOW)
    assert request.positives == (Term("海滩"),)
    assert request.filters.seasonal == (parse("去年夏天", NOW),)
    assert request.filters.after is None and request.filters.before is None


def test_quoted_phrases_stay_words_and_several_dates_all_hold():
    assert parse_search_text('"last summer" in paris', now=NOW).positives == (Term("last summer in paris"),)
    request = parse_search_text("kids in 2024 before june 2024", now=NOW)
    assert request.positives == (Term("kids"),)
    assert (request.filters.after, request.filters.before) == (parse_date("2024"), parse_date("2024-06"))


def test_after_and_before_take_every_form():
    request = parse_search_text('sunset after:"last june" before:"this month"', now=NOW)
    assert (request.filters.after, request.filters.before) == (parse_date("2025-06"), parse_date("2025-11"))
    assert request.positives == (Term("sunset"),)
    request = parse_search_text("sunset after:2024年6月 before:上个月", now=NOW)
    assert (request.filters.after, request.filters.before) == (parse_date("2024-06"), parse_date("2025-10"))
    request = parse_search_text("after:2019..2021 before:2019..2021", now=NOW)
    assert (request.filters.after, request.filters.before) == (parse_date("2019"), parse_date("2019"))


def test_cli_flags_take_every_form():
    filters = build_filters(after="last summer", before="this month", now=NOW)
    assert filters.before == parse_date("2025-11")
    assert [days(w) for w in filters.seasonal] == [("2025-06-01", "…")]
    with pytest.raises(UmsearchError, match="'someday' is not a date"):
        build_filters(after="someday", now=NOW)


# ---- the store: each photo is held to its own hemisphere's season ---------------------------------------
LISBON, SYDNEY = (38.7, -9.1), (-33.9, 151.2)


def _put(store: Store, name: str, taken: str, place: tuple[float, float] | None, vector: np.ndarray) -> int:
    meta = PhotoMeta(
        taken=parse_date(taken),
        taken_source="exif",
        latitude=place[0] if place else None,
        longitude=place[1] if place else None,
    )
    return store.put_file(f"/lib/{name}.jpg", size=1, mtime_ns=1, digest=name, vector=vector, meta=meta)


@pytest.fixture
def two_hemispheres(tmp_path):
    """Photos from July 2025 and January 2025, in Lisbon, in Sydney and without a place."""
    rng = np.random.default_rng(1)
    store = Store.open(tmp_path / "i.db")
    store.bind(IndexSettings("m", 8, 256, 1280))
    with store.transaction():
        for name, taken, place in [
            ("lisbon-july", "2025-07-14", LISBON),
            ("lisbon-january", "2025-01-14", LISBON),
            ("sydney-july", "2025-07-14", SYDNEY),
            ("sydney-january", "2025-01-14", SYDNEY),
            ("unplaced-july", "2025-07-14", None),
            ("unplaced-january", "2025-01-14", None),
        ]:
            _put(store, name, taken, place, rng.standard_normal(8).astype(np.float32))
    yield store
    store.close()


def found(store: Store, filters: Filters) -> set[str]:
    query = np.ones(8, dtype=np.float32)
    by_search = {h.path.split("/")[-1][:-4] for h in search(store, query, 20, filters)}
    by_date = {h.path.split("/")[-1][:-4] for h in browse(store, 20, filters)}
    assert by_search == by_date
    return by_search


def test_last_summer_is_july_in_lisbon_and_january_in_sydney(two_hemispheres):
    filters = Filters().within(parse("last summer", NOW))
    # Photos without a place take the hemisphere of most geotagged photos (a tie counts as north).
    assert found(two_hemispheres, filters) == {"lisbon-july", "sydney-january", "unplaced-july"}
    winter = Filters().within(parse("last winter", NOW))
    assert found(two_hemispheres, winter) == {"lisbon-january", "sydney-july", "unplaced-january"}


def test_photos_without_a_place_follow_a_mostly_southern_library(two_hemispheres):
    rng = np.random.default_rng(2)
    with two_hemispheres.transaction():
        _put(two_hemispheres, "sydney-march", "2025-03-14", SYDNEY, rng.standard_normal(8).astype(np.float32))
    filters = Filters().within(parse("last summer", NOW))
    assert found(two_hemispheres, filters) == {"lisbon-july", "sydney-january", "unplaced-january"}


@pytest.mark.parametrize("selective", [0.0, 1.0])  # a mask over the full scan, or a scan of the passing only
def test_a_season_filter_on_either_path_keeps_each_hemisphere_apart(two_hemispheres, monkeypatch, selective):
    from umsearch.store import bitcache

    monkeypatch.setattr(bitcache, "SELECTIVE", selective)
    hits = search(two_hemispheres, np.ones(8, dtype=np.float32), 20, Filters().within(parse("last summer", NOW)))
    assert {h.path.split("/")[-1][:-4] for h in hits} == {"lisbon-july", "sydney-january", "unplaced-july"}


# ---- the command line: phrases in the query text and in the flags -------------------------------------
def test_cli_query_with_dates_alone_lists_those_photos_newest_first(two_hemispheres, monkeypatch):
    monkeypatch.setattr(dates, "now_wall_clock", lambda: NOW)
    runner = CliRunner()
    db = str(two_hemispheres.path)
    result = runner.invoke(app, ["query", "last summer", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    # newest first; photos taken at the same moment: the most recently indexed first
    assert [h["path"] for h in listed] == ["/lib/unplaced-july.jpg", "/lib/lisbon-july.jpg", "/lib/sydney-january.jpg"]
    assert all(h["score"] is None for h in listed)
    flags = runner.invoke(app, ["query", "--after", "2025-07", "--before", "2025年8月", "--db", db, "--paths"])
    assert flags.exit_code == 0 and set(flags.stdout.split()) == {
        f"/lib/{p}-july.jpg" for p in ("lisbon", "sydney", "unplaced")
    }
    table = runner.invoke(app, ["query", "2025年1月", "--db", db])
    assert "taken 2025年1月: 2025-01-01 – 2025-01-31" in table.output


def test_the_real_clock_is_the_default_now():
    today = date.today()
    assert days(parse("today")) == (today.isoformat(), today.isoformat())


def test_date_filters_travel_to_the_resident_service_unchanged():
    from umsearch.service import protocol

    request = parse_search_text("beach last summer since 2019 去年冬天", now=NOW)
    assert len(request.filters.seasonal) == 2 and request.filters.after == parse_date("2019")
    wire = protocol.loads(protocol.dumps(protocol.encode_request(request)))
    assert protocol.decode_request(wire) == request
    with pytest.raises(protocol.ProtocolError, match="ISO days"):
        protocol.decode_filters({"seasonal": [{"north": ["2025-06-01", "June"]}]})
