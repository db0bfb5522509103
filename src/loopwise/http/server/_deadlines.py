"""The timeout middleware's deadlines, and prepare_stream(), which lifts them for streams."""

from __future__ import annotations

import asyncio
import weakref
from asyncio import current_task, get_running_loop
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopwise.http.server._request_id import (
    _DEFAULT_HEADER,
    _REQUEST_ID_HEADER_KEY,
    _request_id,
)

__all__ = ["prepare_stream", "timeout_middleware"]


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
