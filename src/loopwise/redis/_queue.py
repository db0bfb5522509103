"""WorkQueue: a Redis stream that producers add items to and worker groups consume."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from loopwise.redis import _scripts
from loopwise.redis._codec import JSON, Codec
from loopwise.redis._connection import Reconnect, check_client, command, text
from loopwise.redis._delivery import DeadLetter
from loopwise.redis._worker import StreamWorker

__all__ = ["WorkQueue"]

T = TypeVar("T")


class WorkQueue(Generic[T]):
    """A work queue on a Redis stream, shared by every process that names the same stream::

        queue = WorkQueue(client, "crawl")              # client: redis.asyncio.Redis
        await queue.add({"url": url})                   # producers, anywhere
        async with queue.consume(prefetch=16) as worker:   # workers, anywhere
            await Pipeline(worker).stage(worker.step(fetch), workers=8).stage(worker.ack).run()

    Items are encoded with ``codec`` (JSON by default; :data:`TEXT`, :data:`BYTES` or your own
    :class:`Codec`) into one field of a stream entry. Workers share the work through the consumer
    ``group`` (created at the stream's start when missing, so a new group sees every entry still
    in the stream). ``maxlen`` trims the stream approximately on each add (``MAXLEN ~``):
    trimming never removes an entry that is still pending for a worker, but a trimmed entry that
    no group has read yet is gone, so size it well above the backlog. Failed items end up in the
    ``dead_letter`` stream (default ``<stream>:dead``).

    Delivery is **at-least-once**: see :class:`StreamWorker` for where duplicates come from.
    """

    def __init__(
        self,
        client: Redis,
        stream: str,
        *,
        group: str = "workers",
        codec: Codec = JSON,
        maxlen: int | None = None,
        dead_letter: str | None = None,
    ) -> None:
        self.client = check_client(client)
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream must be a non-empty str, got {stream!r}")
        if not isinstance(group, str) or not group:
            raise ValueError(f"group must be a non-empty str, got {group!r}")
        if maxlen is not None and (
            isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1
        ):
            raise ValueError(f"maxlen must be an int >= 1 or None, got {maxlen!r}")
        self.stream = stream
        self.group = group
        self.codec = codec
        self.maxlen = maxlen
        self.dead_letter = dead_letter or f"{stream}:dead"
        self.errors_key = f"{stream}:errors:{group}"
        self._reconnect = Reconnect(f"WorkQueue {stream!r}")
        self._add_new_script = self.client.register_script(_scripts.ADD_NEW)

    def _xadd_args(self, data: bytes) -> list[Any]:
        trim: list[Any] = ["MAXLEN", "~", self.maxlen] if self.maxlen is not None else []
        return ["XADD", self.stream, *trim, "*", "d", data]

    async def add(self, item: T) -> str:
        """Add one item; return its entry id. Usable as a Pipeline stage (a sink).

        The item is encoded before anything is sent (an item the codec refuses raises its
        error here). While Redis is unreachable the add is retried with backoff until it
        succeeds or the caller is cancelled; an add whose reply was lost may then be stored
        twice (the queue is at-least-once from end to end)."""
        data = self.codec.encode(item)
        args = self._xadd_args(data)
        entry_id = await self._reconnect.call("XADD", lambda: command(self.client, *args))
        return text(entry_id)

    async def add_many(self, items: Iterable[T]) -> list[str]:
        """Add several items in one round trip (in order); return their entry ids. Retried as
        a whole like :meth:`add`."""
        encoded = [self.codec.encode(item) for item in items]
        if not encoded:
            return []

        async def send() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for data in encoded:
                    pipe.execute_command(*self._xadd_args(data))
                result: list[Any] = await pipe.execute()
                return result

        ids = await self._reconnect.call("XADD", send)
        return [text(i) for i in ids]

    async def add_new(self, items: Iterable[T], *, seen: str) -> list[str | None]:
        """Add each item that was never added through ``seen`` before (a Redis set of encoded
        items, shared by every process), in one round trip; return the new entry ids, ``None``
        for an item seen before. Checking and adding are one atomic step in Redis, so a process
        killed in the middle never leaves an item marked seen but not added (the frontier of a
        crawler: no URL lost, none queued twice). Retried like :meth:`add`; a retried call
        finds its items seen and adds them once. Items are compared by their encoded bytes."""
        if not isinstance(seen, str) or not seen:
            raise ValueError(
                f"seen must be the name of a Redis set (a non-empty str), got {seen!r}"
            )
        encoded = [self.codec.encode(item) for item in items]
        if not encoded:
            return []
        args: list[Any] = [self.maxlen or 0, *encoded]
        ids = await self._reconnect.call(
            "add_new", lambda: self._add_new_script(keys=[self.stream, seen], args=args)
        )
        return [None if i is None else text(i) for i in ids]

    def consume(
        self,
        *,
        consumer: str | None = None,
        prefetch: int = 16,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        stop_when_empty: bool = False,
    ) -> StreamWorker[T]:
        """A worker of this queue's group: an async iterable of :class:`Delivery` for
        ``Pipeline`` and ``amap``. See :class:`StreamWorker` for the options and guarantees."""
        return StreamWorker(
            self,
            consumer=consumer,
            prefetch=prefetch,
            claim_idle=claim_idle,
            max_deliveries=max_deliveries,
            stop_when_empty=stop_when_empty,
        )

    async def length(self) -> int:
        """Entries in the stream (acknowledged ones too, until trimmed)."""
        n = await self._reconnect.call("XLEN", lambda: command(self.client, "XLEN", self.stream))
        return int(n)

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` dead letters (reading does not remove them)."""
        raw = await self._reconnect.call(
            "XRANGE",
            lambda: command(self.client, "XRANGE", self.dead_letter, "-", "+", "COUNT", count),
        )
        letters = []
        for entry_id, fields in raw or []:
            f = {text(k): v for k, v in fields.items()}
            letters.append(
                DeadLetter(
                    id=text(entry_id),
                    entry_id=text(f.get("id", b"")),
                    data=bytes(f.get("data", b"")),
                    error=text(f.get("error", b"")),
                    deliveries=int(f.get("deliveries", 0)),
                )
            )
        return letters

    def __repr__(self) -> str:
        return f"<WorkQueue stream={self.stream!r} group={self.group!r} codec={self.codec!r}>"
