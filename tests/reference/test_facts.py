"""Facts the reference states that no code block of it can show, checked against the installed
libraries, with the source of each in a comment.

Run on every Python the CI has (3.11, 3.12, 3.13): each test asserts what that Python and the
installed aiohttp/uvloop do, and that the reference says the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import re
import sys
import tracemalloc
import warnings

import aiohttp
import pytest
from aiohttp import web

from loopwise.http import IDEMPOTENT_METHODS, RETRY_STATUSES
from tests.reference._blocks import REFERENCES

ASYNCIO_MD = (REFERENCES / "asyncio.md").read_text(encoding="utf-8")
AIOHTTP_MD = (REFERENCES / "aiohttp.md").read_text(encoding="utf-8")


def prose(text: str) -> str:
    """Markdown without its line breaks, so a phrase can be searched across lines."""
    return re.sub(r"\s+", " ", text)


def test_websocket_sends_wait_per_writer_limit_as_the_reference_says() -> None:
    # aiohttp 3.14: web_ws.WebSocketResponse(writer_limit=DEFAULT_CHUNK_SIZE), and
    # helpers.DEFAULT_CHUNK_SIZE = 2**18; aiohttp 3.13: writer_limit=DEFAULT_LIMIT, with
    # _websocket/writer.py DEFAULT_LIMIT = 2**16. In both, WebSocketWriter.send_frame calls
    # protocol._drain_helper() only when protocol._paused (the transport above its high-water
    # mark): a send never waits on a client that keeps up.
    default = inspect.signature(web.WebSocketResponse).parameters["writer_limit"].default
    major, minor = (int(part) for part in aiohttp.__version__.split(".")[:2])
    assert default == (2**18 if (major, minor) >= (3, 14) else 2**16)
    assert "256 KiB from aiohttp 3.14, 64 KiB before" in prose(AIOHTTP_MD)
    assert "waits while the transport is paused above its high-water mark" in prose(AIOHTTP_MD)


def test_the_retry_rules_are_loopwises_and_match_its_defaults() -> None:
    # urllib3 2.x, util/retry.py: Retry.DEFAULT_ALLOWED_METHODS = {HEAD, GET, PUT, DELETE,
    # OPTIONS, TRACE}; status_forcelist defaults to None (no status is retried);
    # RETRY_AFTER_STATUS_CODES = {413, 429, 503}. So the method list is urllib3's and the
    # status list is loopwise's own choice.
    text = prose(AIOHTTP_MD)
    assert "The rules below are loopwise's choice" in text
    assert "urllib3 retries no status by default" in text
    assert "`Retry-After` on 413, 429, 503" in text
    assert "(GET, HEAD, PUT, DELETE, OPTIONS, TRACE)" in text
    assert {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"} == IDEMPOTENT_METHODS
    assert "**Statuses** 429, 502, 503, 504 are retried" in text
    assert {429, 502, 503, 504} == RETRY_STATUSES
    assert "urllib3's rules" not in text


def test_uvloop_install_is_deprecated_from_python_3_12() -> None:
    # uvloop 0.21+, uvloop/__init__.py: install() warns "uvloop.install() is deprecated in
    # favor of uvloop.run() starting with Python 3.12"; install and EventLoopPolicy are gone
    # on 3.16.
    uvloop = pytest.importorskip("uvloop")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uvloop.install()
    asyncio.set_event_loop_policy(None)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert bool(deprecations) == (sys.version_info >= (3, 12)), [str(w.message) for w in caught]
    assert "`install()` warns from Python 3.12" in prose(ASYNCIO_MD)


def test_the_default_executor_size_is_the_one_the_reference_gives() -> None:
    # concurrent.futures.ThreadPoolExecutor: max_workers defaults to min(32, cpu + 4), cpu
    # being os.cpu_count() up to 3.12 and os.process_cpu_count() from 3.13; to_thread() runs in
    # the loop's default executor, a ThreadPoolExecutor made with that default.
    count = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    with concurrent.futures.ThreadPoolExecutor() as pool:
        assert pool._max_workers == min(32, count + 4)
    assert "`min(32, cpu_count + 4)` threads (`os.process_cpu_count()` from 3.13)" in prose(
        ASYNCIO_MD
    )


def test_a_task_and_a_coroutine_weigh_what_the_reference_says() -> None:
    # Measured with tracemalloc: 3.11.7, 3.12.1, 3.13.0 give ~200 B per coroutine and
    # 770-830 B per task waiting on a future (the task, its coroutine and its wake-up
    # callback). The reference rounds to ~0.8 KB and ~0.2 KB.
    async def waiting(future: asyncio.Future[None]) -> None:
        await future

    async def measure() -> tuple[float, float]:
        count = 2_000
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            coroutines = [waiting(future) for _ in range(count)]
            after_coroutines = tracemalloc.get_traced_memory()[0]
            tasks = [asyncio.ensure_future(c) for c in coroutines]
            await asyncio.sleep(0)  # every task has started and waits on the future
            after_tasks = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        future.set_result(None)
        await asyncio.gather(*tasks)
        return (after_coroutines - before) / count, (after_tasks - before) / count

    per_coroutine, per_task = asyncio.run(measure())
    assert 100 <= per_coroutine <= 350, per_coroutine
    assert 500 <= per_task <= 1_200, per_task
    assert "~0.8 KB each, of which ~0.2 KB is the coroutine" in prose(ASYNCIO_MD)
