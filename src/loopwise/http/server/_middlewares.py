"""standard_middlewares(): the request id, access log, problem and timeout middlewares fused
into one coroutine frame per request, with exactly the behaviour of the four stacked in that
order (outermost first): the request id is known to everything, the access log sees the final
status of every answer, and a deadline that expires becomes a 503 problem.

Each middleware lives in its own module (``_request_id``, ``_access_log``,
``_problem_middleware``, ``_deadlines``); the fused one repeats their bodies because aiohttp adds
a call layer per middleware, and tests/http/server/test_middleware_stack.py checks that both give
the same answers and log records.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import current_task, get_running_loop
from collections.abc import Callable, Collection
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict, istr

from loopwise.http.server._access_log import _access_log, _log_access
from loopwise.http.server._deadlines import _check_seconds, _Deadlines, _release
from loopwise.http.server._problem_middleware import (
    _error_log,
    _log_passing,
    _problem_for,
    _vetted,
)
from loopwise.http.server._request_id import (
    _DEFAULT_HEADER,
    _REQUEST_ID_HEADER_KEY,
    _VALID_ID,
    _id_batch,
    _new_request_id,
    _request_id,
)
from loopwise.http.server._vetting import _sendable

__all__ = ["standard_middlewares"]


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
    step with the single-purpose factories in their modules
    (tests/http/server/test_middleware_stack.py checks both give the same answers and records).
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
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except BaseException as exc:
                _log_passing(request, exc, error_log)
                raise
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
                # closed by the garbage collector: see request_id_middleware; not
                # contextlib.suppress, which costs a context manager on every request
                try:  # noqa: SIM105
                    reset_request_id(token)
                except ValueError:
                    pass
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
