"""The server middlewares: request id, access log, problem+json errors and a per-request deadline.

Each factory takes keyword-only options and returns a plain aiohttp middleware coroutine
``(request, handler) -> response``. The order that :func:`standard_middlewares` uses (outermost
first) is request id, access log, problem, timeout: the request id is known to everything, the
access log sees the final status of every answer, and a deadline that expires becomes a 503 problem.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import re
from collections.abc import Callable, Collection
from contextvars import ContextVar
from time import perf_counter
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopwise._exceptions import HTTPProblem
from loopwise.http.server._problem import build_problem, status_phrase

__all__ = [
    "REQUEST_ID_KEY",
    "RequestIdFilter",
    "access_log_middleware",
    "current_request_id",
    "prepare_stream",
    "problem_middleware",
    "request_id_middleware",
    "standard_middlewares",
    "timeout_middleware",
]

_T = TypeVar("_T")


def _request_key(name: str, kind: type[_T]) -> web.RequestKey[_T]:
    """A typed request storage key (a plain string on aiohttp before 3.14)."""
    factory = getattr(web, "RequestKey", None)
    key: web.RequestKey[_T] = factory(name, kind) if factory is not None else name  # type: ignore[assignment]
    return key


REQUEST_ID_KEY = _request_key("loopwise.request_id", str)
_REQUEST_ID_HEADER_KEY = _request_key("loopwise.request_id_header", str)

_request_id: ContextVar[str | None] = ContextVar("loopwise_request_id", default=None)
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_MAX_DETAIL = 1000

access_logger = logging.getLogger("loopwise.http.access")
error_logger = logging.getLogger("loopwise.http.server")


def current_request_id() -> str | None:
    """The id of the request being handled by the current task, or ``None`` outside a request.

    Set by :func:`request_id_middleware` for the whole handler (and anything it awaits or starts
    with ``create_task``, which copies the context).
    """
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """A logging filter that gives every record a ``request_id`` attribute.

    The value is the current request's id, or ``"-"`` outside a request; a record that already
    has one (the access log's) keeps it. Attach it to a handler and use ``%(request_id)s``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or "-"
        return True


_DEFAULT_HEADER = "X-Request-ID"
_id_prefix = os.urandom(4).hex()
_id_counter = itertools.count()


def _reseed_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = os.urandom(4).hex(), itertools.count()


os.register_at_fork(after_in_child=_reseed_ids)


def _new_request_id() -> str:
    """16 hex characters: a random per-process prefix and a counter (unique, cheap)."""
    return f"{_id_prefix}{next(_id_counter) & 0xFFFFFFFF:08x}"


def request_id_middleware(
    *,
    header: str = _DEFAULT_HEADER,
    trust_incoming: bool = True,
    generate: Callable[[], str] = _new_request_id,
) -> Middleware:
    """Give every request an id: the client's ``header`` when it is a sane token, else a new one.

    Guarantees: the id is in ``request[REQUEST_ID_KEY]``, in :func:`current_request_id`
    for the handler's duration, and in the response's ``header`` (also on error answers; streaming
    responses get it when started with :func:`prepare_stream`, as the hub and channel do). An
    incoming id longer than 128 characters or with characters outside ``[A-Za-z0-9._:@/+=-]`` is
    replaced, never echoed. With ``trust_incoming=False`` a new id is always made. New ids are 16
    hex characters, unique across processes (a random prefix per process) and cheap to make.
    """

    custom_header = header != _DEFAULT_HEADER

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(header) if trust_incoming else None
        rid = incoming if incoming and _VALID_ID.fullmatch(incoming) else generate()
        request[REQUEST_ID_KEY] = rid
        if custom_header:
            request[_REQUEST_ID_HEADER_KEY] = header
        token = _request_id.set(rid)
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                exc.headers[header] = rid
                raise
            if not response.prepared:
                response.headers[header] = rid
            return response
        finally:
            _request_id.reset(token)

    return request_id


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
    are logged when the stream ends. Costs nothing when ``logger`` is not enabled for ``level``.
    Default logger: ``loopwise.http.access``.
    """
    log = logger or access_logger
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
            duration_ms = (perf_counter() - start) * 1000.0
            log.log(
                level,
                "%s %s %d %.1fms",
                request.method,
                request.path,
                status,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "request_id": request.get(REQUEST_ID_KEY),
                    "remote": request.remote,
                },
            )

    return access_log


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

    Every problem has ``instance`` (the request path) and ``request_id`` when one is known.
    Cancellation and connection errors are re-raised untouched; an error after a streaming response
    has started is logged and re-raised (a second response cannot be sent).
    """
    log = logger or error_logger

    @web.middleware
    async def problem(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except HTTPProblem as exc:
            return build_problem(
                exc.status,
                exc.title,
                exc.detail,
                exc.type,
                request.path,
                exc.headers,
                {**exc.extensions, **_request_id_member(request)},
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() not in _DROPPED_HEADERS}
            return build_problem(
                exc.status,
                exc.reason or status_phrase(exc.status),
                _detail_of(exc),
                "about:blank",
                request.path,
                headers,
                _request_id_member(request),
            )
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            rid = request.get(REQUEST_ID_KEY)
            log.exception(
                "unhandled error in %s %s (request id %s)",
                request.method,
                request.path,
                rid or "-",
                extra={"request_id": rid, "method": request.method, "path": request.path},
            )
            if request.writer is not None and request.writer.output_size > 0:
                raise
            return build_problem(
                500, None, None, "about:blank", request.path, None, _request_id_member(request)
            )

    return problem


def _request_id_member(request: web.Request) -> dict[str, object]:
    rid = request.get(REQUEST_ID_KEY)
    return {"request_id": rid} if rid else {}


class _Guard:
    """One request's deadline: cancels the handler's task when its bucket fires."""

    __slots__ = ("bucket", "expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.expired = False
        self.bucket: set[_Guard] | None = None

    def expire(self) -> None:
        self.bucket = None
        self.expired = True
        self.task.cancel()

    def lift(self) -> None:
        if self.bucket is not None:
            self.bucket.discard(self)
            self.bucket = None


_DEADLINE_KEY = _request_key("loopwise.deadline", _Guard)


class _Deadlines:
    """Deadlines grouped in ``tick``-wide buckets: one timer per bucket, not per request."""

    __slots__ = ("_buckets", "_loop", "seconds", "tick")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(seconds / 20, 0.25)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buckets: dict[int, set[_Guard]] = {}

    def add(self, guard: _Guard) -> None:
        loop = guard.task.get_loop()
        if loop is not self._loop:  # a middleware reused with a new event loop
            self._loop, self._buckets = loop, {}
        slot = math.ceil((loop.time() + self.seconds) / self.tick)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            loop.call_at(slot * self.tick, self._fire, slot)
        bucket.add(guard)
        guard.bucket = bucket

    def _fire(self, slot: int) -> None:
        for guard in tuple(self._buckets.pop(slot, ())):
            guard.expire()


def timeout_middleware(seconds: float) -> Middleware:
    """Give each handler ``seconds`` to produce its response, else answer 503.

    The deadline covers the handler until it returns a response or starts a stream with
    :func:`prepare_stream` (``WebSocketHub`` and ``EventChannel`` do): streams are never cut
    by it. When it expires (between ``seconds`` and
    ``seconds`` + min(``seconds``/20, 0.25 s) after the request started) the handler is cancelled
    (its ``finally`` blocks run) and a 503 with ``Retry-After: 1`` is raised, which
    ``problem_middleware`` serves as a problem. A ``TimeoutError`` the handler raises itself is
    not mistaken for the deadline, and a cancellation from elsewhere (shutdown) stays one.
    Costs one timer per time bucket, not one per request.
    """
    if not seconds > 0:
        raise ValueError(f"timeout_middleware needs seconds > 0, got {seconds!r}")
    detail = f"the server did not answer within {seconds:g} s; retry later"
    deadlines = _Deadlines(seconds)

    @web.middleware
    async def timeout(request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp always runs handlers in a task
            return await handler(request)
        guard = _Guard(task)
        deadlines.add(guard)
        request[_DEADLINE_KEY] = guard
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if guard.expired:
                guard.expired = False
                if task.uncancel() == 0:
                    headers = {"Retry-After": "1"}
                    raise web.HTTPServiceUnavailable(text=detail, headers=headers) from None
            raise
        finally:
            guard.lift()  # the guard stays in the request, inert
            if guard.expired:  # expired, but the handler swallowed the cancellation
                task.uncancel()

    return timeout


def lift_deadline(request: web.BaseRequest) -> None:
    """Remove the timeout middleware's deadline from this request (a stream is starting)."""
    guard = request.pop(_DEADLINE_KEY, None)
    if guard is not None:
        guard.lift()


async def prepare_stream(request: web.Request, response: web.StreamResponse) -> None:
    """Start a streaming response (``StreamResponse``, ``WebSocketResponse``) the loopwise way.

    Use it instead of ``await response.prepare(request)`` in your own streaming handlers: the
    response gets the request id header, and ``timeout_middleware``'s deadline stops applying to
    this request (a stream is not a slow answer). ``WebSocketHub`` and ``EventChannel`` do this.
    """
    rid = request.get(REQUEST_ID_KEY)
    if rid is not None:
        response.headers.setdefault(request.get(_REQUEST_ID_HEADER_KEY, _DEFAULT_HEADER), rid)
    lift_deadline(request)
    await response.prepare(request)


def standard_middlewares(*, timeout: float | None = 30.0) -> list[Middleware]:
    """The stack ``create_app`` uses by default: request id, access log, problem, timeout.

    ``timeout=None`` leaves the timeout middleware out.
    """
    stack = [request_id_middleware(), access_log_middleware(), problem_middleware()]
    if timeout is not None:
        stack.append(timeout_middleware(timeout))
    return stack
