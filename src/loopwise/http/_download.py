"""Atomic download: the body goes to a temporary file that replaces the target only when whole."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp

__all__ = ["write_atomically"]

T = TypeVar("T")
_background: set[asyncio.Future[Any]] = set()


def _open_exclusive(path: Path) -> io.BufferedWriter:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    return os.fdopen(fd, "wb")


def _commit(fh: IO[bytes], tmp: Path, target: Path, fsync: bool) -> None:
    fh.flush()
    if fsync:
        os.fsync(fh.fileno())
    fh.close()
    os.replace(tmp, target)


def _discard_file(fh: IO[bytes] | None, tmp: Path) -> None:
    if fh is not None:
        with contextlib.suppress(OSError):
            fh.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


class _TempFile:
    """A temporary file and the one disk operation in flight on it (in a worker thread)."""

    __slots__ = ("fh", "inflight", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[bytes] | None = None
        self.inflight: asyncio.Future[Any] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a thread. Cancelling the caller does not cancel the operation:
        :meth:`discard` waits for it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self.inflight = future
        return await asyncio.shield(future)

    async def discard(self) -> None:
        """Wait for the operation in flight, then close and remove the file."""
        inflight = self.inflight
        if inflight is not None:
            with contextlib.suppress(Exception):
                await inflight  # its failure, if any, is not ours to report
            if self.fh is None and not inflight.cancelled() and inflight.exception() is None:
                opened = inflight.result()
                if isinstance(opened, io.BufferedWriter):
                    self.fh = opened
        await asyncio.get_running_loop().run_in_executor(None, _discard_file, self.fh, self.path)


def _about_target(exc: OSError, target: Path) -> OSError:
    """The same error, about the path the caller gave rather than the temporary file."""
    return type(exc)(exc.errno, exc.strerror, str(target))


async def write_atomically(
    response: aiohttp.ClientResponse, target: Path, chunk_size: int, fsync: bool
) -> None:
    """Write the body to a temporary file next to ``target``, then rename it over ``target``.

    At most one disk write is in flight while the next chunk is read. On any failure the
    temporary file is removed (in a shielded task, so a second cancellation cannot skip it).
    """
    loop = asyncio.get_running_loop()
    tmp = _TempFile(target.with_name(f".{target.name}.{secrets.token_hex(4)}.part"))
    try:
        try:
            fh = tmp.fh = await tmp.run(_open_exclusive, tmp.path)
        except OSError as exc:
            raise _about_target(exc, target) from exc
        pending: asyncio.Future[Any] | None = None
        buffered: list[bytes] = []
        size = 0
        while True:
            chunk = await response.content.read(chunk_size)
            if chunk:
                buffered.append(chunk)
                size += len(chunk)
                if size < chunk_size:
                    continue
            if buffered:
                data = buffered[0] if len(buffered) == 1 else b"".join(buffered)
                buffered, size = [], 0
                if pending is not None:
                    await asyncio.shield(pending)
                pending = tmp.inflight = loop.run_in_executor(None, fh.write, data)
            if not chunk:
                break
        if pending is not None:
            await asyncio.shield(pending)
        try:
            await tmp.run(_commit, fh, tmp.path, target, fsync)
        except OSError as exc:
            raise _about_target(exc, target) from exc
    except BaseException:
        cleanup = asyncio.ensure_future(tmp.discard())
        _background.add(cleanup)
        cleanup.add_done_callback(_background.discard)
        await asyncio.shield(cleanup)
        raise
