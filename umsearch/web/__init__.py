"""The web gallery (issue 12): search and browse the index in a browser, served on a loopback address.

`build_app(session, token=..., host=..., port=...)` returns the gallery's ASGI app (Starlette); the resident
service serves it, and `umsearch web` asks for it. Starlette is imported only when the app is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..session import Session
    from .security import ASGIApp


def build_app(session: Session, *, token: str, host: str, port: int) -> ASGIApp:
    from .app import build_app as build

    return build(session, token=token, host=host, port=port)
