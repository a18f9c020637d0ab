"""Everyday dates: "last summer", "3 weeks ago", "june 2024", "2019..2021", "去年夏天" as periods of time.

A period is half-open, [start, end), on the wall clock: the time the camera's clock showed, the scale of a
photo's date taken (metadata.wall_clock_seconds), and "now" is this computer's local wall clock.

Rules (README, "Everyday dates", has the table):

* Calendar words name whole calendar units: "last week" is Monday to Sunday of the week before this one,
  "3 weeks ago" the week three before this one, "a month ago" last calendar month.
* "last/past N days|weeks|months|years" is a rolling window: from the same day N units ago to today.
* Seasons are meteorological (three whole months) and differ by hemisphere: summer is June-August in the
  north and December-February in the south. A season belongs to the year it starts in ("winter 2024" is
  December 2024 to February 2025). A seasonal period therefore holds one span per hemisphere; the search
  holds each photo to the span of its own hemisphere (by its latitude).
* "last summer" is the latest summer that has ended; "this summer" the one under way, else the one
  starting this year. "in june" (or "6月") is the latest June that has begun; "last june" the latest ended.
* In free text a bare year, month name or season stays a word ("summer dress", "June" the person): write
  "in 2024", "in june", "summer 2024", or use after:/before:, where any date form is accepted.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_SEASON_START_NORTH = {"spring": 3, "summer": 6, "autumn": 9, "winter": 12}
_SEASON_START_SOUTH = {"spring": 9, "summer": 12, "autumn": 3, "winter": 6}
_SEASON_WORDS = {"spring": "spring", "summer": "summer", "autumn": "autumn", "fall": "autumn", "winter": "winter"}
_MONTH_NAMES = "january/jan february/feb march/mar april/apr may june/jun july/jul august/aug september/sep/sept"
_MONTH_NAMES += " october/oct november/nov december/dec"
_MONTHS = {name: number for number, names in enumerate(_MONTH_NAMES.split(), 1) for name in names.split("/")}
_NUMBER_WORDS = "one two three four five six seven eight nine ten eleven twelve"
_COUNTS = {word: n for n, word in enumerate(_NUMBER_WORDS.split(" "), 1)}
_COUNTS |= {"a": 1, "an": 1}
MAX_PHRASE_WORDS = 6  # the longest phrase looked for in free text ("between june 2023 and june 2024")

# ---- periods --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Days [start, end): None is open (no lower or no upper bound)."""

    start: date | None
    end: date | None

    def seconds(self) -> tuple[int | None, int | None]:
        """The bounds as wall-clock seconds (the scale of a photo's date taken)."""
        return _seconds(self.start), _seconds(self.end)

    def describe(self) -> str:
        first = self.start.isoformat() if self.start else "…"
        last = (self.end - timedelta(days=1)).isoformat() if self.end else "…"
        return first if first == last else f"{first} – {last}"


@dataclass(frozen=True)
class When:
    """A period of time taken; `south` is set when it differs south of the equator (seasons)."""

    north: Span
    south: Span | None = None

    @property
    def hemispheric(self) -> bool:
        return self.south is not None and self.south != self.north

    def for_south(self) -> Span:
        return self.south or self.north

    def since(self) -> When:
        """From the start of this period on (`after:` includes the period)."""
        return self._each(lambda span: Span(span.start, None))

    def until(self) -> When:
        """Up to the start of this period (`before:` excludes the period)."""
        return self._each(lambda span: Span(None, span.start))

    def through(self, last: When) -> When:
        """From the start of this period to the end of `last` (a range, "2019..2021")."""
        north = Span(self.north.start, last.north.end)
        if not (self.hemispheric or last.hemispheric):
            return When(north)
        return When(north, Span(self.for_south().start, last.for_south().end))

    def describe(self) -> str:
        text = self.north.describe()
        if self.hemispheric:
            text += f" (south of the equator: {self.for_south().describe()})"
        return text

    def _each(self, change) -> When:
        return When(change(self.north), change(self.south) if self.south is not None else None)


@dataclass(frozen=True)
class DatePhrase:
    """A date found in a search: the words as written and the period they name."""

    text: str
    when: When


def now_wall_clock() -> datetime:
    """The local wall clock, the reference of every relative phrase (tests pass their own `now`)."""
    return datetime.now()


def _seconds(day: date | None) -> int | None:
    return None if day is None else calendar.timegm(day.timetuple())


# ---- calendar arithmetic --------------------------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _day(day: date) -> When:
    return When(Span(day, day + timedelta(days=1)))


def _week(monday: date) -> When:
    return When(Span(monday, monday + timedelta(days=7)))


def _month(year: int, month: int) -> When:
    start = date(year, month, 1)
    return When(Span(start, _add_months(start, 1)))


def _year(year: int) -> When:
    return When(Span(date(year, 1, 1), date(year + 1, 1, 1)))


def _monday(today: date) -> date:
    return today - timedelta(days=today.weekday())


def _unit_back(unit: str, today: date, count: int) -> When:
    """The calendar unit `count` units before the current one (0: the current one)."""
    if unit == "day":
        return _day(today - timedelta(days=count))
    if unit == "week":
        return _week(_monday(today) - timedelta(days=7 * count))
    if unit == "month":
        first = _add_months(today.replace(day=1), -count)
        return _month(first.year, first.month)
    return _year(today.year - count)


def _rolling(unit: str, today: date, count: int) -> When:
    """From the same day `count` units ago through today."""
    if unit == "day":
        start = today - timedelta(days=count)
    elif unit == "week":
        start = today - timedelta(days=7 * count)
    else:
        start = _add_months(today, -count * (12 if unit == "year" else 1))
    return When(Span(start, today + timedelta(days=1)))


def _weekend(today: date, weeks_back: int) -> When:
    saturday = _monday(today) - timedelta(days=7 * weeks_back) + timedelta(days=5)
    return When(Span(saturday, saturday + timedelta(days=2)))


def _season_span(season: str, year: int, south: bool) -> Span:
    start = date(year, (_SEASON_START_SOUTH if south else _SEASON_START_NORTH)[season], 1)
    return Span(start, _add_months(start, 3))


def _season_of_year(season: str, year: int) -> When:
    return When(_season_span(season, year, False), _season_span(season, year, True))


def _season_relative(season: str, today: date, which: str) -> When:
    """ "last": the latest one that has ended; "this": the one under way, else the one starting this year;
    "latest": the latest one that has begun. Worked out for each hemisphere."""

    def pick(south: bool) -> Span:
        spans = [_season_span(season, year, south) for year in range(today.year + 1, today.year - 3, -1)]
        if which == "last":
            return next(s for s in spans if s.end <= today)  # type: ignore[operator]
        if which == "latest":
            return next(s for s in spans if s.start <= today)  # type: ignore[operator]
        under_way = [s for s in spans if s.start <= today < s.end]  # type: ignore[operator]
        return under_way[0] if under_way else _season_span(season, today.year, south)

    return When(pick(False), pick(True))


def _month_relative(month: int, today: date, which: str, day: int | None = None) -> When | None:
    """The latest `month` (or day of it) that has begun ("latest") or ended ("last"), or this year's ("this")."""
    for year in range(today.year, today.year - 2, -1):
        if which == "this" and year != today.year:
            break
        found = _calendar_date(year, month, day)
        if found is None:
            continue
        if which == "this" or (found.north.start <= today if which == "latest" else found.north.end <= today):  # type: ignore[operator]
            return found
    return None


def _calendar_date(year: int, month: int | None, day: int | None) -> When | None:
    try:
        if month is None:
            return _year(year)
        if day is None:
            return _month(year, month)
        return _day(date(year, month, day))
    except ValueError:
        return None  # 2025-02-30, month 13: not a date


# ---- parsing --------------------------------------------------------------------------------------


def parse(text: str, now: datetime | None = None, *, explicit: bool = True) -> When | None:
    """The period a phrase names, or None when it is not a date.

    `explicit`: the text is known to be a date (the value of after:/before:/--after), so a bare year,
    month name or season is one too; in free text (explicit=False) those stay words unless a preposition
    says otherwise ("in 2024", "in june").
    """
    return _attempt(text, (now or now_wall_clock()).date(), "any" if explicit else "free")


def _attempt(text: str, today: date, bare: str) -> When | None:
    normal = _normalise(text)
    if not normal or len(normal) > 80:
        return None
    try:
        return _parse(normal, today, bare)
    except (ValueError, OverflowError):  # "9999 years ago": before year 1
        return None


def parse_value(text: str, now: datetime | None = None) -> When:
    """The value of after:/before:/--after/--before: any date form, else a one-line error."""
    from .errors import UmsearchError

    found = parse(text, now, explicit=True)
    if found is None:
        raise UmsearchError(
            f"'{text}' is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or a phrase such as 'last summer', "
            "'june 2024', '3 weeks ago', '2019..2021', '去年夏天' (README, \"Everyday dates\")"
        )
    return found


def _normalise(text: str) -> str:
    text = text.strip().casefold().replace(",", " ").replace("，", " ").replace("'", "").replace("’", "")
    text = re.sub(r"\s+", " ", text)
    if _CJK.search(text):  # spaces carry no meaning between Chinese words ("2024 年 6 月")
        text = re.sub(r"(?<=[^a-z]) | (?=[^a-z])", "", text)
    return re.sub(r"^the ", "", text)


_CJK = re.compile(r"[\u3400-\u9fff]")
_RANGE_WORDS = re.compile(r"(?:from |between )(.+?) (?:to|and|until|till|through) (.+)")
_PREPOSITION = re.compile(r"(since|before|in|from|during|on) (.+)")


def _parse(text: str, today: date, bare: str) -> When | None:
    """`bare`: "any" (a bare year, month or season is a date), "dated" (year or month, after a
    preposition), "free" (none)."""
    for separator in ("..", "到", "至", "~", "～"):
        if separator in text:
            first, _, last = text.partition(separator)
            return _range(first.strip(" "), last.strip(" "), today)
    words = _RANGE_WORDS.fullmatch(text)
    if words:
        return _range(words[1], words[2], today)
    prefixed = _PREPOSITION.fullmatch(text)
    if prefixed:
        inner = _parse(prefixed[2], today, "any" if bare == "any" else "dated")
        if inner is None or prefixed[1] in ("since", "before"):
            if inner is None:
                return None
            return inner.since() if prefixed[1] == "since" else inner.until()
        return inner
    if _CJK.search(text):
        return _chinese(text, today, bare)
    return _english(text, today, bare)


def _range(first: str, last: str, today: date) -> When | None:
    start = _parse(first, today, "any")
    if last in ("now", "today", "今", "今天", "现在"):
        return start.since() if start else None
    end = _parse(last, today, "any")
    return start.through(end) if start and end else None


_NUMBER = r"(\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT = r"(day|week|month|year)s?"
_MONTH = r"(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_SEASON = r"(spring|summer|autumn|fall|winter)"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(\d{4})"
_ENGLISH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), kind)
    for p, kind in (
        (r"today", "today"),
        (r"yesterday", "yesterday"),
        (r"(?:the )?day before yesterday", "before_yesterday"),
        (r"(this|last|previous) (week|weekend|month|year)", "calendar"),
        (r"past (week|month|year)", "past_one"),
        (_NUMBER + " " + _UNIT + " ago", "ago"),
        (r"(?:last|past) " + _NUMBER + " " + _UNIT, "rolling"),
        (r"(this|last|previous) " + _SEASON, "season_relative"),
        (_SEASON + r" (?:of )?" + _YEAR, "season_year"),
        (_YEAR + " " + _SEASON, "year_season"),
        (r"(this|last|previous) " + _MONTH, "month_relative"),
        (_MONTH + " " + _YEAR, "month_year"),
        (_MONTH + " " + _DAY + " " + _YEAR, "month_day_year"),
        (_DAY + r" (?:of )?" + _MONTH + " " + _YEAR, "day_month_year"),
        (r"(\d{4})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?", "iso"),
        (_YEAR, "bare_year"),
        (_MONTH, "bare_month"),
        (_SEASON, "bare_season"),
    )
]


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _COUNTS[word]


def _english(text: str, today: date, bare: str) -> When | None:
    for pattern, kind in _ENGLISH:
        match = pattern.fullmatch(text)
        if match:
            return _english_kind(kind, match.groups(), today, bare)
    return None


def _english_kind(kind: str, g: Sequence[str], today: date, bare: str) -> When | None:
    if kind == "today":
        return _day(today)
    if kind == "yesterday":
        return _day(today - timedelta(days=1))
    if kind == "before_yesterday":
        return _day(today - timedelta(days=2))
    if kind == "calendar":
        back = 0 if g[0] == "this" else 1
        return _weekend(today, back) if g[1] == "weekend" else _unit_back(g[1], today, back)
    if kind == "past_one":
        return _rolling(g[0], today, 1)
    if kind == "ago":
        return _unit_back(g[1], today, _count(g[0]))
    if kind == "rolling":
        return _rolling(g[1], today, _count(g[0]))
    if kind == "season_relative":
        return _season_relative(_SEASON_WORDS[g[1]], today, "this" if g[0] == "this" else "last")
    if kind == "season_year":
        return _season_of_year(_SEASON_WORDS[g[0]], int(g[1]))
    if kind == "year_season":
        return _season_of_year(_SEASON_WORDS[g[1]], int(g[0]))
    if kind == "month_relative":
        return _month_relative(_MONTHS[g[1]], today, "this" if g[0] == "this" else "last")
    if kind == "month_year":
        return _calendar_date(int(g[1]), _MONTHS[g[0]], None)
    if kind == "month_day_year":
        return _calendar_date(int(g[2]), _MONTHS[g[0]], int(g[1]))
    if kind == "day_month_year":
        return _calendar_date(int(g[2]), _MONTHS[g[1]], int(g[0]))
    if kind == "iso":
        return _calendar_date(int(g[0]), int(g[1]), int(g[2]) if g[2] else None)
    if kind == "bare_year" and bare != "free":
        return _year(int(g[0])) if 1800 <= int(g[0]) <= 2200 else None
    if kind == "bare_month" and bare != "free":
        return _month_relative(_MONTHS[g[0]], today, "latest")
    if kind == "bare_season" and bare == "any":
        return _season_relative(_SEASON_WORDS[g[0]], today, "latest")
    return None


# ---- Chinese --------------------------------------------------------------------------------------

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_NUMBER = r"(\d{1,4}|[零〇一二两三四五六七八九十]{1,4})"
_CN_SEASONS = {"春": "spring", "夏": "summer", "秋": "autumn", "冬": "winter"}
_CN_YEARS = {"今年": 0, "去年": 1, "前年": 2}
_CN_UNITS = {"天": "day", "日": "day", "周": "week", "星期": "week", "礼拜": "week", "月": "month", "年": "year"}
_CN_YEAR = r"(今年|去年|前年|" + _CN_NUMBER + "年)"
_CN_UNIT = r"(?:个)?(天|日|周|星期|礼拜|月|年)"
_CHINESE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), kind)
    for p, kind in (
        (r"今天|今日", "today"),
        (r"昨天|昨日", "yesterday"),
        (r"前天", "before_yesterday"),
        (r"(本|这|这个)(周|星期|礼拜)", "this_week"),
        (r"(上上|上)(个)?(周|星期|礼拜)", "last_week"),
        (r"(本|这|这个)周末", "this_weekend"),
        (r"上(个)?周末", "last_weekend"),
        (r"(本月|这个月|这月)", "this_month"),
        (r"(上上|上)(个)?月", "last_month"),
        (r"(今年|去年|前年)", "relative_year"),
        (_CN_YEAR + r"([春夏秋冬])(?:天|季)", "season"),
        (r"([春夏秋冬])(?:天|季)", "bare_season"),
        (_CN_YEAR + "?" + _CN_NUMBER + r"月(?:份)?(?:" + _CN_NUMBER + r"(?:日|号))?", "month"),
        (_CN_NUMBER + "年", "year"),
        (_CN_NUMBER + _CN_UNIT + "(?:以)?前", "ago"),
        (r"(?:最近|过去|近)" + _CN_NUMBER + _CN_UNIT, "rolling"),
    )
]


def cn_number(text: str) -> int | None:
    """123, 十二, 二十三, 两, 二〇二四 as integers (None when it is not a number)."""
    if text.isdigit():
        return int(text)
    if any(c not in _CN_DIGITS and c != "十" for c in text):
        return None
    if "十" in text:
        tens, _, ones = text.partition("十")
        if len(tens) > 1 or len(ones) > 1:
            return None
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    return int("".join(str(_CN_DIGITS[c]) for c in text))


def _cn_year(match: str | None, number: str | None, today: date) -> int | None:
    if match in _CN_YEARS:
        return today.year - _CN_YEARS[match]
    return cn_number(number) if number else None


def _chinese(text: str, today: date, bare: str) -> When | None:
    for pattern, kind in _CHINESE:
        match = pattern.fullmatch(text)
        if match:
            return _chinese_kind(kind, match.groups(), today, bare)
    return None


def _chinese_kind(kind: str, g: Sequence[str | None], today: date, bare: str) -> When | None:
    if kind == "today":
        return _day(today)
    if kind == "yesterday":
        return _day(today - timedelta(days=1))
    if kind == "before_yesterday":
        return _day(today - timedelta(days=2))
    if kind == "this_week":
        return _unit_back("week", today, 0)
    if kind == "last_week":
        return _unit_back("week", today, 2 if g[0] == "上上" else 1)
    if kind == "this_weekend":
        return _weekend(today, 0)
    if kind == "last_weekend":
        return _weekend(today, 1)
    if kind == "this_month":
        return _unit_back("month", today, 0)
    if kind == "last_month":
        return _unit_back("month", today, 2 if g[0] == "上上" else 1)
    if kind == "relative_year":
        return _year(today.year - _CN_YEARS[g[0] or ""])
    if kind == "season":
        year = _cn_year(g[0], g[1], today)
        return _season_of_year(_CN_SEASONS[g[2] or ""], year) if year else None
    if kind == "bare_season" and bare == "any":
        return _season_relative(_CN_SEASONS[g[0] or ""], today, "latest")
    if kind == "month":
        month = cn_number(g[2] or "")
        day = cn_number(g[3]) if g[3] else None
        if month is None or not 1 <= month <= 12 or (g[3] and day is None):
            return None
        if g[0] is None:
            return _month_relative(month, today, "latest", day)
        year = _cn_year(g[0], g[1], today)
        return _calendar_date(year, month, day) if year else None
    if kind == "year":
        year = cn_number(g[0] or "")
        return _year(year) if year and 1800 <= year <= 2200 else None
    if kind in ("ago", "rolling"):
        count = cn_number(g[0] or "")
        if count is None:
            return None
        unit = _CN_UNITS[g[1] or ""]
        return _unit_back(unit, today, count) if kind == "ago" else _rolling(unit, today, count)
    return None


# ---- finding dates in free text -------------------------------------------------------------------

_CN_BEFORE = ("在", "从", "于")  # "在去年夏天": the particle goes with the date
_CN_AFTER = ("拍摄的", "拍的", "时候的", "时的", "的", "时")  # "去年夏天的海滩", "2024年6月拍的"


def split_words(words: Sequence[str], now: datetime | None = None) -> list[str | DatePhrase]:
    """Free-text words with the date phrases among them picked out (longest phrase first); every other
    word comes back unchanged, in order. Chinese phrases are found inside words too ("去年夏天的海滩")."""
    today = (now or now_wall_clock()).date()
    found: list[str | DatePhrase] = []
    i = 0
    while i < len(words):
        for j in range(min(len(words), i + MAX_PHRASE_WORDS), i, -1):
            phrase = " ".join(words[i:j])
            when = _attempt(phrase, today, "free")
            if when is not None:
                found.append(DatePhrase(phrase, when))
                i = j
                break
        else:
            found.extend(_chinese_inside(words[i], today) if _CJK.search(words[i]) else [words[i]])
            i += 1
    return found


def _chinese_inside(word: str, today: date) -> list[str | DatePhrase]:
    """A word with Chinese date phrases inside it, cut into the date phrases and the words around them."""
    pieces: list[str | DatePhrase] = []
    rest, start = "", 0
    while start < len(word):
        for end in range(min(len(word), start + 16), start + 1, -1):
            when = _attempt(word[start:end], today, "free")
            if when is not None:
                for particle in _CN_BEFORE:
                    if rest.endswith(particle):
                        rest = rest[: -len(particle)]
                        break
                if rest:
                    pieces.append(rest)
                pieces.append(DatePhrase(word[start:end], when))
                rest, start = "", end
                for particle in _CN_AFTER:
                    if word.startswith(particle, start):
                        start += len(particle)
                        break
                break
        else:
            rest += word[start]
            start += 1
    if rest:
        pieces.append(rest)
    return pieces
