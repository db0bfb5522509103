"""The server middlewares: request id, access log, problem+json errors and a per-request deadline.

Each factory takes keyword-only options and returns a plain aiohttp middleware coroutine
``(request, handler) -> response``. The order that :func:`standard_middlewares` uses (outermost
first) is request id, access log, problem, timeout: the request id is known to everything, the
access log sees the final status of every answer, and a deadline that expires becomes a 503 problem.
:func:`standard_middlewares` does all four in one middleware (one coroutine frame per request
instead of four), with exactly the behaviour of the four stacked in that order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import weakref
from asyncio import current_task, get_running_loop
from collections.abc import Callable, Collection
from contextvars import ContextVar
from time import perf_counter
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict, istr

from loopwise._exceptions import HTTPProblem
from loopwise.http.server._logsafe import printable
from loopwise.http.server._problem import build_problem, status_phrase
from loopwise.http.server._vetting import _sendable, needs_vetting, vet

__all__ = [
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


_REQUEST_ID_HEADER_KEY = _request_key("loopwise.request_id_header", str)

_request_id: ContextVar[str | None] = ContextVar("loopwise_request_id", default=None)
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_MAX_DETAIL = 1000

_access_log = logging.getLogger("loopwise.http.access")
_error_log = logging.getLogger("loopwise.http.server")


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

# New ids are 64-bit numbers in hex: a random per-process prefix (upper 32 bits) plus a counter.
# They are made 256 at a time, each a shared 14-character head plus one of 256 tails: far cheaper
# than formatting a number per request.
_ID_TAILS = [f"{i:02x}" for i in range(255, -1, -1)]  # popped from the end: ascending
_id_batch: list[str] = []


def _id_blocks() -> itertools.count[int]:
    return itertools.count(int.from_bytes(os.urandom(4)) << 24)


_id_block = _id_blocks()


def _reseed_ids() -> None:
    global _id_block
    _id_block = _id_blocks()
    _id_batch.clear()


os.register_at_fork(after_in_child=_reseed_ids)


def _new_request_id() -> str:
    """16 hex characters: a random per-process prefix and a counter (unique, cheap)."""
    try:
        return _id_batch.pop()
    except IndexError:
        head = f"{next(_id_block) & 0xFF_FFFF_FFFF_FFFF:014x}"
        _id_batch.extend([head + tail for tail in _ID_TAILS])
        return _id_batch.pop()


def request_id_middleware(
    *,
    header: str = _DEFAULT_HEADER,
    trust_incoming: bool = True,
    generate: Callable[[], str] = _new_request_id,
) -> Middleware:
    """Give every request an id: the client's ``header`` when it is a sane token, else a new one.

    Guarantees: the id is in :func:`current_request_id` for the handler's duration (and in the
    tasks it starts) and in the response's ``header`` (also on error answers; streaming
    responses get it when started with :func:`prepare_stream`, as the hub and channel do). An
    incoming id longer than 128 characters or with characters outside ``[A-Za-z0-9._:@/+=-]`` is
    replaced, never echoed. With ``trust_incoming=False`` a new id is always made. New ids are 16
    hex characters, unique across processes (a random prefix per process) and cheap to make.
    """

    custom_header = header != _DEFAULT_HEADER
    default_ids = generate is _new_request_id
    header = istr(header)

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(header) if trust_incoming else None
        if incoming and _VALID_ID.fullmatch(incoming):
            rid = incoming
        elif default_ids and _id_batch:
            rid = _id_batch.pop()  # what generate() would do, without the call
        else:
            rid = generate()
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
      a header value with a control character such as CR or LF (500, logged, never sent), a
      ``FileResponse`` whose file is missing (404) or not a readable regular file (403).

    Every problem has ``instance`` (the request path) and ``request_id`` when one is known.
    Cancellation and connection errors are re-raised untouched; an error after a streaming response
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


def _problem_for(request: web.Request, exc: Exception, log: logging.Logger) -> web.Response | None:
    """The problem answer for ``exc`` raised by the handler, or None when it must propagate."""
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


def _request_id_member() -> dict[str, object]:
    rid = _request_id.get()
    return {"request_id": rid} if rid else {}


class _Deadlines:
    """The deadlines of one timeout middleware.

    Every request gets the same ``seconds``, so the requests in flight, kept in arrival order,
    are also in deadline order: one timer, set for the earliest deadline, serves them all, and a
    request costs one dict insert and one removal.
    """

    __slots__ = ("__weakref__", "detail", "expired", "inflight", "loop", "seconds")

    def __init__(self, seconds: float, detail: str) -> None:
        self.seconds = seconds
        self.detail = detail
        # handler task -> perf_counter() when its request arrived, in arrival order
        self.inflight: dict[asyncio.Task[Any], float] = {}
        # tasks cancelled by their deadline whose handlers have not finished yet
        self.expired: set[asyncio.Task[Any]] = set()
        # the loop the timer is set on; None when no timer is set (nothing in flight)
        self.loop: asyncio.AbstractEventLoop | None = None
        _all_deadlines.add(self)

    def enter(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop, now: float) -> None:
        """The request ``task`` handles arrived at ``now`` (``perf_counter()``): start its deadline.

        (``standard_middlewares`` inlines these lines: keep them in step.)
        """
        self.inflight[task] = now
        if self.loop is not loop:
            self.arm(loop)

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the timer on ``loop``; a request was just added and no timer is set there."""
        if self.loop is not None:  # the middleware moved to a new loop: forget the old one's tasks
            for task in [t for t in self.inflight if t.get_loop() is not loop]:
                del self.inflight[task]
            self.expired.difference_update([t for t in self.expired if t.get_loop() is not loop])
        self.loop = loop
        self._schedule(perf_counter())

    def _schedule(self, now: float) -> None:
        assert self.loop is not None
        first = next(iter(self.inflight.values()))
        delay = max(first + self.seconds - now, 0.001)
        self.loop.call_later(delay, self._expire, self.loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self.loop:  # set on a loop this middleware has left
            return
        now = perf_counter()
        due = now - self.seconds
        late = []
        for task, arrived in self.inflight.items():
            if arrived > due:
                break
            late.append(task)
        for task in late:
            del self.inflight[task]
            self.expired.add(task)
            task.cancel()
        if self.inflight:
            self._schedule(now)
        else:
            self.loop = None

    def lift(self, task: asyncio.Task[Any]) -> None:
        """The request that ``task`` is handling has started a stream: no deadline for it."""
        if task not in self.expired:  # once expired, too late to lift it
            self.inflight.pop(task, None)

    def claim(self, task: asyncio.Task[Any]) -> bool:
        """Whether the cancellation ``task`` is getting came from its deadline alone."""
        if task not in self.expired:
            return False
        self.expired.discard(task)
        return task.uncancel() == 0

    def settle(self, task: asyncio.Task[Any]) -> None:
        """``task``'s handler returned: drop its deadline (and a cancellation it swallowed)."""
        self.inflight.pop(task, None)
        if self.expired and task in self.expired:
            _release(self.expired, task)

    def unavailable(self) -> web.HTTPServiceUnavailable:
        return web.HTTPServiceUnavailable(text=self.detail, headers={"Retry-After": "1"})


_all_deadlines: weakref.WeakSet[_Deadlines] = weakref.WeakSet()


def _release(expired: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
    """``task``'s handler swallowed the cancellation of its deadline: take it back."""
    expired.discard(task)
    task.uncancel()


def _check_seconds(seconds: float, what: str = "timeout_middleware") -> str:
    """Validate a deadline; the ``detail`` of the 503 problem it produces."""
    if not seconds > 0:
        raise ValueError(f"{what} needs seconds > 0, got {seconds!r}")
    return f"the server did not answer within {seconds:g} s; retry later"


def timeout_middleware(seconds: float) -> Middleware:
    """Give each handler ``seconds`` to produce its response, else answer 503.

    The deadline covers the handler until it returns a response or starts a stream with
    :func:`prepare_stream` (``WebSocketHub`` and ``EventChannel`` do): streams are never cut
    by it. When it expires, ``seconds`` after the request reached this middleware (to within the
    loop's timer resolution, later if the loop is blocked), the handler is cancelled (its
    ``finally`` blocks run) and a 503 with ``Retry-After: 1`` is raised, which
    ``problem_middleware`` serves as a problem. A ``TimeoutError`` the handler raises itself is
    not mistaken for the deadline, and a cancellation from elsewhere (shutdown) stays one.
    Costs one timer per ``seconds`` of busy time, not one per request.
    """
    deadlines = _Deadlines(seconds, _check_seconds(seconds))

    @web.middleware
    async def timeout(request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = get_running_loop()
        task = current_task(loop)
        if task is None:
            return await handler(request)
        deadlines.enter(task, loop, perf_counter())
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if deadlines.claim(task):
                raise deadlines.unavailable() from None
            raise
        finally:
            deadlines.settle(task)

    return timeout


async def prepare_stream(request: web.Request, response: web.StreamResponse) -> None:
    """Start a streaming response (``StreamResponse``, ``WebSocketResponse``) the loopwise way.

    Use it instead of ``await response.prepare(request)`` in your own streaming handlers: the
    response gets the request id header, and ``timeout_middleware``'s deadline stops applying to
    this request (a stream is not a slow answer). ``WebSocketHub`` and ``EventChannel`` do this.
    """
    rid = _request_id.get()
    if rid is not None:
        response.headers.setdefault(request.get(_REQUEST_ID_HEADER_KEY, _DEFAULT_HEADER), rid)
    task = current_task()
    if task is not None:
        for deadlines in _all_deadlines:
            deadlines.lift(task)
    await response.prepare(request)


def _headers_in_slot() -> bool:
    """Whether aiohttp keeps a response's headers in the ``_headers`` slot behind its
    ``headers`` property (reading the slot saves a Python call per request)."""
    probe = web.Response()
    return getattr(probe, "_headers", None) is probe.headers


class _NoFastPath(web.Response):
    """Never the class of a handler's answer: with it, every answer takes the full check."""


# On an aiohttp that keeps headers elsewhere, the fused middleware vets every answer in full:
# slower, never wrong.
_FAST_RESPONSE: type[web.Response] = web.Response if _headers_in_slot() else _NoFastPath


def _combined_middleware(
    *,
    timeout: float | None,
    header: str,
    trust_incoming: bool,
    generate: Callable[[], str],
    access_log: logging.Logger,
    access_level: int,
    skip_paths: frozenset[str],
    error_log: logging.Logger,
) -> Middleware:
    """request id, access log, problem and timeout middlewares fused into one coroutine frame.

    The nested ``try`` blocks below are the four middlewares' bodies, innermost last; keep them in
    step with the single-purpose factories above (tests/http/server/test_middleware_stack.py
    checks that both give the same answers and log records).
    """
    custom_header = header != _DEFAULT_HEADER
    default_ids = generate is _new_request_id
    header = istr(header)
    deadlines = None
    if timeout is not None:
        what = "standard_middlewares(timeout=...)"
        deadlines = _Deadlines(timeout, _check_seconds(timeout, what))
    # Bound once: this runs on every request, and each lookup saved is measurable here.
    id_batch = _id_batch
    set_request_id = _request_id.set
    reset_request_id = _request_id.reset
    logging_enabled = access_log.isEnabledFor
    # logging clears this dict in place whenever levels change; a logger without one (another
    # Python) gets an empty dict here, so every request asks isEnabledFor().
    level_cache: dict[int, bool] | None = getattr(access_log, "_cache", None)
    if not isinstance(level_cache, dict):
        level_cache = {}
    known_sendable = _sendable.issuperset
    Response = _FAST_RESPONSE
    inflight = deadlines.inflight if deadlines is not None else {}
    expired = deadlines.expired if deadlines is not None else set()

    @web.middleware
    async def standard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # request id
        incoming = request.headers.get(header) if trust_incoming else None
        if incoming and _VALID_ID.fullmatch(incoming):
            rid = incoming
        elif default_ids and id_batch:
            rid = id_batch.pop()  # what generate() would do, without the call
        else:
            rid = generate()
        if custom_header:
            request[_REQUEST_ID_HEADER_KEY] = header
        token = set_request_id(rid)
        # access log: the logger's own cache of isEnabledFor() answers, read without the call
        logged = level_cache.get(access_level)
        if logged is None:
            logged = logging_enabled(access_level)
        if logged and skip_paths:
            logged = request.path not in skip_paths
        started = perf_counter()
        status = 500
        # timeout (as in timeout_middleware)
        task = None
        if deadlines is not None:
            loop = get_running_loop()
            task = current_task(loop)
            if task is not None:  # _Deadlines.enter(), inlined
                inflight[task] = started
                if deadlines.loop is not loop:
                    deadlines.arm(loop)
        headers: CIMultiDict[str] | None = None
        try:
            try:
                try:
                    response = await handler(request)
                except asyncio.CancelledError:
                    if task is not None and deadlines is not None and deadlines.claim(task):
                        raise deadlines.unavailable() from None
                    raise
                finally:
                    if task is not None:
                        inflight.pop(task, None)
                        if expired and task in expired:
                            _release(expired, task)
                # needs_vetting(), inlined; keeps the headers of a plain response at hand
                if response.__class__ is Response:
                    headers = response._headers
                    if not known_sendable(headers.values()):
                        headers = None
                if headers is None:
                    response = await _vetted(request, response, error_log)
            except Exception as exc:  # problem
                problem = _problem_for(request, exc, error_log)
                if problem is None:
                    raise
                response, headers = problem, None
            if logged:
                status = response.status
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[header] = rid
            raise
        except asyncio.CancelledError:
            status = 499
            raise
        finally:
            try:
                if logged:
                    _log_access(access_log, access_level, request, status, started)
            finally:
                reset_request_id(token)
        # A prepared (streaming) response has sent its headers already, with the id when it was
        # started by prepare_stream(); setting it again changes nothing on the wire.
        if headers is None:
            headers = response.headers
        headers[header] = rid
        return response

    return standard


def standard_middlewares(
    *,
    timeout: float | None = 30.0,
    header: str = _DEFAULT_HEADER,
    trust_incoming: bool = True,
    generate: Callable[[], str] = _new_request_id,
    access_logger: logging.Logger | None = None,
    access_level: int = logging.INFO,
    skip_paths: Collection[str] = (),
    error_logger: logging.Logger | None = None,
) -> list[Middleware]:
    """The stack ``create_app`` uses by default, as a list holding ONE middleware.

    That middleware behaves exactly like these four stacked outermost first, with the same
    guarantees and log records, at the cost of a single middleware per request::

        [request_id_middleware(header=header, trust_incoming=trust_incoming, generate=generate),
         access_log_middleware(logger=access_logger, level=access_level, skip_paths=skip_paths),
         problem_middleware(logger=error_logger),
         timeout_middleware(timeout)]

    ``timeout=None`` leaves the deadline out. Put your own middlewares after it (inside: they see
    the request id, their errors become problems) or before it (outside).
    """
    return [
        _combined_middleware(
            timeout=timeout,
            header=header,
            trust_incoming=trust_incoming,
            generate=generate,
            access_log=access_logger or _access_log,
            access_level=access_level,
            skip_paths=frozenset(skip_paths),
            error_log=error_logger or _error_log,
        )
    ]
