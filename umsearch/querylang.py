"""A one-line search language, for the TUI's search box and the CLI's query text.

    beach after:2025-06 before:2025-09 place:Portugal -people
    "red car"^2 + sunset^0.5 -"night" type:jpg,png in:~/Photos/2024 sort:date
    like:~/Photos/cat.jpg -like:~/Photos/dog.jpg min:0.3

* Plain words form one positive term ("red car" and `red car` are the same term); ` + ` starts another.
* `^W` after a word or a quoted phrase gives its term the weight W (default 1; negatives default 0.5).
* `-word`, `-"a phrase"`, `-like:PATH` are negative terms: results move away from them.
* `like:PATH` is an image term. Filters: `in:`, `after:`, `before:`, `type:`, `camera:`, `place:`, `kind:`;
  `min:` (lowest score), `sort:score|date`, `limit:N`. Quote values with spaces: `place:"New York"`.
* Anything else, including unknown `key:value` words, is ordinary text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import UmsearchError
from .filters import Filters, folder_filter, parse_date, parse_kinds, parse_types

NEGATIVE_WEIGHT = 0.5
SORTS = ("score", "date")
_KEYS = ("in", "after", "before", "type", "camera", "place", "kind", "min", "sort", "limit", "like")
_WEIGHT = re.compile(r"^(.*?)\^(\d+(?:\.\d*)?|\.\d+)$", re.S)


@dataclass(frozen=True)
class Term:
    """One thing to look for (or away from): words, an image, or both fused into one GME input."""

    text: str | None = None
    image: str | None = None  # an image file's path
    weight: float = 1.0
    photo_id: int | None = None  # an indexed photo: its stored vector alone, or its file fused with the text


@dataclass(frozen=True)
class SearchRequest:
    positives: tuple[Term, ...] = ()
    negatives: tuple[Term, ...] = ()
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None
    sort: str = "score"
    limit: int | None = None

    def is_empty(self) -> bool:
        return not self.positives and not self.negatives


def parse_search_text(text: str) -> SearchRequest:
    """Parse one line of the search language (see the module docstring); raises UmsearchError on bad values."""
    positives: list[Term] = []
    negatives: list[Term] = []
    words: list[str] = []
    weight = 1.0
    filters: dict = {"folders": []}
    request: dict = {}

    def close_term() -> None:
        nonlocal words, weight
        if words:
            positives.append(Term(text=" ".join(words), weight=weight))
        words, weight = [], 1.0

    for negative, key, value, quoted, token_weight in _tokens(text):
        if key is None and value == "+" and not quoted and not negative:
            close_term()
            continue
        if key == "like":
            if not negative:
                close_term()  # keep terms in the order they were written
            term = Term(image=folder_filter(value), weight=_weight(token_weight, negative))
            (negatives if negative else positives).append(term)
        elif key is not None and not negative:
            _apply_key(key, value, filters, request)
        elif negative:
            shown = f"{key}:{value}" if key else value
            negatives.append(Term(text=shown, weight=_weight(token_weight, True)))
        else:
            words.append(value)
            if token_weight is not None:
                weight = token_weight
    close_term()
    folders = filters.pop("folders")
    return SearchRequest(
        positives=tuple(positives),
        negatives=tuple(negatives),
        filters=replace(Filters(**filters), folders=tuple(folders)),
        **request,
    )


def _weight(given: float | None, negative: bool) -> float:
    return given if given is not None else (NEGATIVE_WEIGHT if negative else 1.0)


def _apply_key(key: str, value: str, filters: dict, request: dict) -> None:
    if key == "in":
        filters["folders"].append(folder_filter(value))
    elif key == "after":
        filters["after"] = parse_date(value)
    elif key == "before":
        filters["before"] = parse_date(value)
    elif key == "type":
        filters["types"] = parse_types(value)
    elif key in ("camera", "place"):
        filters[key] = value
    elif key == "kind":
        filters["kinds"] = parse_kinds(value)
    elif key == "min":
        request["min_score"] = _number(key, value, float)
    elif key == "limit":
        request["limit"] = max(1, int(_number(key, value, int)))
    elif key == "sort":
        if value not in SORTS:
            raise UmsearchError(f"sort:{value}: use sort:score or sort:date")
        request["sort"] = value


def _number(key: str, value: str, kind: type) -> float:
    try:
        return kind(value)
    except ValueError:
        raise UmsearchError(f"{key}:{value}: not a number") from None


def _tokens(text: str):
    """(negative, key, value, quoted, weight) for each token; unbalanced quotes run to the end of the line."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        # "-word" excludes a word; "--x" (or a lone "-") is plain text, so option-like words stay searchable.
        negative = text[i] == "-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] != "-"
        if negative:
            i += 1
        key = None
        match = re.match(r"([A-Za-z]+):(?=\S)", text[i:])
        if match and match[1].lower() in _KEYS:
            key = match[1].lower()
            i += match.end()
        value, quoted, i = _value(text, i)
        weight = None
        if quoted and text.startswith("^", i):
            number = re.match(r"\^(\d+(?:\.\d*)?|\.\d+)", text[i:])
            if number:
                weight, i = float(number[1]), i + number.end()
        elif not quoted and key is None:
            found = _WEIGHT.match(value)
            if found and found[1]:
                value, weight = found[1], float(found[2])
        if value or quoted:
            yield negative, key, value, quoted, weight


def _value(text: str, i: int) -> tuple[str, bool, int]:
    if i < len(text) and text[i] == '"':
        end = text.find('"', i + 1)
        end = len(text) if end < 0 else end
        return text[i + 1 : end], True, end + 1
    end = i
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[i:end], False, end


def parse_term(text: str, *, negative: bool = False) -> Term:
    """A command-line term, `TEXT` or `TEXT^W` (the same weight syntax as the search language)."""
    found = _WEIGHT.match(text.strip())
    if found and found[1].strip():
        return Term(text=found[1].strip(), weight=float(found[2]))
    return Term(text=text.strip(), weight=_weight(None, negative))


def request_from_cli(
    text: str | None,
    *,
    literal: bool = False,
    image: str | None = None,
    also: list[str] | None = None,
    avoid: list[str] | None = None,
    avoid_images: list[str] | None = None,
    filters: Filters | None = None,
    min_score: float | None = None,
    sort: str | None = None,
) -> SearchRequest:
    """`umsearch query`'s arguments as one request: TEXT in the search language (unless literal), with
    --image fused into TEXT's first term (one GME input of both), and the flags added on top."""
    base = (
        SearchRequest()
        if not text or not text.strip()
        else (SearchRequest(positives=(Term(text=text),)) if literal else parse_search_text(text))
    )
    positives = list(base.positives)
    if image:
        if positives and positives[0].image is None:
            positives[0] = replace(positives[0], image=image)
        else:
            positives.insert(0, Term(image=image))
    positives += [parse_term(t) for t in also or ()]
    negatives = list(base.negatives) + [parse_term(t, negative=True) for t in avoid or ()]
    negatives += [Term(image=p, weight=NEGATIVE_WEIGHT) for p in avoid_images or ()]
    if sort is not None and sort not in SORTS:
        raise UmsearchError(f"--sort {sort}: use score or date")
    return SearchRequest(
        positives=tuple(positives),
        negatives=tuple(negatives),
        filters=base.filters.merged(filters) if filters else base.filters,
        min_score=min_score if min_score is not None else base.min_score,
        sort=sort or base.sort,
        limit=base.limit,
    )
