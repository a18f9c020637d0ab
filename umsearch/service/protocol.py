"""The wire form of the service: JSON bodies that carry `SearchQuery`, `SearchResult` and `Hit` exactly.

Floats travel as Python writes them (the shortest text that reads back as the same double), so a score or a
weight is bit-for-bit the same on both sides. Paths travel as JSON strings; a file name that is not valid
UTF-8 (kept by Python as lone surrogates) travels as `\\udcXX` escapes and reads back unchanged.

Decoding checks every field's type: a request that does not fit is a `ProtocolError` (HTTP 400), never a
crash. Standard library only: the light client imports this.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import UmsearchError
from ..filters import Filters
from ..kinds import KINDS
from ..querylang import SORTS, SearchRequest, Term
from ..search import Hit
from ..session import SearchQuery, SearchResult
from ..settings import MAX_LIMIT

PROTOCOL = 1  # bumped when a request or response changes shape
API = "/v1"
MAX_BODY = 1 << 20  # a query is a few hundred bytes; anything near this is not one
SERVICE_NAME = "umsearch"


class ProtocolError(UmsearchError):
    """A request whose body is not what the endpoint takes."""


# ---- bytes <-> JSON --------------------------------------------------------------------------------
def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def loads(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the request body is not JSON ({exc})") from None


# ---- field checks ----------------------------------------------------------------------------------
def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _known(data: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ProtocolError(f"{what} has unknown field(s): {', '.join(unknown)}")


def _str(data: dict[str, Any], name: str, *, optional: bool = True) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"'{name}' must be a string")
    return value


def _int(data: dict[str, Any], name: str, *, optional: bool = True, low: int | None = None) -> int | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"'{name}' must be an integer")
    if low is not None and value < low:
        raise ProtocolError(f"'{name}' must be at least {low}")
    return value


def _float(data: dict[str, Any], name: str, *, optional: bool = True) -> float | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ProtocolError(f"'{name}' must be a finite number")
    return float(value)


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise ProtocolError(f"'{name}' must be a list")
    return value


def _strings(data: dict[str, Any], name: str) -> tuple[str, ...]:
    values = _list(data, name)
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"'{name}' must be a list of strings")
    return tuple(values)


# ---- queries ---------------------------------------------------------------------------------------
def encode_term(term: Term) -> dict[str, Any]:
    return {"text": term.text, "image": term.image, "weight": term.weight, "photo_id": term.photo_id}


def decode_term(value: Any) -> Term:
    data = _object(value, "a term")
    _known(data, ("text", "image", "weight", "photo_id"), "a term")
    weight = _float(data, "weight")
    return Term(
        text=_str(data, "text"),
        image=_str(data, "image"),
        weight=1.0 if weight is None else weight,
        photo_id=_int(data, "photo_id"),
    )


def encode_filters(filters: Filters) -> dict[str, Any]:
    return {
        "folders": list(filters.folders),
        "after": filters.after,
        "before": filters.before,
        "types": list(filters.types),
        "camera": filters.camera,
        "place": filters.place,
        "kinds": list(filters.kinds),
        "exclude_ids": sorted(filters.exclude_ids),
    }


def decode_filters(value: Any) -> Filters:
    data = _object(value, "filters")
    _known(data, ("folders", "after", "before", "types", "camera", "place", "kinds", "exclude_ids"), "filters")
    excluded = _list(data, "exclude_ids")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in excluded):
        raise ProtocolError("'exclude_ids' must be a list of integers")
    kinds = _strings(data, "kinds")
    if any(kind not in KINDS for kind in kinds):
        raise ProtocolError(f"'kinds' must name only {', '.join(KINDS)}")
    return Filters(
        folders=_strings(data, "folders"),
        after=_int(data, "after"),
        before=_int(data, "before"),
        types=_strings(data, "types"),
        camera=_str(data, "camera"),
        place=_str(data, "place"),
        kinds=kinds,
        exclude_ids=frozenset(excluded),
    )


def encode_request(request: SearchRequest) -> dict[str, Any]:
    return {
        "positives": [encode_term(t) for t in request.positives],
        "negatives": [encode_term(t) for t in request.negatives],
        "filters": encode_filters(request.filters),
        "min_score": request.min_score,
        "sort": request.sort,
        "limit": request.limit,
    }


def decode_request(value: Any) -> SearchRequest:
    data = _object(value, "a search request")
    _known(data, ("positives", "negatives", "filters", "min_score", "sort", "limit"), "a search request")
    sort = _str(data, "sort") or "score"
    if sort not in SORTS:
        raise ProtocolError(f"'sort' must be one of {', '.join(SORTS)}")
    return SearchRequest(
        positives=tuple(decode_term(t) for t in _list(data, "positives")),
        negatives=tuple(decode_term(t) for t in _list(data, "negatives")),
        filters=decode_filters(data.get("filters", {})),
        min_score=_float(data, "min_score"),
        sort=sort,
        limit=_int(data, "limit", low=1),
    )


def encode_query(query: SearchQuery) -> dict[str, Any]:
    return {
        "request": encode_request(query.request),
        "limit": query.limit,
        "offset": query.offset,
        "instruction": query.instruction,
        "rerank": query.rerank,
    }


def decode_query(value: Any) -> SearchQuery:
    data = _object(value, "a query")
    _known(data, ("request", "limit", "offset", "instruction", "rerank"), "a query")
    limit = _int(data, "limit", optional=False, low=1)
    if limit > MAX_LIMIT:  # type: ignore[operator]
        raise ProtocolError(f"'limit' must be at most {MAX_LIMIT}")
    return SearchQuery(
        request=decode_request(data.get("request", {})),
        limit=limit,  # type: ignore[arg-type]
        offset=_int(data, "offset", low=0) or 0,
        instruction=_str(data, "instruction"),
        rerank=_rerank(data),
    )


def _rerank(data: dict[str, Any]) -> int | None:
    top = _int(data, "rerank", low=1)
    if top is not None and top > MAX_LIMIT:
        raise ProtocolError(f"'rerank' must be at most {MAX_LIMIT}")
    return top


# ---- results ---------------------------------------------------------------------------------------
def encode_hit(hit: Hit) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "score": None if hit.score is None else float(hit.score),
        "path": hit.path,
        "file_id": hit.file_id,
        "taken": hit.taken,
        "camera": hit.camera,
        "place": hit.place,
        "kind": hit.kind,
        "time": hit.time,
        "page": hit.page,
        "rerank": hit.rerank,
    }


def decode_hit(value: Any) -> Hit:
    data = _object(value, "a hit")
    return Hit(
        rank=_int(data, "rank", optional=False),  # type: ignore[arg-type]
        score=_float(data, "score"),
        path=_str(data, "path", optional=False),  # type: ignore[arg-type]
        file_id=_int(data, "file_id", optional=False),  # type: ignore[arg-type]
        taken=_int(data, "taken"),
        camera=_str(data, "camera"),
        place=_str(data, "place"),
        kind=_str(data, "kind") or "photo",
        time=_float(data, "time"),
        page=_int(data, "page", low=1),
        rerank=_float(data, "rerank"),
    )


def encode_result(result: SearchResult) -> dict[str, Any]:
    return {"hits": [encode_hit(h) for h in result.hits], "searched": result.searched, "notice": result.notice}


def decode_result(value: Any) -> SearchResult:
    data = _object(value, "a search result")
    return SearchResult(
        hits=[decode_hit(h) for h in _list(data, "hits")],
        searched=_int(data, "searched", optional=False),  # type: ignore[arg-type]
        notice=_str(data, "notice"),
    )


# ---- other requests --------------------------------------------------------------------------------
def decode_similar(value: Any) -> tuple[str, SearchQuery]:
    """`{"photo": PATH, "query": QUERY}`: photos like PATH, narrowed by the query's filters."""
    data = _object(value, "a similar request")
    _known(data, ("photo", "query"), "a similar request")
    photo = _str(data, "photo", optional=False)
    return photo, decode_query(data.get("query"))  # type: ignore[return-value]


def decode_embed(value: Any) -> tuple[str | None, str | None, str | None]:
    data = _object(value, "an embed request")
    _known(data, ("text", "image", "instruction"), "an embed request")
    return _str(data, "text"), _str(data, "image"), _str(data, "instruction")


def error_body(kind: str, message: str) -> dict[str, Any]:
    """Every failure answers `{"error": {"kind", "message"}}`; `message` is one line for the user."""
    return {"error": {"kind": kind, "message": " ".join(message.split())}}
