"""What WebSocketHub and EventChannel share: the app's registry of open streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Protocol

from aiohttp import web

from loopwise._exceptions import HTTPProblem

__all__ = [
    "STREAMS_KEY",
    "ActiveHandlers",
    "abort_connection",
    "close_streams",
    "register_streams",
    "require_get",
]

log = logging.getLogger("loopwise.http.server")


class ActiveHandlers:
    """Counts the handlers still serving streams, so ``close()`` can wait until none is left."""

    __slots__ = ("_count", "_idle")

    def __init__(self) -> None:
        self._count = 0
        self._idle: asyncio.Event | None = None  # made lazily: it must belong to the running loop

    def __len__(self) -> int:
        return self._count

    def started(self) -> None:
        if self._idle is None:
            self._idle = asyncio.Event()
        self._count += 1
        self._idle.clear()

    def stopped(self) -> None:
        self._count -= 1
        if self._count == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until no handler is active, ``seconds`` at most; True if none is left."""
        if self._count and self._idle is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._idle.wait()
        return self._count == 0


def require_get(request: web.Request, what: str) -> None:
    """Refuse anything but GET with a 405 problem, before a stream starts or subscribes.

    aiohttp's ``add_get`` also routes HEAD, and a stream cannot answer HEAD (its body is the
    point); a route added for ``"*"`` brings every other method here too.
    """
    if request.method != "GET":
        raise HTTPProblem(
            405,
            detail=f"{what} answers GET only, not {request.method}",
            headers={"Allow": "GET"},
        )


_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def abort_connection(request: web.Request) -> None:
    """Drop the request's TCP connection now, with whatever it still had to send.

    A plain abort closes the descriptor but leaves the unsent bytes in the kernel, which keeps
    sending them (and holding the memory) to a client that does not read; a zero linger makes
    the kernel discard them and reset the connection.
    """
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    transport.abort()


class StreamOwner(Protocol):
    """Something that holds long-lived connections and can end them for a shutdown."""

    async def close(self) -> None: ...


STREAMS_KEY = web.AppKey("loopwise.streams", set[StreamOwner])


def register_streams(request: web.Request, owner: StreamOwner) -> None:
    """Let the app (if made by ``create_app``) close ``owner`` when it shuts down."""
    owners = request.config_dict.get(STREAMS_KEY)
    if owners is not None:
        owners.add(owner)


async def close_streams(app: web.Application) -> None:
    """``on_shutdown`` signal: close every hub and channel that served this app, concurrently."""
    owners = list(app.get(STREAMS_KEY, ()))
    results = await asyncio.gather(*(owner.close() for owner in owners), return_exceptions=True)
    for owner, result in zip(owners, results, strict=True):
        if isinstance(result, Exception):
            log.error("closing %r at shutdown failed", owner, exc_info=result)
