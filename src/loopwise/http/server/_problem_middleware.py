"""The problem middleware: every error answer becomes application/problem+json (RFC 9457)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopwise._exceptions import HTTPProblem
from loopwise.http.server._logsafe import printable
from loopwise.http.server._problem import build_problem, status_phrase
from loopwise.http.server._request_id import _request_id, _request_id_member
from loopwise.http.server._vetting import _log_fault, _unsendable_header, needs_vetting, vet

__all__ = ["problem_middleware"]

_MAX_DETAIL = 1000
_error_log = logging.getLogger("loopwise.http.server")


def _detail_of(exc: web.HTTPException) -> str | None:
    """The text a developer put in an aiohttp HTTP exception, if it is not the default."""
    text = exc.text
    if not text or exc.content_type != "text/plain" or text == f"{exc.status}: {exc.reason}":
        return None
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


_DROPPED_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def problem_middleware(*, logger: logging.Logger | None = None) -> Middleware:
    """Turn every error answer into ``application/problem+json`` (RFC 9457).

    - :class:`~loopwise.HTTPProblem` is served with exactly its status, title, detail, type,
      headers and extension members.
    - aiohttp HTTP exceptions of status 400-599 (the router's 404 and 405, the 413 for a body over
      ``client_max_size``, and any the handler raises) keep their status and headers (``Allow``,
      ``Retry-After``, ...); a custom ``text`` becomes ``detail``. 1xx-3xx exceptions (redirects)
      pass through unchanged.
    - Any other exception is logged with its traceback, the request id, method and path to
      ``logger`` (default ``loopwise.http.server``) and answered with a bare 500 problem: no
      exception text or traceback ever reaches the client.

    - An answer aiohttp could not send as it is becomes a problem too, so the access log outside
      records the status actually sent: a handler result that is not a response (500, logged),
      a header with a control character such as CR or LF, in a returned response or a raised
      ``HTTPProblem`` or aiohttp HTTP exception, redirects included (500, logged, never sent), a
      ``FileResponse`` whose file is missing (404) or not a readable regular file (403).

    Every problem has ``instance`` (the request path) and ``request_id`` when one is known.
    Cancellation and connection errors are re-raised untouched; another ``BaseException`` that is
    not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``, a framework's control flow) is
    logged as an error and re-raised, never swallowed into a 500: aiohttp then closes the
    connection without an answer (the access log says 500); an error after a streaming response
    has started is logged and re-raised (a second response cannot be sent).
    """
    log = logger or _error_log

    @web.middleware
    async def problem(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except Exception as exc:
            problem = _problem_for(request, exc, log)
            if problem is None:
                raise
            return problem
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as exc:
            _log_passing(request, exc, log)
            raise
        if needs_vetting(response):
            return await _vetted(request, response, log)
        return response

    return problem


async def _vetted(
    request: web.Request, response: web.StreamResponse, log: logging.Logger
) -> web.StreamResponse:
    """``response``, or the problem to send instead when aiohttp could not send it as it is."""
    status = await vet(request, response, log, _request_id.get())
    if status is None:
        return response
    return build_problem(
        status, None, None, "about:blank", request.path, None, _request_id_member()
    )


def _log_passing(request: web.Request, exc: BaseException, log: logging.Logger) -> None:
    """Log a BaseException (KeyboardInterrupt, SystemExit, ...) that leaves unanswered."""
    rid = _request_id.get()
    path = printable(request.path)
    log.error(
        "%s %s (request id %s) raised %s, which is not an Exception: no answer is sent, "
        "it propagates",
        request.method,
        path,
        rid or "-",
        type(exc).__name__,
        exc_info=exc,
        extra={"request_id": rid, "method": request.method, "path": path},
    )


def _problem_for(request: web.Request, exc: Exception, log: logging.Logger) -> web.Response | None:
    """The problem answer for ``exc`` raised by the handler, or None when it must propagate."""
    if isinstance(exc, (HTTPProblem, web.HTTPException)):
        bad = _unsendable_header(exc.headers)
        if bad is not None:
            # aiohttp would drop the connection while sending it
            _log_fault(
                log,
                request,
                _request_id.get(),
                f"raised {type(exc).__name__} with header {bad} holding a control character "
                "(CR, LF, ...), which would allow header injection: answered 500 instead",
            )
            return build_problem(
                500, None, None, "about:blank", request.path, None, _request_id_member()
            )
    if isinstance(exc, HTTPProblem):
        return build_problem(
            exc.status,
            exc.title,
            exc.detail,
            exc.type,
            request.path,
            exc.headers,
            {**exc.extensions, **_request_id_member()},
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _DROPPED_HEADERS}
        return build_problem(
            exc.status,
            exc.reason or status_phrase(exc.status),
            _detail_of(exc),
            "about:blank",
            request.path,
            headers,
            _request_id_member(),
        )
    if isinstance(exc, ConnectionError):
        return None
    rid = _request_id.get()
    path = printable(request.path)
    log.error(
        "unhandled error in %s %s (request id %s)",
        request.method,
        path,
        rid or "-",
        exc_info=exc,
        extra={"request_id": rid, "method": request.method, "path": path},
    )
    if request.writer is not None and request.writer.output_size > 0:
        return None
    return build_problem(500, None, None, "about:blank", request.path, None, _request_id_member())
