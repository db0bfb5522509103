"""create_app, serve and run: an aiohttp app with the standard stack and a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from loopwise.http.server._middlewares import standard_middlewares
from loopwise.http.server._streams import STREAMS_KEY, close_streams

__all__ = ["create_app", "run", "serve"]

log = logging.getLogger("loopwise.http.server")

DEFAULT_CLIENT_MAX_SIZE = 1024**2


def create_app(
    *,
    middlewares: Iterable[Middleware] | None = None,
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
) -> web.Application:
    """A ``web.Application`` wired for production.

    - ``middlewares``: default :func:`standard_middlewares` (request id, access log, problem+json
      errors, a 30 s deadline, all in one middleware), outermost first. Pass your own list to
      change or extend it, e.g. ``[*standard_middlewares(timeout=5), my_auth_middleware]``.
    - ``client_max_size``: the largest request body in bytes (default 1 MiB); a larger one is
      answered 413.
    - On shutdown, every ``WebSocketHub`` and ``EventChannel`` that served this app is closed
      (WebSockets with 1001, event streams ended) before aiohttp waits for in-flight requests, so
      streams never hold the shutdown up.
    - Nothing else: no per-request signal, so the stack costs only its middlewares.

    Add routes, ``cleanup_ctx`` entries and ``web.AppKey`` state to it as to any aiohttp app.
    """
    app = web.Application(
        middlewares=standard_middlewares() if middlewares is None else list(middlewares),
        client_max_size=client_max_size,
    )
    app[STREAMS_KEY] = set()
    app.on_shutdown.append(close_streams)
    return app


def _announce(url: str) -> None:
    print(f"loopwise: serving on {url} (Ctrl+C or SIGTERM stops it)", flush=True)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    shutdown_timeout: float = 10.0,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    ready: Callable[[str], object] | None = _announce,
    keepalive_timeout: float = 75.0,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set or SIGTERM/SIGINT arrives.

    ``port=0`` picks a free port; ``ready(url)`` is called with the real address once the socket
    listens (default: print it). Shutdown order: stop accepting connections, close idle
    keep-alive connections, run ``on_shutdown`` (hubs and channels close their streams there),
    wait up to ``shutdown_timeout`` seconds for in-flight requests and cancel what is left, then
    run ``on_cleanup`` and the ``cleanup_ctx`` exits in reverse order. Signals after the first
    are ignored (the wait is already bounded). If startup fails, what started is cleaned up and
    the error propagates.
    """
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=keepalive_timeout,
        access_log=None,
    )
    await runner.setup()
    stop = asyncio.Event() if stop is None else stop
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, _on_signal, stop, sig)
                    signals.append(sig)
        if ready is not None:
            address = runner.addresses[0]
            ready(_url(str(address[0]), int(address[1])))
        await stop.wait()
        log.info("shutting down: closing streams, waiting up to %gs for requests", shutdown_timeout)
    finally:
        await runner.cleanup()
        for sig in signals:
            loop.remove_signal_handler(sig)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        log.warning("%s received again: already shutting down", sig.name)
    else:
        log.info("%s received: shutting down", sig.name)
        stop.set()


def _loop_factory(use_uvloop: bool | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if use_uvloop is False:
        return None
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            raise RuntimeError(
                "uvloop=True but uvloop is not installed: pip install 'loopwise[uvloop]' "
                "or pass uvloop=None to use it only when available"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    shutdown_timeout: float = 10.0,
    uvloop: bool | None = None,
    ready: Callable[[str], object] | None = _announce,
) -> None:
    """Run ``app`` in a new event loop until SIGTERM or Ctrl+C, then shut down gracefully.

    Blocks; see :func:`serve` for the shutdown order and ``ready``. ``uvloop=None`` uses uvloop
    when it is installed, ``True`` requires it, ``False`` never uses it. Returns normally after a
    signal; startup errors (port in use, a failing ``cleanup_ctx``) propagate.
    """
    with asyncio.Runner(loop_factory=_loop_factory(uvloop)) as runner:
        runner.run(serve(app, host, port, shutdown_timeout=shutdown_timeout, ready=ready))
