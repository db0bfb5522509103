"""create_app, serve and run: an aiohttp app with the standard stack and a graceful shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

from loopwise._exceptions import UsageError
from loopwise.http.server._connections import GuardedSite, effective_max_connections
from loopwise.http.server._middlewares import standard_middlewares
from loopwise.http.server._origins import origin_middleware
from loopwise.http.server._streams import STREAMS_KEY, close_streams
from loopwise.patterns._run import home_context, loop_factory, refuse_running_loop

__all__ = ["create_app", "run", "serve"]

log = logging.getLogger("loopwise.http.server")

DEFAULT_CLIENT_MAX_SIZE = 1024**2
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_HEADER_TIMEOUT = 10.0


def create_app(
    *,
    middlewares: Iterable[Middleware] | None = None,
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
    allowed_origins: Iterable[str] | None = None,
) -> web.Application:
    """A ``web.Application`` wired for production.

    - ``middlewares``: default :func:`standard_middlewares` (request id, access log, problem+json
      errors, a 30 s deadline, all in one middleware), outermost first. Pass your own list to
      change or extend it, e.g. ``[*standard_middlewares(timeout=5), my_auth_middleware]``.
    - ``client_max_size``: the largest request body in bytes (default 1 MiB); a larger one is
      answered 413.
    - ``allowed_origins``: when given (e.g. ``["https://example.com"]``), WebSocket upgrades,
      event-stream requests and state-changing requests (POST, PUT, ...) that a browser sends
      from any other origin get a 403 problem (:func:`origin_middleware`, added innermost).
      ``None`` (the default) checks nothing.
    - On shutdown, every ``WebSocketHub`` and ``EventChannel`` that served this app is closed
      (WebSockets with 1001, event streams ended) before aiohttp waits for in-flight requests, so
      streams never hold the shutdown up.
    - Nothing else: no per-request signal, so the stack costs only its middlewares.

    Add routes, ``cleanup_ctx`` entries and ``web.AppKey`` state to it as to any aiohttp app.
    """
    stack = standard_middlewares() if middlewares is None else list(middlewares)
    if allowed_origins is not None:
        stack.append(origin_middleware(allowed_origins=allowed_origins))
    app = web.Application(middlewares=stack, client_max_size=client_max_size)
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
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set or SIGTERM/SIGINT arrives.

    Connection limits (``None`` turns one off): at most ``max_connections`` open connections
    (lowered to fit the descriptor limit); at the cap a new connection replaces the oldest one
    still waiting for its first request headers, else the oldest keep-alive one idle between
    requests, or is answered 503 with ``Retry-After: 1`` when every connection is busy, and a
    warning is logged. A connection whose first request headers have not arrived
    ``header_timeout`` seconds after it opened, or a later request's headers that long after
    its first byte, is answered 408 and closed. ``keepalive_timeout`` closes idle keep-alive
    connections.

    ``port=0`` picks a free port; ``ready(url)`` is called with the real address once the socket
    listens (default: print it). Shutdown order: stop accepting connections, close idle
    keep-alive connections, run ``on_shutdown`` (hubs and channels close their streams there),
    wait for in-flight requests until ``shutdown_timeout`` seconds after the stop and cancel what
    is left, then run ``on_cleanup`` and the ``cleanup_ctx`` exits in reverse order.

    Bounded: everything up to the cleanup ends within ``shutdown_timeout`` + 0.3 s whatever the
    handlers and callbacks do (an ``on_shutdown`` receiver still running at the deadline is
    cancelled; a handler that ignores its cancellation is left behind with a warning). A second
    SIGTERM/SIGINT during the shutdown stops it at once, cleanup included. If startup fails,
    what started is cleaned up and the error propagates; a signal (or ``stop``) during the
    startup hooks cancels them, cleans up what started and returns without serving.
    """
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=keepalive_timeout,
        access_log=None,
    )
    stop = asyncio.Event() if stop is None else stop
    forced = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    try:
        # Installed before the startup hooks run, so that a signal during them cancels the
        # startup and the cleanup_ctx entries already started are exited (not skipped).
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, _on_signal, stop, forced, sig)
                    signals.append(sig)
        if not await _unless_stopped(runner.setup(), stop):
            log.info("stopped during startup: cleaning up what started")
            return
        site = GuardedSite(
            runner,
            host,
            port,
            max_connections=effective_max_connections(max_connections),
            header_timeout=header_timeout,
        )
        await site.start()
        if ready is not None:
            address = runner.addresses[0]
            ready(_url(str(address[0]), int(address[1])))
        await stop.wait()
        log.info("shutting down: closing streams, waiting up to %gs for requests", shutdown_timeout)
    finally:
        try:
            await _shut_down(runner, shutdown_timeout, forced)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


async def _unless_stopped(step: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Await ``step`` in the current task (so the context variables it sets stay visible, as
    aiohttp's startup hooks' are to the handlers); True once it is done, False when ``stop`` is
    set first: ``step`` is then cancelled. Its errors and other cancellations propagate."""
    task = asyncio.current_task()
    assert task is not None
    starting = True

    def cancel_step(stopped: asyncio.Task[Literal[True]]) -> None:
        if starting and not stopped.cancelled():
            task.cancel()

    stopped = asyncio.ensure_future(stop.wait())
    stopped.add_done_callback(cancel_step)
    try:
        await step
    except asyncio.CancelledError:
        # Ours (the stop) and no other: stopped during startup.
        if stopped.done() and not stopped.cancelled() and task.uncancel() == 0:
            return False
        raise
    finally:
        starting = False
        stopped.cancel()
    return True


def _on_signal(stop: asyncio.Event, forced: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        log.warning("%s received again: stopping now, without waiting for the shutdown", sig.name)
        forced.set()
    else:
        log.info("%s received: shutting down", sig.name)
        stop.set()


async def _shut_down(runner: web.AppRunner, budget: float, forced: asyncio.Event) -> None:
    """``runner.cleanup()`` with a deadline; returns at once when ``forced`` is set."""
    steps = asyncio.ensure_future(_bounded_cleanup(runner, budget))
    waiter = asyncio.ensure_future(forced.wait())
    try:
        await asyncio.wait({steps, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not steps.done():
            steps.cancel()
            await asyncio.wait({steps}, timeout=_CANCEL_GRACE)
    if steps.done() and not steps.cancelled():
        error = steps.exception()
        if error is not None:
            raise error


# Time given to the handlers cancelled at the deadline to finish their ``finally`` blocks.
_CANCEL_GRACE = 0.3


async def _callbacks_already_scheduled(loop: asyncio.AbstractEventLoop) -> None:
    """Return once the loop has run every callback scheduled before this call (FIFO)."""
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


async def _bounded_cleanup(runner: web.AppRunner, budget: float) -> None:
    """What ``runner.cleanup()`` does, each step held to the deadline ``budget`` s from now."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is not None:
        # As aiohttp's own cleanup does: connections accepted before the sites stopped get their
        # handlers started first, so pre_shutdown() sees them as busy, not idle.
        await _callbacks_already_scheduled(loop)
        server.pre_shutdown()
        try:
            async with asyncio.timeout_at(deadline):
                await runner.shutdown()  # the on_shutdown signal
        except TimeoutError:
            log.warning("on_shutdown still running after %gs: cancelled it", budget)
        # aiohttp waits this long for the handlers, then waits as long again before it cancels
        # them (it also rounds a wait over 5 s up to a whole second of the loop's clock): so the
        # handlers still running at the deadline are cancelled here, before the cleanup.
        graceful = max(deadline - loop.time(), 0.001)
        closing = loop.create_task(server.shutdown(graceful - 1.0 if graceful > 5 else graceful))
        done, _ = await asyncio.wait({closing}, timeout=graceful)
        if not done:
            _cancel_handlers(server)
            done, _ = await asyncio.wait({closing}, timeout=_CANCEL_GRACE)
        if not done:
            log.warning(
                "request handlers still running %gs after their cancellation: left behind",
                _CANCEL_GRACE,
            )
    await runner.app.cleanup()


def _cancel_handlers(server: web.Server) -> None:
    """Cancel the request handlers still running on ``server``'s connections.

    Reads aiohttp's private ``_task_handler`` (what its own shutdown cancels, too late);
    without it, the handlers are left to aiohttp's second wait.
    """
    for connection in server.connections:
        handler = getattr(connection, "_task_handler", None)
        if isinstance(handler, asyncio.Future) and not handler.done():
            handler.cancel()


def run(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    shutdown_timeout: float = 10.0,
    uvloop: bool | None = None,
    ready: Callable[[str], object] | None = _announce,
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT,
) -> None:
    """Run ``app`` in a new event loop until SIGTERM or Ctrl+C, then shut down gracefully.

    Blocks; see :func:`serve` for the connection limits, the shutdown order, its bounds and
    ``ready``. The loop is chosen as :func:`loopwise.run` chooses it: ``uvloop=None`` uses
    uvloop when it is installed, ``True`` requires it (:class:`~loopwise.ConfigError` when
    missing), ``False`` never uses it; called inside a running loop it raises
    :class:`~loopwise.UsageError`, and so it does outside the main thread, where no signal could
    stop it (use :func:`serve` with ``stop=`` there). :func:`loopwise.run_sync` from worker threads
    (``asyncio.to_thread``) runs its coroutine on this loop. Returns
    normally after a signal, within ``shutdown_timeout`` + 1 s plus the ``cleanup_ctx`` exits:
    tasks still running then are cancelled and given a moment, never waited for, and so are the
    loop's worker threads (``asyncio.to_thread``): idle ones are joined, one still in a blocking
    call is named in a warning (Python waits for it before the process exits). Startup errors
    (port in use, a failing ``cleanup_ctx``) propagate.
    """
    refuse_running_loop(
        "loopwise.http.server.run()",
        "`await serve(app, ...)` there instead (the same server, without owning the loop)",
    )
    if threading.current_thread() is not threading.main_thread():
        raise UsageError(
            "loopwise.http.server.run() was called outside the main thread, where no signal "
            "handler can be installed and nothing could stop it: call it from the main thread, "
            "or run `await serve(app, ..., stop=event, handle_signals=False)` in that thread's "
            "loop and set `event` to stop it"
        )
    factory = loop_factory(uvloop)
    loop = factory() if factory is not None else asyncio.new_event_loop()
    workers = _WorkerThreads()
    loop.set_default_executor(workers.executor)
    asyncio.set_event_loop(loop)
    try:
        main = serve(
            app,
            host,
            port,
            shutdown_timeout=shutdown_timeout,
            ready=ready,
            max_connections=max_connections,
            header_timeout=header_timeout,
        )
        # run_sync() from worker threads finds this loop through the task's context
        loop.run_until_complete(home_context(loop).run(loop.create_task, main))
    finally:
        try:
            _drop_leftovers(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            workers.join(_LEFTOVER_GRACE)


# asyncio.Runner would wait without limit for tasks that ignore their cancellation.
_LEFTOVER_GRACE = 0.2


def _drop_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still running and give them ``_LEFTOVER_GRACE`` seconds to finish."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=_LEFTOVER_GRACE))
        stuck = sum(not task.done() for task in tasks)
        if stuck:
            log.warning("%d task(s) ignored their cancellation at exit: abandoned", stuck)
    loop.run_until_complete(_within(loop.shutdown_asyncgens(), _LEFTOVER_GRACE))


class _WorkerThreads:
    """The loop's default executor (``asyncio.to_thread``, ``run_in_executor(None, ...)``),
    whose threads run() joins before it returns, as :func:`asyncio.run` does, but for a bounded
    time: a thread still in a blocking call is named in a warning, never waited for (Python
    itself waits for it before the process exits)."""

    def __init__(self) -> None:
        self.prefix = f"loopwise-server-{id(self):x}"
        self.executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix=self.prefix)

    def join(self, seconds: float) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + seconds
        mine = [t for t in threading.enumerate() if t.name.startswith(f"{self.prefix}_")]
        for thread in mine:
            thread.join(max(deadline - time.monotonic(), 0.0))
        busy = [thread.name for thread in mine if thread.is_alive()]
        if busy:
            log.warning(
                "%d worker thread(s) still in a blocking call (asyncio.to_thread or "
                "run_in_executor) after the shutdown: %s; the process exits only once they end",
                len(busy),
                ", ".join(busy),
            )


async def _within(step: Coroutine[Any, Any, None], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(step, seconds)
