"""The access log middleware: one record per request, with the status actually sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopwise.http.server._logsafe import printable
from loopwise.http.server._request_id import _request_id

__all__ = ["access_log_middleware"]

_access_log = logging.getLogger("loopwise.http.access")


def access_log_middleware(
    *,
    logger: logging.Logger | None = None,
    level: int = logging.INFO,
    skip_paths: Collection[str] = (),
) -> Middleware:
    """Log one line per request when it ends: method, path, status, duration.

    The record's message is ``"GET /path 200 1.2ms"`` and its structured fields (``extra``) are
    ``method``, ``path``, ``status``, ``duration_ms``, ``request_id`` and ``remote``. A handler that
    raises is logged with the status it turns into (an aiohttp HTTP exception's, else 500); a
    cancelled one (client gone, server shutting down) with 499. WebSocket and event-stream requests
    are logged when the stream ends. The path is the decoded one, with control characters
    (CR, LF, NUL, ESC, ...) written as escapes such as ``\\n``, so a client cannot forge or
    break log lines; the method is a token that aiohttp's parser has already checked. Costs
    nothing when ``logger`` is not enabled for ``level``. Default logger:
    ``loopwise.http.access``.
    """
    log = logger or _access_log
    skip = frozenset(skip_paths)

    @web.middleware
    async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not log.isEnabledFor(level) or request.path in skip:
            return await handler(request)
        start = perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499
            raise
        finally:
            _log_access(log, level, request, status, start)

    return access_log


def _log_access(
    log: logging.Logger, level: int, request: web.Request, status: int, start: float
) -> None:
    duration_ms = (perf_counter() - start) * 1000.0
    path = request.path  # decoded: a client can put any character in it
    if not path.isprintable():
        path = printable(path)
    log.log(
        level,
        "%s %s %d %.1fms",
        request.method,
        path,
        status,
        duration_ms,
        extra={
            "method": request.method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "request_id": _request_id.get(),
            "remote": request.remote,
        },
    )
