"""WebSocketHub: broadcast to many WebSocket clients without ever waiting on a slow one."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from loopwise._exceptions import HTTPProblem
from loopwise.http.server._deadlines import prepare_stream
from loopwise.http.server._request_id import current_request_id
from loopwise.http.server._streams import (
    ActiveHandlers,
    abort_connection,
    register_streams,
    require_get,
)

__all__ = ["HubConnection", "HubStatistics", "WebSocketHub"]

log = logging.getLogger("loopwise.http.server")

MessageCallback = Callable[["HubConnection", str | bytes], Awaitable[None]]
ConnectionCallback = Callable[["HubConnection"], Awaitable[None]]

CLOSE_TOO_SLOW = int(WSCloseCode.POLICY_VIOLATION)  # 1008
CLOSE_ERROR = int(WSCloseCode.INTERNAL_ERROR)  # 1011
CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)  # 1001
CLOSE_TOO_BIG = int(WSCloseCode.MESSAGE_TOO_BIG)  # 1009
EVICTED_CLOSE_TIMEOUT = 0.5  # seconds an evicted client gets to take its close frame

_Frame = tuple[WSMsgType, bytes]
_ids = itertools.count(1)


class _Resume:
    """Await a coroutine that was already stepped once and suspended on ``first``.

    Lets a send start synchronously in the broadcaster (no task switch when the socket can take
    the data) and be finished, only if it had to wait, by the client's own sender task.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


def _size(data: str | bytes) -> int:
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)


def _encode(data: str | bytes) -> _Frame:
    if isinstance(data, str):
        return WSMsgType.TEXT, data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return WSMsgType.BINARY, bytes(data)
    raise TypeError(
        f"a WebSocket message is str or bytes, got {type(data).__name__}: "
        "encode it first (json.dumps for objects)"
    )


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """A snapshot of a :class:`WebSocketHub`."""

    clients: int
    """Clients connected now (evicted and closing ones excluded)."""
    rooms: int
    """Rooms with at least one client."""
    queued: int
    """Messages waiting in all the clients' queues now."""
    broadcasts: int
    """``broadcast()`` calls so far."""
    sent: int
    """Frames written to clients so far."""
    received: int
    """Messages received from clients so far."""
    evicted_full: int
    """Clients closed with 1008 because their queue was full."""
    evicted_timeout: int
    """Clients closed with 1008 because one send took longer than ``send_timeout``."""
    errors: int
    """Clients closed with 1011 because a callback raised."""
    closed: bool
    """``close()`` was called: the hub refuses new clients."""


class HubConnection:
    """One client of a :class:`WebSocketHub`, as the callbacks see it.

    ``request`` is the upgrade request, ``request_id`` its id (from the request id middleware,
    else None), ``id`` a number unique in the process, ``rooms`` the rooms joined. Messages
    queued for it are sent in order, one at a time, by its own task.
    """

    __slots__ = (
        "_busy",
        "_close_code",
        "_close_reason",
        "_done",
        "_hub",
        "_pending",
        "_queue",
        "_send_started",
        "_wakeup",
        "id",
        "request",
        "request_id",
        "rooms",
        "ws",
    )

    def __init__(self, hub: WebSocketHub, request: web.Request, ws: web.WebSocketResponse) -> None:
        self._hub = hub
        self.request = request
        self.request_id = current_request_id()
        self.ws = ws
        self.id = next(_ids)
        self.rooms: set[str] = set()
        self._queue: deque[_Frame] = deque()
        self._wakeup = asyncio.Event()
        self._done = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self._send_started = 0.0
        self._busy = False
        self._pending: _Resume | None = None

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed: nothing more will be sent to it."""
        return self._close_code is not None

    @property
    def close_code(self) -> int | None:
        """The code the hub closed (or is closing) this connection with; ``None`` while open."""
        return self._close_code

    async def send(self, data: str | bytes) -> bool:
        """Queue ``data`` for this client alone; same guarantees as ``WebSocketHub.broadcast``.

        Returns False (and sends nothing) when the client is closed or was evicted by this call.
        """
        queued = self._hub._enqueue(self, _encode(data))
        await asyncio.sleep(0)
        return queued

    def join(self, room: str) -> None:
        """Add this client to ``room`` (created on first join); no-op once closed."""
        if not self.closed:
            self._hub._join(self, room)

    def leave(self, room: str) -> None:
        """Remove this client from ``room``; an empty room disappears."""
        self._hub._leave(self, room)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start closing this connection with ``code``; queued messages are dropped."""
        self._hub._finish(self, code, reason)

    def __repr__(self) -> str:
        state = "open" if self._close_code is None else f"closing code={self._close_code}"
        return (
            f"<HubConnection id={self.id} queued={len(self._queue)} "
            f"rooms={sorted(self.rooms)} {state}>"
        )


class WebSocketHub:
    """Serve WebSocket clients and broadcast to them; a slow client can never stall the others.

    Mount ``hub.handler`` on a GET route. Each client gets a bounded queue (``queue_size``
    messages) and one sender task; messages reach each client in the order they were queued.

    Eviction: a client whose queue is full when a message is queued for it, or whose single send
    has not completed after ``send_timeout`` seconds, is evicted: removed from the hub at once (its
    queue is dropped, so its memory is bounded by ``queue_size`` messages plus the transport's
    buffer), then closed with 1008 (policy violation); if it has not taken the close frame within
    0.5 s its TCP connection is reset, dropping what the kernel still held for it. Any other close
    that the client does not complete within ``close_timeout`` seconds is reset the same way.
    ``on_disconnect`` runs exactly once for every client that was accepted, whichever way it
    left (closed, evicted, failed, or its handler cancelled at shutdown).

    Receiving: each text or binary message from a client is passed to ``on_message(conn, data)``,
    one at a time per client, in order. If ``on_message``, ``on_connect`` or ``on_disconnect``
    raises, the error is logged with the request id and that client is closed with 1011; the hub
    and the other clients carry on. A message over ``max_msg_size`` bytes closes the client with
    1009 (one of exactly ``max_msg_size`` bytes is accepted). ``heartbeat`` (seconds, ``None``
    for none) pings idle clients and drops those that do not answer.

    Shutdown: ``await hub.close()`` closes every client with 1001 (going away), refuses new ones
    with 503 and returns when all of them are gone. Apps made by ``create_app`` call it on
    shutdown; with a plain ``web.Application`` add ``app.on_shutdown.append(hub.on_shutdown)``.
    """

    def __init__(
        self,
        *,
        queue_size: int = 32,
        send_timeout: float = 5.0,
        heartbeat: float | None = 30.0,
        max_msg_size: int = 64 * 1024,
        close_timeout: float = 2.0,
        compress: bool = False,
        protocols: Iterable[str] = (),
        on_message: MessageCallback | None = None,
        on_connect: ConnectionCallback | None = None,
        on_disconnect: ConnectionCallback | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if not send_timeout > 0 or not close_timeout > 0:
            raise ValueError("send_timeout and close_timeout must be positive numbers of seconds")
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat must be positive or None, got {heartbeat!r}")
        self._queue_size = queue_size
        self._send_timeout = send_timeout
        self._heartbeat = heartbeat
        self._max_msg_size = max_msg_size
        self._close_timeout = close_timeout
        self._compress = compress
        self._protocols = tuple(protocols)
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect

        self._clients: set[HubConnection] = set()
        self._rooms: dict[str, set[HubConnection]] = {}
        self._handlers = ActiveHandlers()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._broadcasts = 0
        self._sent = 0
        self._received = 0
        self._evicted_full = 0
        self._evicted_timeout = 0
        self._errors = 0

    # -- public API -------------------------------------------------------------------------

    async def broadcast(
        self,
        data: str | bytes,
        *,
        room: str | None = None,
        exclude: HubConnection | None = None,
    ) -> int:
        """Queue ``data`` (str: a text frame, bytes: a binary frame) for every client, or for the
        clients in ``room``, except ``exclude``; returns how many clients it was queued for.

        Never waits on any client: it encodes the message once, appends it to each queue (evicting
        the clients whose queue is full) and yields to the event loop once, so a producer in a
        tight loop lets healthy clients keep up. After ``close()`` it queues nothing and
        returns 0.
        """
        frame = _encode(data)
        self._broadcasts += 1
        targets = self._clients if room is None else self._rooms.get(room, ())
        count = 0
        for client in tuple(targets):
            if client is not exclude and self._enqueue(client, frame):
                count += 1
        await asyncio.sleep(0)
        return count

    @property
    def connections(self) -> tuple[HubConnection, ...]:
        """The clients connected now (a snapshot)."""
        return tuple(self._clients)

    def room(self, name: str) -> tuple[HubConnection, ...]:
        """The clients in room ``name`` now (a snapshot; empty for an unknown room)."""
        return tuple(self._rooms.get(name, ()))

    def statistics(self) -> HubStatistics:
        """Counters and current sizes; cheap enough to call for every metrics scrape."""
        return HubStatistics(
            clients=len(self._clients),
            rooms=len(self._rooms),
            queued=sum(len(c._queue) for c in self._clients),
            broadcasts=self._broadcasts,
            sent=self._sent,
            received=self._received,
            evicted_full=self._evicted_full,
            evicted_timeout=self._evicted_timeout,
            errors=self._errors,
            closed=self._closed,
        )

    async def close(self) -> None:
        """Close every client with 1001 and refuse new ones; returns once all are gone, or
        ``close_timeout`` + 0.5 s at most.

        Idempotent. Each client's close is bounded by ``close_timeout`` (then its connection is
        reset); only ``on_disconnect`` callbacks can run longer, and they are not waited for past
        that bound (a server shutdown cancels them at its deadline).
        """
        self._closed = True
        for client in tuple(self._clients):
            self._finish(client, CLOSE_GOING_AWAY, "server shutting down")
        if not await self._handlers.wait_idle(self._close_timeout + 0.5):
            log.warning(
                "WebSocketHub.close(): %d handler(s) still running on_disconnect after %gs; "
                "not waiting for them",
                len(self._handlers),
                self._close_timeout + 0.5,
            )
        self._stop_sweeper()

    async def on_shutdown(self, app: web.Application) -> None:
        """``app.on_shutdown`` receiver that calls :meth:`close`."""
        await self.close()

    def __repr__(self) -> str:
        queued = sum(len(c._queue) for c in self._clients)
        evicted = self._evicted_full + self._evicted_timeout
        state = "closed" if self._closed else "open"
        return (
            f"<WebSocketHub clients={len(self._clients)} rooms={len(self._rooms)} "
            f"queued={queued} evicted={evicted} {state}>"
        )

    # -- the handler ------------------------------------------------------------------------

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: upgrade to WebSocket and serve this client until it goes.

        A method other than GET (HEAD included) gets a 405 problem, a GET that is not a
        WebSocket upgrade a 426 problem; after ``close()``, a 503.
        """
        require_get(request, "this WebSocket endpoint")
        if self._closed:
            raise HTTPProblem(
                503,
                detail="this WebSocket endpoint is shutting down: reconnect later",
                headers={"Retry-After": "1"},
            )
        ws = web.WebSocketResponse(
            timeout=self._close_timeout,
            heartbeat=self._heartbeat,
            # aiohttp refuses a message of exactly its limit: ours is on messages over it.
            max_msg_size=self._max_msg_size + 1 if self._max_msg_size else 0,
            compress=self._compress,
            protocols=self._protocols,
        )
        if not ws.can_prepare(request).ok:
            raise HTTPProblem(
                426,
                detail="this endpoint speaks WebSocket only: connect with a WebSocket client",
                headers={"Upgrade": "websocket"},
            )
        register_streams(request, self)
        await prepare_stream(request, ws)
        client = HubConnection(self, request, ws)
        self._handlers.started()
        try:
            await self._serve(client)
        finally:
            self._handlers.stopped()
        return ws

    async def _serve(self, client: HubConnection) -> None:
        self._clients.add(client)
        self._ensure_sweeper()
        sender: asyncio.Task[None] | None = None
        receiver: asyncio.Task[None] | None = None
        try:
            if self.on_connect is not None and not await self._call(client, self.on_connect):
                return
            if client.closed:
                return
            loop = asyncio.get_running_loop()
            sender = loop.create_task(self._send_loop(client))
            receiver = loop.create_task(self._receive_loop(client))
            sender.add_done_callback(lambda _: client._done.set())
            receiver.add_done_callback(lambda _: client._done.set())
            await client._done.wait()
        finally:
            self._forget(client)
            try:
                await self._stop_tasks(client, sender, receiver)
                await self._close_ws(client)
            finally:
                # Every path ends here once: evicted, closed, errored or cancelled (shutdown).
                if self.on_disconnect is not None:
                    await self._call(client, self.on_disconnect)

    async def _stop_tasks(
        self,
        client: HubConnection,
        sender: asyncio.Task[None] | None,
        receiver: asyncio.Task[None] | None,
    ) -> None:
        tasks = [t for t in (sender, receiver) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if client._pending is not None:
            client._pending.close()
            client._pending = None
        if receiver is not None and not receiver.cancelled() and receiver.exception() is not None:
            self._errors += 1
            self._log_error(client, "on_message", receiver.exception())
            if client._close_code is None or client._close_code == 1000:
                client._close_code, client._close_reason = CLOSE_ERROR, "internal error"

    async def _call(self, client: HubConnection, callback: ConnectionCallback) -> bool:
        try:
            await callback(client)
        except Exception as exc:
            self._errors += 1
            self._log_error(client, getattr(callback, "__name__", "callback"), exc)
            self._finish(client, CLOSE_ERROR, "internal error")
            return False
        return True

    def _log_error(self, client: HubConnection, where: str, exc: BaseException | None) -> None:
        log.error(
            "WebSocket %s failed for client %d (request id %s); closing it with 1011",
            where,
            client.id,
            client.request_id or "-",
            exc_info=exc,
            extra={"request_id": client.request_id},
        )

    async def _send_loop(self, client: HubConnection) -> None:
        """Finish a send that had to wait, then send what queued up meanwhile, in order."""
        queue, wakeup, ws = client._queue, client._wakeup, client.ws
        loop = asyncio.get_running_loop()
        while client._close_code is None:
            pending = client._pending
            if pending is not None:
                client._busy = True
                await pending
                client._pending = None
            elif queue:
                client._busy = True
                opcode, payload = queue.popleft()
                client._send_started = loop.time()
                await ws.send_frame(payload, opcode)
            else:
                client._busy = False
                wakeup.clear()
                await wakeup.wait()
                continue
            client._send_started = 0.0
            self._sent += 1

    async def _receive_loop(self, client: HubConnection) -> None:
        limit = self._max_msg_size if self._compress else 0
        async for message in client.ws:
            if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                if limit and _size(message.data) > limit:  # inflated by one byte too many
                    self._finish(client, CLOSE_TOO_BIG, "message too big")
                    return
                self._received += 1
                if self.on_message is not None:
                    await self.on_message(client, message.data)
            elif message.type is WSMsgType.ERROR:
                return

    async def _close_ws(self, client: HubConnection) -> None:
        """Close the WebSocket; a close that cannot finish in time aborts the TCP connection.

        An evicted client gets ``EVICTED_CLOSE_TIMEOUT`` at most: it is not reading, so waiting
        longer only holds its socket and buffers.
        """
        ws = client.ws
        code = client._close_code if client._close_code is not None else 1000
        limit = self._close_timeout
        if code == CLOSE_TOO_SLOW:
            limit = min(limit, EVICTED_CLOSE_TIMEOUT)
        clean = False
        try:
            if not ws.closed:
                async with asyncio.timeout(limit):
                    await ws.close(code=code, message=client._close_reason.encode("utf-8"))
            clean = True
        except asyncio.CancelledError:
            # Cancelling the sender task mid-send cancels aiohttp's drain waiter, which the
            # connection shares: the close then raises CancelledError although nobody cancelled
            # this task. Only a real cancellation of this task propagates.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if not clean:
                abort_connection(client.request)

    # -- bookkeeping ------------------------------------------------------------------------

    def _enqueue(self, client: HubConnection, frame: _Frame) -> bool:
        if client._close_code is not None:
            return False
        queue = client._queue
        if not queue and not client._busy and client._pending is None:
            return self._send_now(client, frame)
        if len(queue) >= self._queue_size:
            self._evicted_full += 1
            self._finish(client, CLOSE_TOO_SLOW, "too slow: send queue full")
            return False
        queue.append(frame)
        client._wakeup.set()
        return True

    def _send_now(self, client: HubConnection, frame: _Frame) -> bool:
        """Start the send right here; if it has to wait, its sender task finishes it."""
        opcode, payload = frame
        coro = client.ws.send_frame(payload, opcode)
        try:
            first = coro.send(None)
        except StopIteration:
            self._sent += 1
            return True
        except ConnectionError:
            self._finish(client, CLOSE_GOING_AWAY, "connection lost")
            return False
        client._pending = _Resume(coro, first)
        client._send_started = asyncio.get_running_loop().time()
        client._wakeup.set()
        return True

    def _finish(self, client: HubConnection, code: int, reason: str) -> None:
        """Start closing ``client``: it leaves the hub now, its task closes the socket."""
        if client._close_code is not None:
            return
        client._close_code, client._close_reason = code, reason
        self._forget(client)
        client._wakeup.set()
        client._done.set()
        if code == CLOSE_TOO_SLOW:
            log.info(
                "evicted WebSocket client %d (request id %s): %s",
                client.id,
                client.request_id or "-",
                reason,
                extra={"request_id": client.request_id},
            )

    def _forget(self, client: HubConnection) -> None:
        self._clients.discard(client)
        for room in tuple(client.rooms):
            self._leave(client, room)
        client._queue.clear()
        if not self._clients:
            self._stop_sweeper()

    def _join(self, client: HubConnection, room: str) -> None:
        self._rooms.setdefault(room, set()).add(client)
        client.rooms.add(room)

    def _leave(self, client: HubConnection, room: str) -> None:
        client.rooms.discard(room)
        members = self._rooms.get(room)
        if members is not None:
            members.discard(client)
            if not members:
                del self._rooms[room]

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        """Evict the clients whose current send has been stuck for over ``send_timeout``."""
        loop = asyncio.get_running_loop()
        interval = self._send_timeout / 4
        while self._clients:
            await asyncio.sleep(interval)
            limit = loop.time() - self._send_timeout
            for client in tuple(self._clients):
                if 0.0 < client._send_started < limit:
                    self._evicted_timeout += 1
                    self._finish(client, CLOSE_TOO_SLOW, "too slow: send timed out")
