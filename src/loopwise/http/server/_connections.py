"""Connection-level limits for ``serve()``: a cap on open connections and a deadline for the
request headers, so silent or slow-sending clients (slowloris) cannot exhaust the server.

aiohttp has neither: a connection that sends nothing is kept for the whole keep-alive timeout
(75 s), and there is no limit on how many are open but the process's descriptors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import cast

from aiohttp import web

__all__ = ["ConnectionGuard", "GuardedSite", "effective_max_connections"]

log = logging.getLogger("loopwise.http.server")

# Descriptors kept free below the process's limit for everything but client connections.
_SPARE_DESCRIPTORS = 64


def effective_max_connections(requested: int | None) -> int | None:
    """``requested``, lowered to fit the process's descriptor limit (with a warning)."""
    if requested is None:
        return None
    if requested < 1:
        raise ValueError(f"max_connections must be at least 1 or None, got {requested}")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and requested > soft - _SPARE_DESCRIPTORS:
        fitted = max(soft - _SPARE_DESCRIPTORS, 1)
        log.warning(
            "max_connections=%d does not fit the descriptor limit (ulimit -n %d): using %d",
            requested,
            soft,
            fitted,
        )
        return fitted
    return requested


def _answer(status: int, title: str, detail: str, extra: str = "") -> bytes:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return (
        f"HTTP/1.1 {status} {title}\r\nContent-Type: application/problem+json\r\n{extra}"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class ConnectionGuard:
    """Admits connections for an aiohttp ``Server`` within ``max_connections`` and closes those
    whose first request headers have not arrived within ``header_timeout`` seconds, or whose
    later request headers have not all arrived ``header_timeout`` after their first byte.

    At the cap, a new connection takes the place of the oldest one still waiting for its first
    request headers, else of the oldest one idle between two requests (that one is reset); if
    every open connection is serving a request or a stream, the new one is answered 503 and
    closed. The first refusal or eviction of an episode
    logs a warning; the first connection admitted normally after it logs that it ended.
    """

    def __init__(
        self, server: web.Server, *, max_connections: int | None, header_timeout: float | None
    ) -> None:
        if header_timeout is not None and not header_timeout > 0:
            raise ValueError(f"header_timeout must be positive or None, got {header_timeout!r}")
        self._server = server
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        # connections still waiting for their first request headers, oldest first
        self._waiting: dict[_Guarded, None] = {}
        # connections past their first request headers, oldest first
        self._served: dict[_Guarded, None] = {}
        self._at_limit = False
        self._busy = _answer(
            503,
            "Service Unavailable",
            f"the server is at its limit of {max_connections} connections: retry later",
            "Retry-After: 1\r\n",
        )
        self._slow = _answer(
            408,
            "Request Timeout",
            f"the request headers did not arrive within {header_timeout:g} s"
            if header_timeout
            else "",
        )

    def __call__(self) -> asyncio.Protocol:
        """The protocol factory for ``loop.create_server``."""
        limit = self.max_connections
        if limit is not None and self.open >= limit:
            if self._waiting:
                self.evicted += 1
                self._limit_reached("closing the oldest connections still waiting for headers")
                next(iter(self._waiting)).drop()
            elif (idle := self._oldest_idle()) is not None:
                self.evicted += 1
                self._limit_reached("closing the oldest connections idle between requests")
                idle.drop()
            else:
                self.refused += 1
                self._limit_reached("answering new ones 503")
                return _Refused(self._busy)
        elif self._at_limit:
            self._at_limit = False
            log.warning(
                "connections below max_connections=%s again (so far: %d refused, %d closed "
                "to make room)",
                limit,
                self.refused,
                self.evicted,
            )
        self.open += 1
        conn = _Guarded(self, self._server())
        # Waiting from now, not from connection_made: a loop that accepts a burst calls this
        # factory for every connection of it before any connection_made, and the burst must be
        # able to replace the connections it is made of.
        self._waiting[conn] = None
        return conn

    def _limit_reached(self, action: str) -> None:
        if not self._at_limit:
            self._at_limit = True
            log.warning(
                "connection limit reached: %d open (max_connections=%s): %s",
                self.open,
                self.max_connections,
                action,
            )

    def _oldest_idle(self) -> _Guarded | None:
        """The oldest served connection now idle between two requests, if any (a scan: only
        at the cap with no connection waiting for its first headers)."""
        for conn in self._served:
            if conn.idle():
                return conn
        return None

    def _got_headers(self, conn: _Guarded) -> None:
        if self._waiting.pop(conn, 0) is None:
            self._served[conn] = None

    def _closed(self, conn: _Guarded) -> None:
        self._waiting.pop(conn, None)
        self._served.pop(conn, None)
        self.open -= 1


class _Refused(asyncio.Protocol):
    """Answers one fixed response and closes."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self._answer)  # uvloop's are not subclasses
        transport.close()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard's bookkeeping around it."""

    __slots__ = ("_dropped", "_guard", "_inner", "_started", "_tail", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        # dropped at the cap before the loop called connection_made
        self._dropped = False
        # aiohttp's protocol has seen connection_made
        self._started = False
        # the last bytes received while the first request's headers are incomplete, else None
        self._tail: bytes | None = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self._dropped:
            self._transport.abort()
            return
        guard = self._guard
        if guard.header_timeout is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(guard.header_timeout, self._too_slow)
        self._started = True
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._tail is None and self._guard.header_timeout is not None and self.idle():
            # The first bytes of a request on a keep-alive connection: its headers get
            # header_timeout too (idle time before them is aiohttp's keepalive_timeout).
            self._tail = b""
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._guard.header_timeout, self._too_slow)
        if self._tail is not None:
            seen = self._tail + data
            # Any empty line may end the headers (aiohttp accepts LF as well as CRLF line ends)
            if b"\n\r\n" in seen or b"\n\n" in seen:
                self._inner.data_received(data)
                # ... but aiohttp skips empty lines before a request line: when it is still
                # waiting for a request, they were not the end of any headers
                if self.idle():
                    self._tail = seen[-2:]
                else:
                    self._headers_arrived()
                return
            self._tail = seen[-2:]
        self._inner.data_received(data)

    def _headers_arrived(self) -> None:
        self._tail = None
        self._guard._got_headers(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def idle(self) -> bool:
        """aiohttp's protocol is waiting for the next request's headers (none in progress).

        Reads aiohttp's private ``_waiter``; without it, a served connection is never idle.
        """
        waiter = getattr(self._inner, "_waiter", None)
        return waiter is not None and not waiter.done()

    def _too_slow(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._guard.timed_out += 1
            log.debug("closed a connection that sent no complete request headers in time")
            transport.write(self._guard._slow)
            transport.close()

    def drop(self) -> None:
        """Close now, to make room at the cap: it is waiting for request headers."""
        self._tail = None
        self._guard._waiting.pop(self, None)
        self._guard._served.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()
        else:
            self._dropped = True

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._started else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard._closed(self)
        if self._started:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int | None,
        header_timeout: float | None,
    ) -> None:
        super().__init__(runner)
        server = runner.server
        assert server is not None, "set the runner up first"
        self._guard = ConnectionGuard(
            server, max_connections=max_connections, header_timeout=header_timeout
        )
        self._host = host
        self._port = port

    @property
    def guard(self) -> ConnectionGuard:
        return self._guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard, self._host, self._port, backlog=self._backlog
        )
