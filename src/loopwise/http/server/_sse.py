"""EventChannel: Server-Sent Events with a replay history; a reconnecting client loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from loopwise._exceptions import HTTPProblem
from loopwise.http.server._deadlines import prepare_stream
from loopwise.http.server._request_id import current_request_id
from loopwise.http.server._streams import (
    ActiveHandlers,
    abort_connection,
    register_streams,
    require_get,
)

__all__ = ["ChannelStatistics", "EventChannel"]

log = logging.getLogger("loopwise.http.server")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_KEEPALIVE = b": keepalive\n\n"
_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _format_event(event_id: int | None, data: str, event: str | None) -> bytes:
    parts = [] if event_id is None else [f"id: {event_id}\n"]
    if event is not None:
        parts.append(f"event: {event}\n")
    parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of an :class:`EventChannel`."""

    subscribers: int
    """Streams open now."""
    last_event_id: int
    """Id of the newest event (0 before the first)."""
    history: int
    """Events kept for replay now."""
    published: int
    """``publish()`` calls so far."""
    sent: int
    """Events written to streams so far (replays included)."""
    resumed: int
    """Streams opened with a ``Last-Event-ID``."""
    replayed: int
    """Events sent from the history to resuming streams."""
    gaps: int
    """Resumes told (with a ``gap`` event) that some missed events are gone."""
    evicted: int
    """Streams dropped because they fell ``queue_size`` events behind or a write stalled."""
    closed: bool
    """``close()`` was called: the channel refuses new streams."""


class _Subscriber:
    __slots__ = (
        "done",
        "last_write",
        "ping",
        "queue",
        "replay_from",
        "request",
        "request_id",
        "wakeup",
    )

    def __init__(self, request: web.Request, now: float) -> None:
        self.request = request
        # While not None: the id of the next event to send from the history, which publish()
        # leaves to the replay (the queue fills only once the replay has caught up).
        self.replay_from: int | None = None
        self.request_id = current_request_id()
        self.queue: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.done = False
        self.ping = False
        self.last_write = now

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()


class EventChannel:
    """A ``text/event-stream`` endpoint with numbered events and replay on reconnect.

    Mount ``channel.handler`` on a GET route and ``await channel.publish(data)``. Every event gets
    the next integer id (1, 2, 3, ... in publish order); the last ``history`` events are kept.

    Guarantees:

    - Each stream receives events in id order, each at most once, with no hole: a stream that
      cannot keep up (``queue_size`` events behind, or one write stalled for ``send_timeout``
      seconds) is dropped, never sent a partial sequence; its memory is bounded by ``queue_size``
      events and the transport buffer.
    - A client that reconnects with ``Last-Event-ID: N`` (browsers do this by themselves) first
      receives every event after ``N`` still in the history, then live events, with nothing lost
      or repeated in between. The replay is read from the shared history and written
      ``queue_size`` events at a time, so it costs a stream no more memory than live events do;
      a client that cannot take it (a write stalled for ``send_timeout``, or the history moved
      past the events it still had to receive) is dropped like a slow live stream.
    - If some of the events a resuming client missed are no longer kept, or ``N`` is not an id
      this channel has sent (the server restarted), it first receives an event named ``gap``
      (no id) whose data is JSON ``{"last_event_id": N, "first_available_id": F,
      "reason": "expired" | "unknown"}`` and then everything still kept.
    - A malformed ``Last-Event-ID`` gets a 400 problem; after ``close()`` new streams get a 503.
    - An idle stream gets a comment line every ``keepalive`` seconds, which keeps proxies from
      timing it out and detects clients that are gone. ``retry_ms``, when set, is sent first and
      tells browsers how long to wait before reconnecting.

    Shutdown: ``await channel.close()`` ends every stream cleanly (browsers will reconnect to the
    next server and resume) and returns once they are all finished. Apps made by ``create_app``
    call it on shutdown; with a plain ``web.Application`` add
    ``app.on_shutdown.append(channel.on_shutdown)``.
    """

    def __init__(
        self,
        *,
        history: int = 1000,
        keepalive: float = 15.0,
        retry_ms: int | None = None,
        queue_size: int = 256,
        send_timeout: float = 5.0,
    ) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0 events, got {history}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if not keepalive > 0 or not send_timeout > 0:
            raise ValueError("keepalive and send_timeout must be positive numbers of seconds")
        if retry_ms is not None and retry_ms < 0:
            raise ValueError(f"retry_ms must be >= 0 or None, got {retry_ms}")
        self._history: deque[tuple[int, bytes]] = deque(maxlen=history)
        self._keepalive = keepalive
        self._retry_ms = retry_ms
        self._queue_size = queue_size
        self._send_timeout = send_timeout
        self._ids = itertools.count(1)
        self._last_id = 0
        self._subscribers: set[_Subscriber] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._handlers = ActiveHandlers()
        self._closed = False
        self._published = 0
        self._sent = 0
        self._resumed = 0
        self._replayed = 0
        self._gaps = 0
        self._evicted = 0

    # -- public API -------------------------------------------------------------------------

    async def publish(self, data: str, *, event: str | None = None) -> int:
        """Send ``data`` to every open stream and keep it for replay; returns its id.

        ``data`` may span lines (any of CRLF, CR, LF); ``event`` names the event type (browsers
        dispatch it to ``addEventListener(event)``; ``None`` means ``message``). Raises
        ``ValueError`` for an empty ``data`` (browsers drop such events) or an ``event`` that is
        empty or contains a line break. Never waits on a client: it formats the event once, queues
        it for every stream (dropping the streams that are too far behind) and yields to the
        event loop once.
        """
        _check_event(data, event)
        event_id = next(self._ids)
        self._deliver(event_id, data, event)
        await asyncio.sleep(0)
        return event_id

    def _deliver(self, event_id: int, data: str, event: str | None) -> None:
        """Send and keep an event whose id was chosen elsewhere (``publish()``, or a backplane
        that numbers events for every process; ``data`` and ``event`` already checked).

        An id at or below the last one is ignored (already delivered). An id that skips some
        (this process missed events) empties the history and ends every stream, so clients
        resume and are told about the gap rather than silently missing events.
        """
        if event_id <= self._last_id:
            return
        if event_id != self._last_id + 1 and self._last_id:
            self._history.clear()
            self.disconnect_all()
        self._ids = itertools.count(event_id + 1)
        frame = _format_event(event_id, data, event)
        self._last_id = event_id
        self._published += 1
        if self._history.maxlen:
            self._history.append((event_id, frame))
        for subscriber in tuple(self._subscribers):
            self._enqueue(subscriber, frame)

    def disconnect_all(self) -> int:
        """End every open stream now (cleanly) without closing the channel; returns how many.

        Clients reconnect on their own and resume from their last event id.
        """
        subscribers = tuple(self._subscribers)
        for subscriber in subscribers:
            self._finish(subscriber)
        return len(subscribers)

    def statistics(self) -> ChannelStatistics:
        """Counters and current sizes; cheap enough to call for every metrics scrape."""
        return ChannelStatistics(
            subscribers=len(self._subscribers),
            last_event_id=self._last_id,
            history=len(self._history),
            published=self._published,
            sent=self._sent,
            resumed=self._resumed,
            replayed=self._replayed,
            gaps=self._gaps,
            evicted=self._evicted,
            closed=self._closed,
        )

    async def close(self) -> None:
        """End every stream and refuse new ones; returns once all handlers are finished, or
        ``send_timeout`` + 0.5 s at most.

        Idempotent; each stream's last write is bounded by ``send_timeout`` (then the stream is
        dropped).
        """
        self._closed = True
        self.disconnect_all()
        await self._handlers.wait_idle(self._send_timeout + 0.5)

    async def on_shutdown(self, app: web.Application) -> None:
        """``app.on_shutdown`` receiver that calls :meth:`close`."""
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<EventChannel subscribers={len(self._subscribers)} last_event_id={self._last_id} "
            f"history={len(self._history)} evicted={self._evicted} {state}>"
        )

    # -- the handler ------------------------------------------------------------------------

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: stream events to this client until it goes or the channel closes.

        A method other than GET (HEAD included) gets a 405 problem and subscribes nothing.
        """
        require_get(request, "this event stream")
        if self._closed:
            raise HTTPProblem(
                503,
                detail="this event stream is shutting down: reconnect later",
                headers={"Retry-After": "1"},
            )
        last_id = _parse_last_event_id(request)
        subscriber = _Subscriber(request, asyncio.get_running_loop().time())
        # Fix the resume point and subscribe with no await in between: nothing lost or repeated.
        preamble = self._resume(subscriber, last_id)
        self._subscribe(subscriber)
        self._handlers.started()
        try:
            register_streams(request, self)
            response = web.StreamResponse(headers=_HEADERS)
            await prepare_stream(request, response)
            if await self._stream(subscriber, response, preamble) and not subscriber.gone():
                with contextlib.suppress(ConnectionError):
                    await response.write_eof()
            return response
        finally:
            self._unsubscribe(subscriber)
            self._handlers.stopped()

    def _resume(self, subscriber: _Subscriber, last_id: int | None) -> bytes:
        """The stream's first bytes (``retry``, a ``gap`` event); sets where its replay starts."""
        parts: list[bytes] = []
        if self._retry_ms is not None:
            parts.append(f"retry: {self._retry_ms}\n\n".encode())
        if last_id is None:
            return b"".join(parts)
        self._resumed += 1
        history = self._history
        first = history[0][0] if history else self._last_id + 1
        if last_id > self._last_id or last_id + 1 < first:
            self._gaps += 1
            reason = "unknown" if last_id > self._last_id else "expired"
            gap = {"last_event_id": last_id, "first_available_id": first, "reason": reason}
            parts.append(_format_event(None, json.dumps(gap), "gap"))
            start = first
        else:
            start = last_id + 1
        if history and start <= self._last_id:
            subscriber.replay_from = start
        return b"".join(parts)

    async def _stream(
        self, subscriber: _Subscriber, response: web.StreamResponse, preamble: bytes
    ) -> bool:
        """Write until the stream ends; True if it ended cleanly (the response can be closed)."""
        queue, wakeup = subscriber.queue, subscriber.wakeup
        try:
            if preamble and not await self._write(subscriber, response, preamble):
                return False
            if subscriber.replay_from is not None and not await self._replay(subscriber, response):
                return False
            while not subscriber.done:
                if not queue:
                    if subscriber.ping:
                        subscriber.ping = False
                        if not await self._write(subscriber, response, _KEEPALIVE):
                            return False
                        continue
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                count = len(queue)
                batch = b"".join(queue)
                queue.clear()
                if not await self._write(subscriber, response, batch):
                    return False
                self._sent += count
        except ConnectionError:
            return False
        return True

    async def _replay(self, subscriber: _Subscriber, response: web.StreamResponse) -> bool:
        """Send the history from ``subscriber.replay_from`` on, ``queue_size`` events per write
        (the bound a live stream has), reading the shared history rather than copying it; then
        hand the stream over to live events. False if the stream ended meanwhile."""
        history = self._history
        while not subscriber.done:
            start = subscriber.replay_from
            assert start is not None
            if start > self._last_id:
                subscriber.replay_from = None  # caught up: publish() queues for it from now on
                return True
            first = history[0][0]
            if start < first:
                self._evict(
                    subscriber,
                    f"could not take its replay: the history ({history.maxlen} events) moved "
                    f"past event {start} before it was sent",
                )
                return False
            offset = start - first
            frames = [
                frame for _, frame in itertools.islice(history, offset, offset + self._queue_size)
            ]
            if not await self._write(subscriber, response, b"".join(frames), replaying=True):
                return False
            subscriber.replay_from = start + len(frames)
            self._replayed += len(frames)
            self._sent += len(frames)
        return False

    async def _write(
        self,
        subscriber: _Subscriber,
        response: web.StreamResponse,
        data: bytes,
        *,
        replaying: bool = False,
    ) -> bool:
        try:
            async with asyncio.timeout(self._send_timeout):
                await response.write(data)
        except TimeoutError:
            during = " during its replay" if replaying else ""
            self._evict(subscriber, f"a write stalled for send_timeout{during}")
            return False
        subscriber.last_write = asyncio.get_running_loop().time()
        return True

    # -- bookkeeping ------------------------------------------------------------------------

    def _enqueue(self, subscriber: _Subscriber, frame: bytes) -> None:
        if subscriber.done or subscriber.replay_from is not None:
            return
        if len(subscriber.queue) >= self._queue_size:
            self._evict(subscriber, f"{self._queue_size} events behind")
            return
        subscriber.queue.append(frame)
        subscriber.wakeup.set()

    def _evict(self, subscriber: _Subscriber, reason: str) -> None:
        """Drop a stream that cannot keep up: abort its connection so the client reconnects
        and resumes from the history."""
        if subscriber.done and subscriber.gone():
            return
        self._evicted += 1
        rid = subscriber.request_id
        log.info(
            "dropped a slow event stream (request id %s): %s",
            rid or "-",
            reason,
            extra={"request_id": rid},
        )
        self._finish(subscriber)
        abort_connection(subscriber.request)

    def _finish(self, subscriber: _Subscriber) -> None:
        subscriber.done = True
        self._unsubscribe(subscriber)
        subscriber.wakeup.set()

    def _subscribe(self, subscriber: _Subscriber) -> None:
        self._subscribers.add(subscriber)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _unsubscribe(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)
        subscriber.queue.clear()
        if not self._subscribers and self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        """Every second (or ``keepalive`` if shorter): end the streams whose client is gone and
        ask the idle ones to send a keep-alive comment."""
        loop = asyncio.get_running_loop()
        interval = min(self._keepalive, 1.0)
        while True:
            await asyncio.sleep(interval)
            idle_since = loop.time() - self._keepalive
            for subscriber in tuple(self._subscribers):
                if subscriber.gone():
                    self._finish(subscriber)
                elif subscriber.last_write <= idle_since and not subscriber.queue:
                    subscriber.ping = True
                    subscriber.wakeup.set()


def _check_event(data: str, event: str | None) -> None:
    """Raise for what ``publish()`` refuses (see there)."""
    if not isinstance(data, str):
        raise TypeError(
            f"event data is str, got {type(data).__name__}: encode it first "
            "(json.dumps for objects)"
        )
    if not data:
        raise ValueError("event data cannot be empty: browsers drop events with no data")
    if event is not None and (not event or "\n" in event or "\r" in event):
        raise ValueError(f"invalid event name {event!r}: use a non-empty name without line breaks")


def _parse_last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        raw = request.query.get("last_event_id")
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise HTTPProblem(
            400,
            detail="Last-Event-ID must be an id this stream sent (a decimal integer): "
            "reconnect without it to start from new events",
        )
    return int(value)
