"""A cross-site guard: only the origins you name may open streams or change state."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from loopwise._exceptions import HTTPProblem

__all__ = ["origin_middleware"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _normalise(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a trailing slash."""
    text = origin.strip().rstrip("/").lower()
    scheme, sep, rest = text.partition("://")
    if sep and ":" in rest and not rest.endswith("]"):
        host, _, port = rest.rpartition(":")
        if _DEFAULT_PORTS.get(scheme) == port:
            rest = host
    return f"{scheme}{sep}{rest}"


def _check(origin: str) -> str:
    normal = _normalise(origin)
    scheme, sep, rest = normal.partition("://")
    if normal == "null" or (sep and scheme in _DEFAULT_PORTS and rest and "/" not in rest):
        return normal
    raise ValueError(
        f"allowed origin {origin!r} is not an origin: write scheme://host[:port], "
        "e.g. 'https://example.com' or 'http://127.0.0.1:8080'"
    )


def origin_middleware(*, allowed_origins: Iterable[str]) -> Middleware:
    """Refuse cross-site WebSocket upgrades, event streams and state-changing requests.

    A request that carries an ``Origin`` header (browsers send it on every WebSocket upgrade,
    ``EventSource`` and cross-origin or non-GET ``fetch``/form submission) and is a WebSocket
    upgrade (any ``Upgrade`` header), asks for ``text/event-stream`` (in any case), or uses a
    method other than GET, HEAD or OPTIONS, is answered 403 (a problem, with
    ``problem_middleware`` outside it) unless its origin is in ``allowed_origins``. Origins
    compare without case, default ports or a trailing slash; ``"null"`` (sandboxed frames,
    local files) is refused unless listed. Requests without an ``Origin`` header (non-browser
    clients, same-origin GETs) and other GETs pass: they are not cross-site forgeries. There is
    no implicit "same origin as the Host header", which a DNS rebinding attack would satisfy:
    list every origin your pages are served from.
    """
    allowed = frozenset(_check(origin) for origin in allowed_origins)

    @web.middleware
    async def origin_check(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and _normalise(origin) not in allowed and _guarded(request):
            shown = origin if len(origin) <= 100 else origin[:100] + "…"
            raise HTTPProblem(
                403,
                detail=f"requests from origin {shown!r} are not allowed here: "
                "the server lists the origins it accepts (allowed_origins)",
            )
        return await handler(request)

    return origin_check


def _guarded(request: web.Request) -> bool:
    if request.method not in _SAFE_METHODS:
        return True
    headers = request.headers
    # Any protocol upgrade: aiohttp accepts a WebSocket handshake whose value differs from
    # "websocket" by case and by any Unicode space around it, and browsers send no other.
    if hdrs.UPGRADE in headers:
        return True
    return "text/event-stream" in headers.get(hdrs.ACCEPT, "").lower()
