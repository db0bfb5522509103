"""loopwise.http.Client.stream() and download(): chunked bodies, read timeouts, atomic files.

A real aiohttp server on 127.0.0.1:0 sends the bodies, drops connections mid-body or stalls.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import loopwise.http._download as download_module
from loopwise import UsageError
from loopwise.http import (
    Client,
    HTTPRetry,
    HTTPStatusError,
    HTTPTimeout,
    RetryExhausted,
    TransportError,
)
from tests.http._serving import Handler, serving

BODY = bytes(range(256)) * 4096  # 1 MiB


async def whole(request: web.Request) -> web.StreamResponse:
    return web.Response(body=BODY, content_type="application/octet-stream")


def drops_after(n: int, *, times: int = 1_000_000) -> Handler:
    """Announce the full length, send ``n`` bytes and drop the connection (the first ``times``
    requests; later ones get the whole body)."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls > times:
            return await whole(request)
        response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
        await response.prepare(request)
        await response.write(BODY[:n])
        await asyncio.sleep(0.01)
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


def trickle(pieces: int, pause: float) -> Handler:
    """Send the body in ``pieces`` with ``pause`` seconds between them."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
        await response.prepare(request)
        size = len(BODY) // pieces
        for i in range(pieces):
            await response.write(BODY[i * size : (i + 1) * size if i < pieces - 1 else None])
            await asyncio.sleep(pause)
        return response

    return handler


def stall_after(n: int, sent: asyncio.Event) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
        await response.prepare(request)
        await response.write(BODY[:n])
        sent.set()
        await asyncio.sleep(5)
        return response

    return handler


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def no_wait_retry() -> HTTPRetry:
    async def sleep(delay: float) -> None:
        await asyncio.sleep(0)

    return HTTPRetry(sleep=sleep)


# -- stream ---------------------------------------------------------------------------------------


async def test_stream_yields_the_body_in_bounded_chunks() -> None:
    async with serving({"/f": whole}) as url, Client(url) as client:
        async with client.stream("/f", chunk_size=10_000) as stream:
            chunks = [chunk async for chunk in stream]
        assert client.statistics().in_flight == 0
    assert b"".join(chunks) == BODY
    assert max(map(len, chunks)) <= 10_000


async def test_stream_stopped_early_releases_the_connection() -> None:
    async with serving({"/f": whole}) as url, Client(url) as client:
        async with client.stream("/f") as chunks:
            async for _ in chunks:
                break
            assert chunks.response is not None
        assert chunks.response.closed
        assert client.statistics().in_flight == 0
        with pytest.raises(UsageError):  # not an empty body: the rest was never read
            [c async for c in chunks]


async def test_stream_error_mid_body_is_mapped_and_not_retried() -> None:
    async with serving({"/f": drops_after(100_000)}) as url, Client(url) as client:
        received = 0
        with pytest.raises(TransportError) as info:
            async with client.stream("/f") as chunks:
                async for chunk in chunks:
                    received += len(chunk)
        assert client.statistics().attempts == 1
    assert 0 < received < len(BODY)
    assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError)


async def test_stream_retries_before_the_first_chunk() -> None:
    calls = 0

    async def busy_once(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=503) if calls == 1 else await whole(request)

    async with (
        serving({"/f": busy_once}) as url,
        Client(url, retry=no_wait_retry()) as client,
        client.stream("/f") as chunks,
    ):
        body = b"".join([c async for c in chunks])
    assert body == BODY
    assert calls == 2


async def test_stream_has_no_total_timeout_but_a_read_timeout() -> None:
    async with serving({"/slow": trickle(4, 0.1)}) as url, Client(url, timeout=0.2) as client:
        # the whole body takes ~0.4 s, more than the client's total timeout: fine for a stream
        async with client.stream("/slow") as chunks:
            assert b"".join([c async for c in chunks]) == BODY
        with pytest.raises(HTTPTimeout):
            await client.get_bytes("/slow", retry=None)  # total timeout applies here
        with pytest.raises(HTTPTimeout):
            async with client.stream("/slow", read_timeout=0.03) as chunks:
                async for _ in chunks:
                    pass


# -- download -----------------------------------------------------------------------------------


async def test_download_writes_the_file_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    async with serving({"/f": whole}) as url, Client(url) as client:
        result = await client.download("/f", target, chunk_size=100_000)
    assert result == target
    assert target.read_bytes() == BODY
    assert leftovers(tmp_path) == ["file.bin"]


async def test_download_never_leaves_a_half_file_when_the_server_drops(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    async with serving({"/f": drops_after(300_000)}) as url, Client(url, retry=None) as client:
        with pytest.raises(TransportError) as info:
            await client.download("/f", target)
    assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError)
    assert leftovers(tmp_path) == []


async def test_download_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"previous version")
    async with serving({"/f": drops_after(300_000)}) as url, Client(url) as client:
        with pytest.raises(RetryExhausted) as info:
            await client.download("/f", target, retry=no_wait_retry())
    assert len(info.value.attempts) == 3
    assert target.read_bytes() == b"previous version"
    assert leftovers(tmp_path) == ["file.bin"]


async def test_download_retries_a_body_cut_short_from_the_start(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    async with (
        serving({"/f": drops_after(300_000, times=1)}) as url,
        Client(url, retry=no_wait_retry()) as client,
    ):
        await client.download("/f", target)
        assert client.statistics().retries == 1
    assert target.read_bytes() == BODY
    assert leftovers(tmp_path) == ["file.bin"]


async def test_download_of_an_error_status_writes_nothing(tmp_path: Path) -> None:
    async def missing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="gone")

    target = tmp_path / "file.bin"
    async with serving({"/f": missing}) as url, Client(url, raise_for_status=False) as client:
        with pytest.raises(HTTPStatusError):
            await client.download("/f", target)
    assert leftovers(tmp_path) == []


async def test_download_cancelled_mid_body_leaves_nothing(tmp_path: Path) -> None:
    sent = asyncio.Event()
    target = tmp_path / "file.bin"
    async with serving({"/f": stall_after(200_000, sent)}) as url, Client(url) as client:
        task = asyncio.create_task(client.download("/f", target, chunk_size=50_000))
        await sent.wait()
        for _ in range(100):  # until the first chunks reached the temporary file
            if leftovers(tmp_path):
                break
            await asyncio.sleep(0.005)
        assert len(leftovers(tmp_path)) == 1 and leftovers(tmp_path)[0].endswith(".part")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.statistics().in_flight == 0
    assert leftovers(tmp_path) == []


async def test_download_read_timeout_leaves_nothing(tmp_path: Path) -> None:
    sent = asyncio.Event()
    async with (
        serving({"/f": stall_after(200_000, sent)}) as url,
        Client(url, retry=None) as client,
    ):
        with pytest.raises(HTTPTimeout):
            await client.download("/f", tmp_path / "file.bin", read_timeout=0.1)
    assert leftovers(tmp_path) == []


async def test_download_disk_io_runs_off_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real_commit = download_module._commit

    def commit(*args: object) -> None:
        threads.append(threading.current_thread())
        real_commit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(download_module, "_commit", commit)
    async with serving({"/f": whole}) as url, Client(url) as client:
        await client.download("/f", tmp_path / "file.bin")
    assert threads and threads[0] is not threading.main_thread()
    assert (tmp_path / "file.bin").read_bytes() == BODY


async def test_a_download_path_that_cannot_be_written_is_named_in_the_error(tmp_path: Path) -> None:
    # Not the hidden temporary file the user never named.
    async with serving({"/f": whole}) as url, Client(url) as client:
        missing = tmp_path / "no-such-dir" / "x.bin"
        with pytest.raises(FileNotFoundError) as info:
            await client.download("/f", missing)
        assert info.value.filename == str(missing)
        with pytest.raises(IsADirectoryError) as directory:
            await client.download("/f", tmp_path)
        assert directory.value.filename == str(tmp_path)
    assert leftovers(tmp_path) == []
