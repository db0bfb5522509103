"""Shutdown keeps its promise against handlers and callbacks that do not: a server process ends
within shutdown_timeout + 1 s of SIGTERM, and a second signal ends it at once."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from .conftest import ServerProcess, scenario_server


async def occupy(
    server: ServerProcess, session: aiohttp.ClientSession
) -> list[asyncio.Task[object]]:
    """A WebSocket client (its on_disconnect sleeps a minute) and requests whose handlers
    swallow their cancellation; returns once the server holds them."""
    ws = await session.ws_connect(f"{server.url}/ws")

    async def forever() -> object:
        async with session.get(f"{server.url}/forever") as response:
            return await response.read()

    tasks: list[asyncio.Task[object]] = [asyncio.create_task(forever()) for _ in range(3)]
    tasks.append(asyncio.create_task(ws.receive()))
    await asyncio.sleep(0.5)  # the requests reach their handlers
    return tasks


async def settle(tasks: list[asyncio.Task[object]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def exit_time(server: ServerProcess, seconds: float) -> float:
    """Seconds from now until the server process exits; fails (and kills it) after ``seconds``."""
    start = time.monotonic()
    try:
        await asyncio.wait_for(server.process.wait(), seconds)
    except TimeoutError:
        raise AssertionError(f"the server still runs {seconds:g} s after the signal") from None
    return time.monotonic() - start


@pytest.mark.parametrize("shutdown_timeout", [1.0, 3.0])
async def test_sigterm_ends_within_shutdown_timeout_plus_one_second(
    shutdown_timeout: float,
) -> None:
    async with (
        scenario_server("stubborn", f"shutdown_timeout={shutdown_timeout}") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        tasks = await occupy(server, session)
        try:
            server.process.send_signal(signal.SIGTERM)
            elapsed = await exit_time(server, shutdown_timeout + 10)
            print(f"shutdown_timeout={shutdown_timeout}: exited {elapsed:.2f} s after SIGTERM")
        finally:
            await settle(tasks)
    assert server.process.returncode == 0
    # The promise is + 1 s; the rest is a margin for process start-up noise on a busy machine.
    assert elapsed < shutdown_timeout + 1.5


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_signal_ends_the_shutdown_at_once(second: signal.Signals) -> None:
    async with (
        scenario_server("stubborn", "shutdown_timeout=30") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        tasks = await occupy(server, session)
        try:
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert server.process.returncode is None  # still waiting for the stubborn handlers
            server.process.send_signal(second)
            elapsed = await exit_time(server, 10)
            print(f"second {second.name}: exited {elapsed:.2f} s after it")
        finally:
            await settle(tasks)
    assert elapsed < 1.5


async def test_a_slow_on_disconnect_does_not_hold_up_the_shutdown() -> None:
    """Closing the hub is bounded by its close_timeout, not by its on_disconnect callbacks: the
    app's own on_shutdown receivers still run and an in-flight request still finishes."""
    async with (
        scenario_server("stubborn", "shutdown_timeout=5") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        ws = await session.ws_connect(f"{server.url}/ws")
        slow = asyncio.create_task(session.get(f"{server.url}/slow"))
        await asyncio.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        response = await asyncio.wait_for(slow, 10)
        assert (response.status, await response.text()) == (200, "done")
        await exit_time(server, 10)
        await ws.close()
        assert server.process.stdout is not None
        assert b"on_shutdown ran" in await server.process.stdout.read()


async def test_an_on_disconnect_deaf_to_cancellation_does_not_hold_up_the_exit() -> None:
    async with (
        scenario_server("stubborn", "shutdown_timeout=1", "deaf_goodbye=1") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        tasks = await occupy(server, session)
        try:
            server.process.send_signal(signal.SIGTERM)
            elapsed = await exit_time(server, 15)
            print(f"deaf on_disconnect: exited {elapsed:.2f} s after SIGTERM")
        finally:
            await settle(tasks)
        assert server.process.stderr is not None
        errors = (await server.process.stderr.read()).decode()
    assert server.process.returncode == 0, errors
    assert elapsed < 2.5, errors
    assert "Traceback" not in errors, errors


async def test_sys_exit_in_a_handler_ends_the_process_with_its_status() -> None:
    """SystemExit is not swallowed into a 500 problem: it is logged and stops run() at once."""
    async with scenario_server("hello") as server:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{server.url}/exit?status=3") as response:
                    await response.read()
        assert await exit_time(server, 10) < 10
        assert server.process.stderr is not None
        errors = (await server.process.stderr.read()).decode()
    assert server.process.returncode == 3, errors
    assert "GET /exit (request id" in errors and "raised SystemExit" in errors, errors


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_request_still_running_at_the_deadline_is_cancelled_before_the_cleanup(
    loop: str,
) -> None:
    """At ``shutdown_timeout`` an in-flight handler is cancelled, and it has ended before the
    ``cleanup_ctx`` exits run (they may close what it uses)."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    async with (
        scenario_server("overtime", "shutdown_timeout=1", f"loop={loop}") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        assert server.process.stdout is not None
        request = asyncio.ensure_future(session.get(f"{server.url}/long"))
        try:
            line = await asyncio.wait_for(server.process.stdout.readline(), 10)
            assert line == b"long request started\n"
            server.process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(server.process.communicate(), 10)
        finally:
            request.cancel()
            await asyncio.wait({request})
    lines = out.decode().splitlines()
    assert "long request cancelled" in lines, (lines, err)
    assert lines.index("long request cancelled") < lines.index("cleanup_ctx exited"), lines
    assert b"left behind" not in err
    assert server.process.returncode == 0
