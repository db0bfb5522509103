"""MockTransport: answer a :class:`~loopwise.http.Client`'s requests in-process, for tests.

The answers come from a real aiohttp server on a Unix socket in a private temporary directory,
reached through :class:`aiohttp.UnixConnector` (which every URL, ``https`` included, is sent to
as plain HTTP). So the client runs exactly its production code — pool limits, keep-alive,
redirects, timeouts, retries, the rate-limit middleware, error mapping — with no port, no DNS
and no certificate. Faking :class:`aiohttp.ClientResponse` objects instead would skip the very
code whose guarantees a test of a client wants to rely on.
"""

from __future__ import annotations

import asyncio
import itertools
import json as _json
import os
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiohttp import web
from yarl import URL

from loopwise._exceptions import UsageError

__all__ = ["MockRoute", "MockTransport", "RecordedRequest"]

MockHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
URL_HEADER: Final = "X-Loopwise-Mock-Url"
"""Carries the URL the client sent the request to (its scheme included) to the mock server."""
KEY_HEADER: Final = "X-Loopwise-Mock-Key"
"""Names the request, so that a handler's exception is raised from the request it answers."""
UNMATCHED_STATUS: Final = 501


class _NoJSON:
    __slots__ = ()

    def __repr__(self) -> str:
        return "no JSON"


_NO_JSON: Final[Any] = _NoJSON()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the :class:`MockTransport` received, as it came over the wire."""

    method: str
    url: URL
    """The URL the client sent it to (scheme, host, port, path and query)."""
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()


@dataclass(slots=True, eq=False)
class MockRoute:
    """One route of a :class:`MockTransport` (returned by :meth:`MockTransport.add`)."""

    method: str
    url: URL
    handler: MockHandler
    times: int | None
    calls: list[RecordedRequest] = field(default_factory=list)
    """The requests this route answered, in order."""

    def matches(self, method: str, url: URL) -> bool:
        if self.times is not None and len(self.calls) >= self.times:
            return False
        if self.method != "*" and self.method != method:
            return False
        route = self.url
        if route.absolute and (route.scheme, route.host, route.port) != (
            url.scheme,
            url.host,
            url.port,
        ):
            return False
        if route.path != url.path:
            return False
        return all(url.query.getall(key, []).count(value) for key, value in route.query.items())

    def __repr__(self) -> str:
        times = "" if self.times is None else f" times={self.times}"
        return f"<MockRoute {self.method} {self.url}{times} calls={len(self.calls)}>"


class MockTransport:
    """Routes that answer a :class:`~loopwise.http.Client`'s requests without a network::

        mock = MockTransport()
        mock.add("GET", "https://api.example.com/v1/users/42", json={"id": 42})
        async with Client("https://api.example.com/v1/", transport=mock) as client:
            assert await client.get_json("users/42") == {"id": 42}
        assert mock.requests[0].url.path == "/v1/users/42"

    A request is answered by the first route, in the order added, whose method, URL (scheme,
    host and port when the route's URL is absolute; path; the route's query parameters) match
    and whose ``times`` is not used up. A request no route matches is answered ``501`` with a
    body naming it and the routes (so ``raise_for_status`` reports it), and kept in
    :attr:`unmatched`. Every request is kept in :attr:`requests`, in arrival order.

    An exception a route's handler raises (any, ``BaseException`` included, except aiohttp's
    ``web.HTTPException`` answers) is raised from the request it answers, in the code that sent
    it, and that request is not retried; a handler that fails after it started its answer (a
    ``StreamResponse`` already prepared) cuts the body instead (the client sees a
    :class:`TransportError`).

    One transport may serve several clients, one after the other or at once, in one event loop
    at a time (a module-level transport serves tests that each run their own loop); it runs
    while one of them is open, and is stopped whole when the last one closes, even when that
    close is cancelled. POSIX only (it needs Unix sockets).
    """

    def __init__(self) -> None:
        self.routes: list[MockRoute] = []
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order."""
        self.unmatched: list[RecordedRequest] = []
        """The requests no route matched (answered 501)."""
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._directory: str | None = None
        self._keys = itertools.count()
        self._failures: dict[str, BaseException] = {}
        self._senders: set[str] = set()  # keys of the requests whose sender awaits the answer

    def add(
        self,
        method: str,
        url: str | URL,
        *,
        status: int = 200,
        json: Any = _NO_JSON,
        text: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        handler: MockHandler | None = None,
        times: int | None = None,
    ) -> MockRoute:
        """Add a route: ``method`` (``"*"``: any) and ``url`` (absolute, or a path matching any
        host) answered with ``status`` and one of ``json``, ``text`` or ``body`` (default: no
        body) plus ``headers``, or by ``handler``, an aiohttp handler given the real
        :class:`aiohttp.web.Request`. With ``times``, the route answers that many requests and
        then no longer matches: add ``times=1`` routes first for a sequence (a 503, then a 200).
        """
        given = [name for name, v in (("text", text), ("body", body)) if v is not None]
        if json is not _NO_JSON:
            given.append("json")
        if handler is not None:
            given.append("handler")
        if len(given) > 1:
            raise ValueError(f"give one of json, text, body or handler, not {' and '.join(given)}")
        if handler is not None and (status != 200 or headers is not None):
            raise ValueError("a handler makes the whole answer: drop status and headers")
        if times is not None and (isinstance(times, bool) or times < 1):
            raise ValueError(f"times must be an int >= 1 or None (no limit), got {times!r}")
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status (100-599), got {status!r}")
        route_url = URL(url)
        if not route_url.absolute and not route_url.path.startswith("/"):
            raise ValueError(f"url must be absolute or a path starting with '/', got {str(url)!r}")
        if handler is None:
            handler = _static(status, json, text, body, headers)
        route = MockRoute(method.upper(), route_url, handler, times)
        self.routes.append(route)
        return route

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "idle"
        return (
            f"<MockTransport {state} routes={len(self.routes)} requests={len(self.requests)} "
            f"unmatched={len(self.unmatched)}>"
        )

    # -- used by Client -------------------------------------------------------------------------

    async def _connector(self, limit: int, limit_per_host: int) -> aiohttp.BaseConnector:
        """Start serving (first user) and return a connector to the server."""
        if not hasattr(socket, "AF_UNIX"):
            raise UsageError("MockTransport needs Unix sockets: it runs on Linux and macOS")
        async with self._lock_in_this_loop():
            if self._runner is None:
                # One mkdir in the temp dir, once per transport.
                directory = tempfile.mkdtemp(prefix="loopwise-mock-")  # noqa: LW018
                app = web.Application(client_max_size=64 * 1024 * 1024)
                app.router.add_route("*", "/{tail:.*}", self._dispatch)
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
                try:
                    # To the end: a cancellation inside asyncio's create_unix_server would lose
                    # the listening socket it has just opened.
                    await _to_the_end(_start(runner, os.path.join(directory, "http.sock")))
                except BaseException:
                    await _to_the_end(_stop(runner, directory))
                    raise
                self._runner, self._directory = runner, directory
            self._users += 1
            assert self._directory is not None
            return aiohttp.UnixConnector(
                os.path.join(self._directory, "http.sock"),
                limit=limit,
                limit_per_host=limit_per_host,
            )

    def _lock_in_this_loop(self) -> asyncio.Lock:
        """The lock that orders starting and stopping, made anew in each event loop (a transport
        may serve tests that each run their own loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._users:
                raise UsageError(
                    "this MockTransport is serving clients in another event loop: close them "
                    "first, or give each event loop its own MockTransport"
                )
            self._loop, self._lock = loop, asyncio.Lock()
        return self._lock

    async def _release(self) -> None:
        """A client closed: stop serving after the last one."""
        async with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            runner, self._runner = self._runner, None
            directory, self._directory = self._directory, None
            if runner is not None and directory is not None:
                await _to_the_end(_stop(runner, directory))

    async def _tag(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Client middleware: tell the server the URL (the socket loses the scheme) and raise a
        handler's exception from the request it answered."""
        key = str(next(self._keys))
        request.headers[URL_HEADER] = str(request.url)
        request.headers[KEY_HEADER] = key
        self._senders.add(key)
        try:
            try:
                response = await handler(request)
            finally:
                self._senders.discard(key)
                failure = self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except BaseException:
            if failure is None:
                raise
            raise failure from None
        if failure is not None:
            response.close()
            raise failure
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k not in (URL_HEADER, KEY_HEADER)}
        sent_to = request.headers.get(URL_HEADER)
        url = URL(sent_to) if sent_to else request.url
        recorded = RecordedRequest(request.method, url, headers, await request.read())
        self.requests.append(recorded)
        for route in self.routes:
            if route.matches(request.method, url):
                route.calls.append(recorded)
                return await self._answer(route, request)
        self.unmatched.append(recorded)
        known = "; ".join(f"{r.method} {r.url}" for r in self.routes) or "none"
        return web.Response(
            status=UNMATCHED_STATUS,
            text=f"MockTransport: no route for {request.method} {url} (routes: {known})",
        )

    async def _answer(self, route: MockRoute, request: web.Request) -> web.StreamResponse:
        """The route's answer; its handler's exception goes to the request's sender."""
        try:
            answer = await route.handler(request)
            if not isinstance(answer, web.StreamResponse):
                raise TypeError(
                    f"the handler of {route!r} returned {answer!r}, not an "
                    "aiohttp.web.StreamResponse (return web.Response(...) or "
                    "web.json_response(...))"
                )
            return answer
        except (web.HTTPException, asyncio.CancelledError):
            raise  # an answer, or the server stopping
        except BaseException as exc:
            key = request.headers.get(KEY_HEADER)
            if key not in self._senders or request.writer.output_size > 0:
                # Its sender gave up waiting, or the answer has started (only cutting the
                # connection can tell the client): aiohttp logs it.
                raise RuntimeError(f"the handler of {route!r} raised {exc!r}") from exc
            self._failures[key] = exc
            return web.Response(status=500, text=f"MockTransport: the handler raised {exc!r}")


async def _start(runner: web.AppRunner, path: str) -> None:
    await runner.setup()
    await web.UnixSite(runner, path).start()


async def _stop(runner: web.AppRunner, directory: str) -> None:
    try:
        await runner.cleanup()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _to_the_end(cleanup: Awaitable[None]) -> None:
    """Await ``cleanup`` to its end even when the caller is cancelled meanwhile (then re-raise
    the cancellation): a half-stopped server would leak its sockets and directory."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while True:
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():  # the cleanup itself was cancelled, or ended as we were
                cancelled = not task.cancelled()
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()


def _static(
    status: int,
    json: Any,
    text: str | None,
    body: bytes | None,
    headers: Mapping[str, str] | None,
) -> MockHandler:
    async def answer(request: web.Request) -> web.StreamResponse:
        if json is not _NO_JSON:
            return web.json_response(json, status=status, headers=headers)
        if text is not None:
            return web.Response(status=status, text=text, headers=headers)
        return web.Response(status=status, body=body, headers=headers)

    return answer
