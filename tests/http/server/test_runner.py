"""The server's run() and loopwise.run() build their loop in one place: the same loop choice,
the same errors for the same mistakes, and both are the home loop of run_sync()."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib.util
import os
import signal
import sys
import threading
import time
import urllib.request
import warnings

import aiohttp
import pytest
from aiohttp import web

import loopwise
from loopwise import ConfigError, UsageError
from loopwise.http.server import run as serve_app

from .conftest import SCENARIO_SERVER, SRC, scenario_server

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(not HAS_UVLOOP, reason="no uvloop")),
]


@pytest.mark.parametrize("loop", LOOPS)
async def test_run_sync_from_a_worker_thread_runs_on_the_servers_loop(loop: str) -> None:
    async with (
        scenario_server("bridge", f"loop={loop}", "shutdown_timeout=1") as server,
        aiohttp.ClientSession() as session,
        asyncio.timeout(30),
        session.get(f"{server.url}/bridge") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"same_loop": True}


async def idle() -> None:
    pass


def both_runners(uvloop: object) -> list[BaseException]:
    """What loopwise.run() and the server's run() raise for the same ``uvloop`` argument."""
    raised: list[BaseException] = []
    for start in (
        lambda: loopwise.run(idle(), uvloop=uvloop),  # type: ignore[arg-type]
        lambda: serve_app(web.Application(), "127.0.0.1", 0, uvloop=uvloop),  # type: ignore[arg-type]
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a coroutine left unawaited would warn
            with pytest.raises(Exception) as caught:
                start()
            gc.collect()
        raised.append(caught.value)
    return raised


def test_uvloop_required_but_missing_is_the_same_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    first, second = both_runners(True)
    assert isinstance(first, ConfigError)
    assert type(second) is type(first)
    assert str(second) == str(first)
    assert "pip install 'loopwise[uvloop]'" in str(first)


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_a_uvloop_argument_that_is_not_a_bool_or_none_is_the_same_type_error(bad: object) -> None:
    first, second = both_runners(bad)
    assert isinstance(first, TypeError)
    assert type(second) is type(first)
    assert "uvloop=" in str(first) and "uvloop=" in str(second)


async def test_both_runners_called_inside_a_running_loop_raise_usage_error() -> None:
    running = asyncio.get_running_loop()
    coro = idle()
    with pytest.raises(UsageError, match="inside a running event loop"):
        loopwise.run(coro)
    with pytest.raises(UsageError, match="inside a running event loop") as caught:
        serve_app(web.Application(), "127.0.0.1", 0)
    assert "await serve(" in str(caught.value)
    assert asyncio.get_running_loop() is running
    assert not running.is_closed()
    await asyncio.sleep(0)  # the test's own loop still works


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_the_startup_hooks_cleans_up_what_started(
    sig: signal.Signals, loop: str
) -> None:
    """A signal while a ``cleanup_ctx`` entry is still starting stops the startup: the entries
    that did start are exited and the process ends normally, as after a signal while serving."""
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, environ.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        SCENARIO_SERVER,
        "slow_start",
        "shutdown_timeout=1",
        f"loop={loop}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line == b"second context starting\n", line
        process.send_signal(sig)
        try:
            out, err = await asyncio.wait_for(process.communicate(), 10)
        except TimeoutError:
            raise AssertionError(f"still running 10 s after {sig.name} during startup") from None
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert b"first context exited" in out, (out, err)
    assert b"serving on" not in out
    assert process.returncode == 0, err.decode()


def test_run_from_a_thread_other_than_the_main_one_is_refused() -> None:
    """Signal handlers can only be installed in the main thread: without them nothing could
    ever stop the server, so run() refuses before it binds and points to serve()."""
    raised: list[BaseException] = []

    def start() -> None:
        try:
            serve_app(web.Application(), "127.0.0.1", 0, ready=None)
        except BaseException as error:  # handed to the test thread
            raised.append(error)

    worker = threading.Thread(target=start, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "run() serves from a non-main thread with no way to stop it"
    assert len(raised) == 1 and isinstance(raised[0], UsageError), raised
    assert "main thread" in str(raised[0]) and "serve(" in str(raised[0])


@pytest.mark.parametrize("loop", LOOPS)
def test_run_joins_its_worker_threads_before_returning_each_time(loop: str) -> None:
    """The loop's default executor (``asyncio.to_thread``) is shut down and its idle threads
    joined before run() returns, as asyncio.run() does: none is left over, run after run."""

    async def in_a_thread(request: web.Request) -> web.Response:
        await asyncio.to_thread(time.sleep, 0.01)
        return web.Response(text="done")

    clients: list[threading.Thread] = []

    def visit_then_stop(url: str) -> None:
        def visit() -> None:
            try:
                with urllib.request.urlopen(f"{url}/thread", timeout=10) as response:
                    assert response.read() == b"done"
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # run()'s handler: a graceful stop

        clients.append(threading.Thread(target=visit))
        clients[-1].start()

    before = set(threading.enumerate())
    for _ in range(2):
        app = web.Application()
        app.router.add_get("/thread", in_a_thread)
        serve_app(
            app, "127.0.0.1", 0, shutdown_timeout=1, uvloop=loop == "uvloop", ready=visit_then_stop
        )
        for client in clients:
            client.join(10)
        left = [thread.name for thread in set(threading.enumerate()) - before]
        assert left == [], f"threads left running after run() returned: {left}"


SET_AT_STARTUP: contextvars.ContextVar[str] = contextvars.ContextVar("set_at_startup")


def test_context_variables_set_by_a_startup_hook_reach_the_handlers() -> None:
    """The startup hooks run in the server task's own context (a signal during them cancels
    that task), so what they set is seen by the handlers, as with aiohttp's own runner."""

    async def remember(app: web.Application) -> None:
        SET_AT_STARTUP.set("from on_startup")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=SET_AT_STARTUP.get("unset"))

    seen: list[str] = []
    clients: list[threading.Thread] = []

    def visit_then_stop(url: str) -> None:
        def visit() -> None:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=10) as response:
                    seen.append(response.read().decode())
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # run()'s handler: a graceful stop

        clients.append(threading.Thread(target=visit))
        clients[-1].start()

    app = web.Application()
    app.on_startup.append(remember)
    app.router.add_get("/", answer)
    serve_app(app, "127.0.0.1", 0, shutdown_timeout=1, uvloop=False, ready=visit_then_stop)
    for client in clients:
        client.join(10)
    assert seen == ["from on_startup"]
