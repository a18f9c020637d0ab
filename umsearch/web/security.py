"""The gallery's gate: every request must come to the right host, carry this start's token, and (when it would
change anything) come from the gallery's own page.

A local web server is reachable by every web page the user opens, so:

* Host must name the address and port we listen on (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, or the
  `--host` given with `--allow-remote`): a DNS-rebinding page (evil.example resolving to 127.0.0.1) sends its
  own name and is refused.
* A random token, new at every start, is printed in the URL. The first request that carries it gets it back
  as an HttpOnly, SameSite=Strict cookie and is redirected to the same page without it (so it leaves the
  address bar and the history); every later request must carry the cookie. The cookie's name includes the
  port because browsers share cookies between the ports of one host.
* Requests other than GET/HEAD must carry an Origin equal to our own (another local page on another port is
  same-site for cookies, but never same-origin).
* Every response says: no sniffing, no framing, no referrer, no cross-origin embedding, and the page may run
  only its own script (Content-Security-Policy).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
PAGES = ("/", "/dupes", "/status")  # where a token URL may land (never a path taken from the request)
SAFE_METHODS = ("GET", "HEAD")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values that name this server: the loopback names, and the chosen host itself."""
    names = set(LOOPBACK_NAMES)
    names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return frozenset(f"{name}:{port}".lower() for name in names if name not in ("0.0.0.0", "[::]"))


def cookie_name(port: int) -> str:
    return f"umsearch-{port}"


class Guard:
    """ASGI middleware enforcing the rules of the module docstring before the app sees a request."""

    def __init__(self, app: ASGIApp, *, token: str, host: str, port: int) -> None:
        if len(token) < 16:
            raise ValueError("the gallery's token must be long and random")
        self.app = app
        self.token = token
        self.hosts = allowed_hosts(host, port)
        self.cookie = cookie_name(port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await _refuse(send, 403, "not served here")  # no websockets
            return
        headers = _headers(scope)
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            await _refuse(send, 421, "this gallery answers only at the address umsearch printed")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [value for key, value in query if key == "token"]
        if given:
            if len(given) == 1 and self._matches(given[0]) and scope["method"] in SAFE_METHODS:
                await self._welcome(scope, query, send)
            else:
                await _refuse(send, 403, "wrong token: open the URL that 'umsearch web' printed")
            return
        if not self._matches(_cookie(headers, self.cookie)):
            await _refuse(send, 403, "no valid token: open the URL that 'umsearch web' printed")
            return
        if scope["method"] not in SAFE_METHODS and headers.get("origin", "").lower() not in {
            f"http://{h}" for h in self.hosts
        }:
            await _refuse(send, 403, "refused: this request did not come from the gallery's own page")
            return
        if headers.get("sec-fetch-site") == "cross-site":
            await _refuse(send, 403, "refused: a request from another site")
            return
        await self.app(scope, receive, _with_security_headers(send))

    def _matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode("utf-8", "replace"), self.token.encode())

    async def _welcome(self, scope: Scope, query: list[tuple[str, str]], send: Send) -> None:
        """Trade the URL's token for the cookie, and go to the same page without the token in the address."""
        path = scope["path"] if scope["path"] in PAGES else "/"
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        location = path + ("?" + rest if rest else "")
        cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("ascii", "replace")),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        name = key.decode("latin-1").lower()
        if name in found and name != "cookie":
            found[name] = "\x00duplicate"  # two Host or Origin headers: matches nothing
        else:
            text = value.decode("latin-1")
            found[name] = f"{found[name]}; {text}" if name in found else text
    return found


def _cookie(headers: dict[str, str], name: str) -> str | None:
    # Split by hand: other local servers set cookies on this host too, and one odd cookie of theirs makes
    # http.cookies give up on the whole header.
    for part in headers.get("cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {key.lower() for key, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = (reason + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
