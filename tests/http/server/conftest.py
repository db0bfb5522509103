"""Helpers for the server tests: a real server on 127.0.0.1 port 0 and an SSE parser."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        yield s


@dataclass
class Event:
    id: str | None
    event: str | None
    data: str


class SSEReader:
    """Parses a ``text/event-stream`` body as the browser's EventSource does (fields we use)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0
        self.retry: int | None = None

    async def next(self) -> Event | None:
        """The next dispatched event, or None at the end of the stream (waits 10 s at most)."""
        event_id: str | None = None
        name: str | None = None
        data: list[str] = []
        async with asyncio.timeout(10):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return None
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if data:
                        return Event(event_id, name, "\n".join(data))
                    event_id, name, data = None, None, []
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "id":
                    event_id = value
                elif field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field == "retry":
                    self.retry = int(value)

    async def take(self, n: int) -> list[Event]:
        events = []
        for _ in range(n):
            event = await self.next()
            assert event is not None, f"stream ended after {len(events)} of {n} events"
            events.append(event)
        return events


SRC = str(Path(__file__).resolve().parents[3] / "src")
SCENARIO_SERVER = str(Path(__file__).with_name("scenario_server.py"))


@dataclass
class ServerProcess:
    """A scenario server running in its own process (see scenario_server.py)."""

    url: str
    process: asyncio.subprocess.Process

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss_kib(self) -> int:
        """The process's resident memory now, in KiB (Linux)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS line")


@contextlib.asynccontextmanager
async def scenario_server(
    name: str, *options: str, env: dict[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Start ``scenario_server.py name options...``; yields once it listens; killed on exit."""
    environ = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, environ.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        SCENARIO_SERVER,
        name,
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("serving on http://"), line
        yield ServerProcess(line.split()[-1], process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
