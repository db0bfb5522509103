"""The local aiohttp servers the HTTP tests talk to: real sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(
    routes: dict[str, Handler], *, hits: Counter[str] | None = None
) -> AsyncIterator[str]:
    """Serve ``routes`` (any method) on 127.0.0.1:0; yields the base URL, ``http://host:port``.

    ``hits``, when given, counts the requests that reached each path.
    """
    middlewares = []
    if hits is not None:
        counter = hits

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            counter[request.path] += 1
            return await handler(request)

        middlewares.append(count)
    app = web.Application(middlewares=middlewares)
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    # A handler whose client went away (a client timeout, a cancelled request) is cancelled, not
    # left running past the test: aiohttp's default lets it run on after the server is closed.
    async with running(app, shutdown_timeout=0.1, handler_cancellation=True) as url:
        yield url


@contextlib.asynccontextmanager
async def running(
    app: web.Application,
    *,
    shutdown_timeout: float = 5.0,
    port: int = 0,
    handler_cancellation: bool = False,
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port by default); yields the base URL; shuts down
    on exit."""
    runner = web.AppRunner(
        app,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        handler_cancellation=handler_cancellation,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving_with_hits(routes: dict[str, Handler]) -> AsyncIterator[tuple[str, Counter[str]]]:
    """:func:`serving`, yielding the base URL and the requests counted per path."""
    hits: Counter[str] = Counter()
    async with serving(routes, hits=hits) as url:
        yield url, hits
