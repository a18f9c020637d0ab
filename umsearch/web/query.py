"""What the gallery's search box and filter controls ask for, as a SearchRequest the session can answer.

The box takes the one-line search language (querylang), parsed here on the server so the page and the CLI
understand the same words. Images in a web query are never paths taken from the request: `like:PATH` must
name a photo in the index (it becomes that photo's id), "more like this" sends an id, and an image the user
dropped or pasted is an upload kept in the gallery's private folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import UmsearchError
from ..filters import Filters, build_filters
from ..querylang import SearchRequest, Term, parse_search_text

if TYPE_CHECKING:
    from ..session import Session


@dataclass(frozen=True)
class WebQuery:
    """The parameters of /api/search (offset and limit aside): hashable, so pages of one query share a cache."""

    text: str = ""
    like: int | None = None  # an indexed photo's id: "more like this"
    upload: str | None = None  # an uploaded image's handle (dropped or pasted)
    after: str | None = None
    before: str | None = None
    folders: tuple[str, ...] = ()
    types: str | None = None
    camera: str | None = None
    place: str | None = None

    def is_browse(self) -> bool:
        """Nothing to look for and nothing to narrow by: the newest photos."""
        return not self.text.strip() and self.like is None and self.upload is None and not self.has_filters()

    def has_filters(self) -> bool:
        return bool(self.after or self.before or self.folders or self.types or self.camera or self.place)


def to_request(session: Session, query: WebQuery, upload_path: str | None) -> SearchRequest:
    """The search language parsed, image terms turned into indexed photos, the controls' filters added."""
    request = parse_search_text(query.text) if query.text.strip() else SearchRequest()
    positives = [_indexed_term(session, term) for term in request.positives]
    negatives = [_indexed_term(session, term) for term in request.negatives]
    controls = build_filters(
        folders=list(query.folders) or None,
        after=query.after,
        before=query.before,
        types=query.types,
        camera=query.camera,
        place=query.place,
    )
    filters = request.filters.merged(controls)
    image_term: Term | None = None
    if query.like is not None:
        row = session.photo(query.like)
        if row is None or row.status != "ok":
            raise UmsearchError("that photo is no longer in the index")
        image_term = Term(photo_id=row.id)
        filters = filters.merged(Filters(exclude_ids=frozenset({row.id})))  # not itself, first with 1.0
    elif upload_path is not None:
        image_term = Term(image=upload_path)
    if image_term is not None:
        # The typed words refine the picture: one fused input, "this photo, but at night".
        if positives and positives[0].image is None and positives[0].photo_id is None:
            first = positives[0]
            positives[0] = replace(image_term, text=first.text, weight=first.weight)
        else:
            positives.insert(0, image_term)
    return replace(request, positives=tuple(positives), negatives=tuple(negatives), filters=filters)


def _indexed_term(session: Session, term: Term) -> Term:
    if term.image is None:
        return term
    file_id = session.photo_id(term.image)
    row = session.photo(file_id) if file_id is not None else None
    if row is None or row.status != "ok":
        raise UmsearchError(
            "like: in the gallery names a photo in the index (use “more like this”, or drop or paste any other image)"
        )
    return Term(text=term.text, weight=term.weight, photo_id=row.id)
