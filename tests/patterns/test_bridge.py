"""LoopThread and run_sync: results, errors, timeouts, context variables, the deadlock guard."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Iterator

import pytest

import loopwise
from loopwise import ClosedError, LoopThread, UsageError, run_sync

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def fail() -> None:
    await asyncio.sleep(0)
    raise KeyError("from the loop")


async def current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def read_var() -> tuple[str, int]:
    return request_id.get(), threading.get_ident()


@pytest.fixture
def portal() -> Iterator[LoopThread]:
    with LoopThread(name="test-portal") as p:
        yield p


def test_call_returns_the_result_and_raises_the_exception(portal: LoopThread) -> None:
    assert portal.call(add, 2, 3) == 5
    with pytest.raises(KeyError, match="from the loop"):
        portal.call(fail)
    assert portal.statistics().calls == 2 and portal.statistics().pending == 0


def test_call_runs_on_the_portal_thread_with_the_callers_context(portal: LoopThread) -> None:
    token = request_id.set("req-42")
    try:
        value, thread_id = portal.call(read_var)
    finally:
        request_id.reset(token)
    assert value == "req-42"
    assert thread_id != threading.get_ident()
    assert portal.call(read_var)[0] == "-"


def test_timeout_cancels_the_coroutine_and_waits_for_it(portal: LoopThread) -> None:
    cleaned_up = threading.Event()

    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.05s"):
        portal.call(hang, timeout=0.05)
    assert cleaned_up.is_set()  # call() returned only after the coroutine finished
    assert portal.statistics().pending == 0


def test_submit_returns_a_future_whose_cancel_cancels_the_coroutine(portal: LoopThread) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = portal.submit(hang)
    assert started.wait(5)
    future.cancel()
    assert cancelled.wait(5)
    assert portal.submit(add, 1, 1).result(5) == 2


def test_call_from_the_portals_own_thread_raises_instead_of_deadlocking(
    portal: LoopThread,
) -> None:
    async def nested() -> int:
        return portal.call(add, 1, 2)

    with pytest.raises(UsageError, match="would deadlock"):
        portal.call(nested)


def test_close_cancels_running_calls_and_refuses_new_ones() -> None:
    portal = LoopThread()
    started = threading.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    future = portal.submit(hang)
    assert started.wait(5)
    portal.close()
    assert future.cancelled()
    with pytest.raises(ClosedError):
        portal.call(add, 1, 2)
    portal.close()  # idempotent
    assert repr(portal).startswith("<LoopThread loopwise-loop closed")


def test_call_blocked_when_the_portal_closes_gets_closed_error() -> None:
    portal = LoopThread()
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            portal.call(asyncio.sleep, 3600)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=caller)
    portal.start()
    thread.start()
    while portal.statistics().pending == 0:
        threading.Event().wait(0.001)
    portal.close()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], ClosedError)


def test_loop_factory_is_used() -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        made.append(loop)
        return loop

    with LoopThread(loop_factory=factory) as portal:
        assert portal.loop is made[0]
        assert portal.call(add, 1, 1) == 2
    assert made[0].is_closed()


@pytest.fixture
def shared_portal_closed_after() -> Iterator[None]:
    yield
    from loopwise.patterns import _bridge

    if _bridge._shared is not None:
        _bridge._shared.close()  # leave no thread behind for other tests


@pytest.mark.usefixtures("shared_portal_closed_after")
def test_run_sync_from_plain_sync_code() -> None:
    token = request_id.set("sync-caller")
    try:
        assert run_sync(add, 20, 22) == 42
        assert run_sync(read_var)[0] == "sync-caller"
    finally:
        request_id.reset(token)
    with pytest.raises(KeyError):
        run_sync(fail)
    # one shared loop for the process: loop-bound objects survive between calls
    assert run_sync(current_loop) is run_sync(current_loop)


async def test_run_sync_on_the_loop_thread_raises_a_clear_error() -> None:
    coroutine_started = False

    async def never() -> None:
        nonlocal coroutine_started
        coroutine_started = True

    with pytest.raises(UsageError) as info:
        run_sync(never)
    message = str(info.value)
    assert "deadlock" in message and "asyncio.to_thread" in message and "await" in message
    assert not coroutine_started


def test_run_sync_from_a_worker_thread_runs_on_the_callers_loop() -> None:
    async def main() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop, str]:
        request_id.set("from-main")

        def blocking_code() -> tuple[asyncio.AbstractEventLoop, str]:
            loop = run_sync(current_loop)
            return loop, run_sync(read_var)[0]

        worker_loop, value = await asyncio.to_thread(blocking_code)
        return asyncio.get_running_loop(), worker_loop, value

    main_loop, worker_loop, value = loopwise.run(main(), uvloop=False)
    assert worker_loop is main_loop
    assert value == "from-main"


def test_run_sync_inside_a_loop_thread_worker_uses_that_loop(portal: LoopThread) -> None:
    async def on_portal() -> bool:
        loop = await asyncio.to_thread(run_sync, current_loop)
        return loop is asyncio.get_running_loop()

    assert portal.call(on_portal)


def test_non_coroutine_function_is_a_type_error(portal: LoopThread) -> None:
    def not_async() -> int:
        return 1

    with pytest.raises(TypeError, match="must be an async function"):
        portal.call(not_async)  # type: ignore[arg-type]


def test_future_types() -> None:
    with LoopThread() as portal:
        future = portal.submit(add, 1, 2)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(5) == 3
