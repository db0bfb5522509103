"""Backplane: a WebSocketHub and an EventChannel shared by every server process, through Redis."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from loopwise._exceptions import UsageError
from loopwise.http.server import EventChannel, WebSocketHub
from loopwise.http.server._sse import _check_event
from loopwise.redis import _scripts
from loopwise.redis._connection import (
    Reconnect,
    RedisUnavailableError,
    check_client,
    check_pool,
    command,
    stream_entries,
    text,
)

__all__ = ["Backplane", "BackplaneStatistics"]

logger = logging.getLogger("loopwise.redis")

_BLOCK_MS = 1000
_GAP_LOG_EVERY = 10.0  # seconds between two log lines about missed hub messages


@dataclass(frozen=True, slots=True)
class BackplaneStatistics:
    """A snapshot of a :class:`Backplane` (this process's side)."""

    running: bool
    broadcasts: int
    """``broadcast()`` calls from this process."""
    published: int
    """``publish()`` calls from this process."""
    messages: int
    """Hub messages (from any process) handed to this process's hub."""
    events: int
    """Events (from any process) handed to this process's channel."""
    last_event_id: int
    """The newest event id seen (ids are shared by every process)."""
    skipped: int
    """Entries of the two streams that no backplane wrote (not UTF-8 where text is due, or
    missing fields): logged and skipped, the tail goes on."""
    missed: int
    """Hub messages this process never handed to its hub: Redis trimmed them (the stream keeps
    about ``hub_maxlen``) before this process read them, because it fell that far behind (a
    blocked event loop, a long outage). Counted from the numbers each broadcast carries."""
    reconnects: int
    """Calls to Redis retried because it was unreachable."""
    last_error: str | None


class Backplane:
    """Connects this process's :class:`~loopwise.http.server.WebSocketHub` and
    :class:`~loopwise.http.server.EventChannel` to the same ones in every other server process::

        hub, feed = WebSocketHub(), EventChannel(history=1000)
        backplane = Backplane(client, "chat", hub=hub, channel=feed)
        app.cleanup_ctx.append(backplane.cleanup_ctx)
        ...
        await backplane.broadcast("hello")     # every client of every process's hub
        await backplane.publish("tick")        # every subscriber of every process's channel

    Messages and events go through two Redis streams (``<name>:hub``, ``<name>:events``), which
    every process tails; each process then hands them to its own hub or channel, which keeps
    its per-client bounded queues and evicts slow clients as before.

    Guarantees:

    * **Order.** Every process delivers broadcasts in one order (the stream's), and events in
      id order. ``exclude=`` of ``WebSocketHub.broadcast`` has no cross-process equivalent.
    * **Event ids are shared**: ``publish()`` numbers events 1, 2, 3, ... across all processes
      (the stream's own ids, ``0-N``; Redis ≥ 7), so a browser's ``Last-Event-ID`` resumes on
      any process. On start each process loads the last ``history`` events (the channel's own
      ``history``) from the stream, which Redis trims to about that length: a resume works
      after a restart of any process, and a ``gap`` event tells a client whose id is older than
      what is kept, as without a backplane. Publish through the backplane only (the channel's
      own ``publish()`` would number events locally).
    * **Lost connection to Redis**: ``broadcast()``/``publish()`` are retried with backoff until
      Redis answers (a retried call whose reply was lost may deliver twice); the tail resumes
      from the last entry it saw, so messages published meanwhile are delivered late, not lost,
      unless the stream was trimmed past them: then the channel empties its history and ends its
      streams, and resuming clients get a ``gap`` event.
    * **Start.** :meth:`start` (and so the app's startup, with :meth:`cleanup_ctx`) waits for
      Redis at most ``start_timeout`` seconds (10 by default; ``None``: until it answers), then
      raises :class:`RedisUnavailableError`, so a server never hangs at startup unnoticed.
    * **Foreign entries.** An entry of the two streams that no backplane wrote (text that is not
      UTF-8, a missing field) is logged, counted in ``statistics().skipped`` and skipped; the
      tail goes on with the next one.
    * **Missed hub messages.** Broadcasts are numbered in stream order (across processes); a
      process that reads a number more than one past the last it saw counts the messages in
      between in ``statistics().missed`` and logs it (one line per gap, at most one line every
      10 s). The count is exact for gaps followed by a later broadcast; messages trimmed after
      the last broadcast seen are counted only once another broadcast arrives.
    * Event ids survive a restart of Redis only if Redis persists its data (``appendonly``).
    * The client needs 2 connections at once (the blocking read of the tail, and the sends):
      a client whose pool allows fewer is refused with a ``UsageError``.
    """

    def __init__(
        self,
        client: Redis,
        name: str,
        *,
        hub: WebSocketHub | None = None,
        channel: EventChannel | None = None,
        hub_maxlen: int = 1000,
        start_timeout: float | None = 10.0,
    ) -> None:
        self._client = check_client(client)
        check_pool(self._client, needed=2, who="a Backplane")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        if hub is None and channel is None:
            raise ValueError("give a hub=, a channel= or both: there is nothing to connect")
        if isinstance(hub_maxlen, bool) or not isinstance(hub_maxlen, int) or hub_maxlen < 1:
            raise ValueError(f"hub_maxlen must be an int >= 1, got {hub_maxlen!r}")
        if start_timeout is not None and (
            isinstance(start_timeout, bool)
            or not isinstance(start_timeout, int | float)
            or not (math.isfinite(start_timeout) and start_timeout > 0)
        ):
            raise ValueError(
                f"start_timeout must be a number of seconds > 0 or None, got {start_timeout!r}"
            )
        self.start_timeout = start_timeout
        self.name = name
        self.hub = hub
        self.channel = channel
        self.hub_key = f"{name}:hub"
        self.events_key = f"{name}:events"
        self._hub_maxlen = hub_maxlen
        self._history = max(1, channel._history.maxlen or 1) if channel is not None else 1
        self._reconnect = Reconnect(f"Backplane {name!r}")
        self._tail: asyncio.Task[None] | None = None
        self._last_hub = "$"
        self._hub_number = 0  # the number of the last broadcast seen
        self._missed = 0
        self._missed_unlogged = 0
        self._gap_logged_at = -math.inf
        self._broadcast_script = self._client.register_script(_scripts.BROADCAST)
        self._position_script = self._client.register_script(_scripts.HUB_POSITION)
        self.hub_counter_key = f"{name}:hub:n"
        self._last_event = "0-0"
        self._broadcasts = 0
        self._published = 0
        self._messages = 0
        self._events = 0
        self._skipped = 0
        self._closing = False

    # -- sending ------------------------------------------------------------------------------

    async def broadcast(self, data: str | bytes, *, room: str | None = None) -> None:
        """Queue ``data`` for every client (or those in ``room``) of every process's hub."""
        if self.hub is None:
            raise UsageError("this backplane has no hub: create it with hub=")
        if isinstance(data, str):
            kind, payload = b"t", data.encode("utf-8")
        elif isinstance(data, bytes | bytearray | memoryview):
            kind, payload = b"b", bytes(data)
        else:
            raise TypeError(
                f"a WebSocket message is str or bytes, got {type(data).__name__}: "
                "encode it first (json.dumps for objects)"
            )
        fields: list[Any] = ["k", kind, "d", payload]
        if room is not None:
            fields += ["r", room]
        keys = [self.hub_key, self.hub_counter_key]
        send = functools.partial(
            self._broadcast_script, keys=keys, args=[self._hub_maxlen, *fields]
        )
        await self._reconnect.call("XADD", send)
        self._broadcasts += 1

    async def publish(self, data: str, *, event: str | None = None) -> int:
        """Publish an event to every process's channel; returns its id (shared by all)."""
        if self.channel is None:
            raise UsageError("this backplane has no channel: create it with channel=")
        _check_event(data, event)
        fields: list[Any] = ["d", data.encode("utf-8")]
        if event is not None:
            fields += ["e", event]
        args = ["XADD", self.events_key, "MAXLEN", "~", self._history, "0-*", *fields]
        entry_id = await self._reconnect.call("XADD", lambda: command(self._client, *args))
        self._published += 1
        return _event_id(entry_id)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the channel's history from Redis and start following both streams. Waits for
        Redis at most ``start_timeout`` seconds, then raises :class:`RedisUnavailableError`."""
        if self._tail is not None:
            return
        self._closing = False
        try:
            async with asyncio.timeout(self.start_timeout):
                await self._load()
        except TimeoutError:
            raise RedisUnavailableError(
                f"Backplane {self.name!r}: Redis did not answer within start_timeout="
                f"{self.start_timeout:g} s ({self._reconnect.last_error}); check that it runs "
                "and that the client's URL is right, or raise start_timeout"
            ) from None
        self._tail = asyncio.get_running_loop().create_task(self._follow())

    async def _load(self) -> None:
        if self.channel is not None:
            raw = await self._reconnect.call(
                "XREVRANGE",
                lambda: command(
                    self._client, "XREVRANGE", self.events_key, "+", "-", "COUNT", self._history
                ),
            )
            for entry_id, fields in reversed(raw or []):
                self._deliver_event(entry_id, fields)
        if self.hub is not None:
            keys = [self.hub_key, self.hub_counter_key]
            last_id, number = await self._reconnect.call(
                "XREVRANGE", functools.partial(self._position_script, keys=keys)
            )
            self._last_hub = text(last_id)
            self._hub_number = int(number)

    async def close(self) -> None:
        """Stop following the streams (the hub and channel are closed by their own app)."""
        tail, self._tail = self._tail, None
        if tail is not None:
            self._closing = True
            tail.cancel()
            # wait() never raises the tail's CancelledError, so a cancellation of the caller
            # itself is not mistaken for it (and swallowed). The wait is bounded: redis-py can
            # lose the cancellation of a command in flight (its retry sends it again); the
            # follower then sees _closing when that read returns (within a second) and ends.
            await asyncio.wait([tail], timeout=_BLOCK_MS / 1000 + 2)
            if not tail.done():
                logger.warning(
                    "Backplane %r: the follower did not end in time; it ends after its read",
                    self.name,
                )
            elif not tail.cancelled() and tail.exception() is not None:
                logger.error(
                    "Backplane %r: the follower had failed", self.name, exc_info=tail.exception()
                )

    async def __aenter__(self) -> Backplane:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: started with the app, stopped at its cleanup."""
        await self.start()
        yield
        await self.close()

    # -- following ----------------------------------------------------------------------------

    async def _follow(self) -> None:
        while not self._closing:
            keys: list[str] = []
            ids: list[str] = []
            if self.hub is not None:
                keys.append(self.hub_key)
                ids.append(self._last_hub)
            if self.channel is not None:
                keys.append(self.events_key)
                ids.append(self._last_event)
            args = ["XREAD", "COUNT", 500, "BLOCK", _BLOCK_MS, "STREAMS", *keys, *ids]
            try:
                raw = await self._reconnect.call("XREAD", functools.partial(self._read, args))
            except Exception:  # a bug or a misconfigured server must not end the tail
                logger.exception("Backplane %r: reading the streams failed", self.name)
                await asyncio.sleep(1.0)
                continue
            if self._closing:
                return
            entries = stream_entries(raw)
            for entry_id, fields in entries.get(self.events_key, ()):
                self._deliver_event(entry_id, fields)
            for entry_id, fields in entries.get(self.hub_key, ()):
                self._last_hub = text(entry_id)
                await self._deliver_message(entry_id, fields)

    async def _read(self, args: list[Any]) -> Any:
        if self._closing:  # closed while a retry was due: end instead of reading again
            raise asyncio.CancelledError
        return await command(self._client, *args)

    def _skip(self, key: str, entry_id: Any, exc: Exception) -> None:
        self._skipped += 1
        logger.warning(
            "Backplane %r: skipped entry %s of %r, which no backplane wrote (%s: %s)",
            self.name,
            text(entry_id),
            key,
            type(exc).__name__,
            exc,
        )

    def _deliver_event(self, entry_id: Any, fields: Any) -> None:
        assert self.channel is not None
        self._last_event = text(entry_id)
        try:
            f = {text(k): v for k, v in (fields or {}).items()}
            data = text(f["d"])
            event = text(f["e"]) if "e" in f else None
            _check_event(data, event)
        except (KeyError, UnicodeDecodeError, ValueError) as exc:
            self._skip(self.events_key, entry_id, exc)
            return
        self.channel._deliver(_event_id(entry_id), data, event)
        self._events += 1

    async def _deliver_message(self, entry_id: Any, fields: Any) -> None:
        assert self.hub is not None
        try:
            f = {text(k): v for k, v in (fields or {}).items()}
            payload = bytes(f["d"])
            data: str | bytes = payload.decode("utf-8") if f.get("k") == b"t" else payload
            room = text(f["r"]) if "r" in f else None
            number = int(f["n"]) if "n" in f else None
        except (KeyError, UnicodeDecodeError, ValueError) as exc:
            self._skip(self.hub_key, entry_id, exc)
            return
        if number is not None:
            self._count_missed(number)
        await self.hub.broadcast(data, room=room)
        self._messages += 1

    def _count_missed(self, number: int) -> None:
        missed = number - self._hub_number - 1
        # A number at or below the last one: the counter started again (Redis restarted
        # without persistence, or the keys were deleted); count from there.
        self._hub_number = number
        if missed <= 0:
            return
        self._missed += missed
        self._missed_unlogged += missed
        now = time.monotonic()
        if now - self._gap_logged_at >= _GAP_LOG_EVERY:
            self._gap_logged_at = now
            logger.warning(
                "Backplane %r: missed %d hub message(s): Redis trimmed them before this process "
                "read them (it fell more than hub_maxlen=%d behind); %d missed in all",
                self.name,
                self._missed_unlogged,
                self._hub_maxlen,
                self._missed,
            )
            self._missed_unlogged = 0

    # -- statistics ---------------------------------------------------------------------------

    def statistics(self) -> BackplaneStatistics:
        return BackplaneStatistics(
            running=self._tail is not None and not self._tail.done(),
            broadcasts=self._broadcasts,
            published=self._published,
            messages=self._messages,
            events=self._events,
            last_event_id=_event_id(self._last_event),
            skipped=self._skipped,
            missed=self._missed,
            reconnects=self._reconnect.failures,
            last_error=self._reconnect.last_error,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        state = "running" if s.running else "stopped"
        return (
            f"<Backplane {self.name!r} {state} messages={s.messages} missed={s.missed} "
            f"events={s.events} "
            f"last_event_id={s.last_event_id} reconnects={s.reconnects}>"
        )


def _event_id(entry_id: Any) -> int:
    return int(text(entry_id).partition("-")[2] or 0)
