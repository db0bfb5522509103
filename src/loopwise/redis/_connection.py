"""What the work queue does when Redis cannot be reached: wait, retry, report; never drop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.exceptions
from redis.asyncio import Redis

from loopwise._exceptions import LoopwiseError, UsageError

__all__ = [
    "CONNECTION_ERRORS",
    "Reconnect",
    "RedisUnavailableError",
    "check_client",
    "check_pool",
    "command",
    "describe",
    "stream_entries",
    "text",
]

T = TypeVar("T")

logger = logging.getLogger("loopwise.redis")

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,  # a restarted server still loading its data
    ConnectionError,
    TimeoutError,
)


class RedisUnavailableError(LoopwiseError, ConnectionError):
    """Redis could not be reached (or not in time), and nothing was done: a fail-closed
    :class:`SharedRateLimiter` granted nothing, a :class:`Backplane` did not start."""


def check_pool(client: Redis, *, needed: int, who: str) -> None:
    """``who`` holds ``needed`` connections at once (a blocking read and the calls made
    meanwhile): a pool capped below that would starve it forever, so say so now."""
    cap = getattr(client.connection_pool, "max_connections", None)
    if isinstance(cap, int) and cap < needed:
        raise UsageError(
            f"{who} needs {needed} connections at once (a blocking read and the calls made "
            f"meanwhile), but the client's pool allows max_connections={cap}: create the "
            f"client with max_connections of at least {needed} (plus what your own code uses)"
        )


def describe(exc: BaseException) -> str:
    """One line for a connection error; pool exhaustion is a client setting, not an outage."""
    if isinstance(exc, redis.exceptions.MaxConnectionsError):
        return (
            f"the client's connection pool is exhausted ({exc}): Redis may be fine; give the "
            "client more connections (max_connections) or a BlockingConnectionPool"
        )
    return f"Redis unreachable ({type(exc).__name__}: {exc})"


def check_client(client: object) -> Redis:
    """The client must be redis-py's asyncio client and return bytes (entries carry bytes)."""
    if not isinstance(client, Redis):
        raise TypeError(
            f"expected a redis.asyncio.Redis client, got {type(client).__name__}: "
            "create one with redis.asyncio.Redis.from_url(url)"
        )
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise UsageError(
            "the Redis client decodes responses to str, which would corrupt binary items: "
            "create it with decode_responses=False (the default)"
        )
    return client


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Reconnect:
    """Retries a call while Redis is unreachable: exponential backoff from ``first`` to
    ``longest`` seconds, forever (cancel the caller to give up). Each failure is counted, logged
    once per outage as a warning, and kept as ``last_error``."""

    __slots__ = ("failures", "first", "last_error", "longest", "name", "outages")

    def __init__(self, name: str, *, first: float = 0.05, longest: float = 2.0) -> None:
        self.name = name
        self.first = first
        self.longest = longest
        self.failures = 0
        self.outages = 0
        self.last_error: str | None = None

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        delay = self.first
        failed = False
        while True:
            try:
                result = await fn()
            except CONNECTION_ERRORS as exc:
                self.failures += 1
                self.last_error = f"{what}: {type(exc).__name__}: {exc}"
                if not failed:
                    self.outages += 1
                    logger.warning(
                        "%s: %s: %s, retrying with backoff", self.name, what, describe(exc)
                    )
                failed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.longest)
                continue
            if failed:
                logger.warning("%s: %s succeeded again", self.name, what)
            return result


async def command(client: Redis, *args: Any) -> Any:
    """One Redis command (redis-py's ``execute_command`` is untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def stream_entries(raw: Any) -> dict[str, list[tuple[Any, Any]]]:
    """The entries of an XREAD/XREADGROUP reply, by stream name, as parsed by redis-py (RESP2
    gives ``[[stream, entries]]``, RESP3 ``{stream: [entries]}``)."""
    if not raw:
        return {}
    pairs = list(raw.items()) if isinstance(raw, dict) else [(p[0], p[1]) for p in raw]
    out: dict[str, list[tuple[Any, Any]]] = {}
    for name, group in pairs:
        entries = out.setdefault(text(name), [])
        if group and isinstance(group[0], list):  # RESP3 nests the entries once more
            for inner in group:
                entries.extend(inner)
        else:
            entries.extend(group)
    return out
