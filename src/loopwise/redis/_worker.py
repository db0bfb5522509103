"""StreamWorker: one consumer of a work queue's group, as a source for Pipeline and amap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import redis.exceptions

from loopwise.redis import _scripts, _stages
from loopwise.redis._acks import _ACK_BATCH, Settling
from loopwise.redis._connection import Reconnect, check_pool, command, stream_entries, text
from loopwise.redis._delivery import Delivery, WorkerStatistics

if TYPE_CHECKING:
    from loopwise.redis._queue import WorkQueue

__all__ = ["StreamWorker"]

T = TypeVar("T")
R = TypeVar("R")

_LONGEST_BLOCK = 0.5  # seconds a read waits for new entries before it looks at claims and stop()
_TOP_UP_WAIT = 0.005  # seconds a read waits for half of prefetch to be free (or acknowledged)
_FLUSH_TIMEOUT = 5.0  # seconds the exit waits for queued acknowledgements


class StreamWorker(Settling[T], AsyncIterator[Delivery[T]], Generic[T]):
    """A consumer of a :class:`WorkQueue`'s group: an async iterator of :class:`Delivery`, the
    source that ``Pipeline`` and ``amap`` read from::

        async with queue.consume(prefetch=16) as worker:
            pipe = Pipeline(worker).stage(worker.step(fetch), workers=8)
            await pipe.stage(worker.step(save), workers=2).stage(worker.ack).run()

            # or with amap: the handler runs fn, then acknowledges
            async for done in amap(worker.handler(fetch), worker, concurrency=8): ...

    Each :meth:`step` runs your function on the item's value; :meth:`ack` (the last stage) then
    acknowledges it (``XACK``) or records its failure.

    Guarantees:

    * **Backpressure.** At most ``prefetch`` items are held by this worker at once (handed out,
      or read and waiting to be); it reads more only as items are acknowledged or failed.
    * **At-least-once.** An item is acknowledged only by :meth:`ack`, after every stage before it
      finished. Whatever else happens to it (a crash, ``SIGKILL``, a cancelled or failed
      pipeline, a lost connection) it stays pending in Redis and is delivered again, so an item
      can be processed more than once: when the worker dies after a side effect but before the
      acknowledgement, when an acknowledgement's reply is lost, when an item is slower than
      ``claim_idle`` (another worker takes it over while the first still works on it). Use
      :attr:`Delivery.idempotency_key` to make side effects effectively-once.
    * **Reclaim.** Items held by any consumer (this one too) and not acknowledged for
      ``claim_idle`` seconds are taken over (``XAUTOCLAIM``) and delivered again, with
      ``Delivery.deliveries`` counting every delivery across workers.
    * **Failures.** An ``Exception`` raised by a step is kept on the delivery (later steps skip
      it); :meth:`ack` then records it and leaves the item pending, to be retried after
      ``claim_idle``. An item delivered ``max_deliveries`` times goes to the dead-letter stream
      with the last error (or, when its workers died or hung, with that reason) and is
      acknowledged: it is never dropped silently. A delivery that fails after another delivery
      of the same item acknowledged it (a slow item taken over) records nothing: the item is
      done. An entry the codec cannot decode goes there
      at once, with the decoding error. A ``BaseException`` that is not an ``Exception``
      (``KeyboardInterrupt``, ``SystemExit``, cancellation) is not caught: it fails the pipeline
      as usual and the item stays pending.
    * **Shutdown.** :meth:`stop` (or a graceful ``Pipeline.close()``) ends the iteration; what
      the pipeline accepted is finished and acknowledged. Leaving ``async with`` hands every item
      still held back to the group: it stays pending with its delivery count, and any worker may
      claim it at once.
    * **Lost connection.** Every call to Redis is retried with exponential backoff (up to 2 s)
      until it succeeds or the task is cancelled, counted in ``statistics().reconnects`` and
      logged on the ``loopwise.redis`` logger; no item is lost by it. A group that vanished (a
      server restarted without persistence) is created again.
    * **Cancellation** at any await leaves every item either acknowledged or pending: a read
      cancelled after Redis delivered its entries leaves them pending for ``claim_idle``.

    ``stop_when_empty=True`` ends the iteration once the stream has no new entry and nothing is
    pending in the group (for batch jobs and tests). Not thread-safe; one event loop.
    """

    def __init__(
        self,
        queue: WorkQueue[T],
        *,
        consumer: str | None,
        prefetch: int,
        claim_idle: float,
        max_deliveries: int,
        stop_when_empty: bool,
    ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
        if isinstance(claim_idle, bool) or not isinstance(claim_idle, int | float):
            raise TypeError(f"claim_idle must be seconds (a number), got {claim_idle!r}")
        if not claim_idle >= 0.01:
            raise ValueError(f"claim_idle must be >= 0.01 seconds, got {claim_idle!r}")
        if (
            isinstance(max_deliveries, bool)
            or not isinstance(max_deliveries, int)
            or max_deliveries < 1
        ):
            raise ValueError(f"max_deliveries must be an int >= 1, got {max_deliveries!r}")
        check_pool(queue.client, needed=2, who="a StreamWorker")
        self._queue = queue
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.prefetch = prefetch
        self.claim_idle = float(claim_idle)
        self.max_deliveries = max_deliveries
        self.stop_when_empty = stop_when_empty
        client = queue.client
        self._claim_script = client.register_script(_scripts.CLAIM)
        self._ack_script = client.register_script(_scripts.ACK)
        self._ack_sha = self._ack_script.sha  # the read sends it by hash, in its pipeline
        self._dead_script = client.register_script(_scripts.DEAD_LETTER)
        self._record_script = client.register_script(_scripts.RECORD_ERROR)
        self._pending_script = client.register_script(_scripts.PENDING)
        self._release_script = client.register_script(_scripts.RELEASE)
        self._reconnect = Reconnect(f"StreamWorker {queue.stream!r}/{self.consumer}")
        self._held: dict[str, Delivery[T]] = {}  # read or handed out, not settled
        self._ready: deque[Delivery[T]] = deque()  # read, not handed out yet
        self._room = asyncio.Event()
        self._group_ready = False
        self._claim_every = max(self.claim_idle / 2, 0.01)
        self._next_claim = 0.0
        self._stopping = False
        self._delivered = 0
        self._reclaimed = 0
        self._acked = 0
        self._failed = 0
        self._dead_lettered = 0
        self._to_ack: list[str] = []  # acknowledged by ack(), not sent yet
        self._flusher: asyncio.Task[None] | None = None
        self._gathering: asyncio.Future[None] | None = None  # the flusher waits for more acks
        self._room_needed = 0  # __anext__ waits for this many prefetch slots to be free
        self._idle = False  # the last read found no new entry
        self._releasing = False  # release() waits for the queued acknowledgements
        self._batch = prefetch // 2  # a read waits a moment for this much room

    # -- the source ----------------------------------------------------------------------------

    def __aiter__(self) -> StreamWorker[T]:
        return self

    async def __anext__(self) -> Delivery[T]:
        topped_up = False
        while True:
            if self._stopping:
                raise StopAsyncIteration
            if self._ready:
                self._delivered += 1
                return self._ready.popleft()
            if not self._group_ready:
                await self._ensure_group()
            # Room counts the acknowledgements queued and not sent yet: the read sends them in
            # its own round trip, before Redis hands out the new entries.
            room = self.prefetch - len(self._held) + len(self._to_ack)
            if room <= 0:
                await self._wait_for_room(1)
                continue
            if room < self._batch and not topped_up:
                # Many items in progress: wait a moment for more room, to read (and so
                # acknowledge) in larger batches; then read whatever room there is.
                topped_up = True
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_TOP_UP_WAIT):
                        await self._wait_for_room(self._batch)
                continue
            topped_up = False
            try:
                now = time.monotonic()
                if now >= self._next_claim and room > len(self._to_ack):
                    self._next_claim = now + self._claim_every
                    await self._claim(room - len(self._to_ack))
                    if self._ready:
                        continue
                read = await self._read(room)
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # the stream or group vanished: create it again
                continue
            self._idle = not read
            if not read:
                self._send_acks_now()  # nothing new to read: no reason to hold them back
            if (
                not read
                and self.stop_when_empty
                and not self._held
                and await self._pending_count() == 0
            ):
                self._stopping = True

    def stop(self) -> None:
        """Stop handing out items: the iteration ends at its next step (within half a second
        when it waits for new entries). Items already handed out can still be acknowledged."""
        self._stopping = True
        self._room.set()
        self._send_acks_now()  # stopping: no reason to gather acknowledgements

    async def _wait_for_room(self, needed: int) -> None:
        """Wait until ``needed`` prefetch slots are free or queued to be freed (acknowledged,
        not sent yet): :meth:`ack` and the flusher wake this when there are."""
        self._room_needed = needed
        try:
            while (
                not self._stopping and self.prefetch - len(self._held) + len(self._to_ack) < needed
            ):
                self._room.clear()
                await self._room.wait()
        finally:
            self._room_needed = 0

    async def __aenter__(self) -> StreamWorker[T]:
        await self._ensure_group()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        await self.release()

    async def release(self) -> None:
        """Send the acknowledgements still queued, then hand every other item this worker holds
        back to the group, for any worker to claim at once (they stay pending, with their
        delivery counts). Best effort, 5 s at most for the acknowledgements and 2 s for the
        rest: what Redis did not take in time stays pending and is delivered again after
        ``claim_idle``."""
        flusher = self._flusher
        if flusher is not None:
            self._releasing = True
            self._send_acks_now()  # no reason left to gather
            try:
                await asyncio.wait_for(asyncio.shield(flusher), _FLUSH_TIMEOUT)
            except TimeoutError:
                flusher.cancel()
        ids = [entry_id for entry_id in self._held if entry_id not in self._to_ack]
        self._releasing = False
        self._to_ack.clear()
        self._held.clear()
        self._ready.clear()
        self._room.set()
        if not ids:
            return
        idle = int(self.claim_idle * 1000) + 1
        q = self._queue
        with contextlib.suppress(*_RELEASE_ERRORS):
            async with asyncio.timeout(2.0):
                await self._release_script(
                    keys=[q.stream], args=[q.group, self.consumer, idle, *ids]
                )

    # -- stages ---------------------------------------------------------------------------------

    def step(self, fn: Callable[[Any], Awaitable[R]]) -> Callable[[Delivery[T]], Awaitable[Any]]:
        """A Pipeline stage (or amap function) running ``await fn(delivery.value)`` and putting
        its result in ``delivery.value``. An ``Exception`` from ``fn`` is kept in
        ``delivery.error`` and the following steps skip the delivery; anything else propagates."""
        return _stages.step(fn)

    def handler(
        self, fn: Callable[[Any], Awaitable[R]]
    ) -> Callable[[Delivery[T]], Awaitable[Delivery[R]]]:
        """:meth:`step` then :meth:`ack` in one function: the one stage of a single-step
        Pipeline, or the function for ``amap``."""
        return _stages.handler(self, fn)

    def batches(self, *, max_size: int | None = None) -> _stages.Batches[T]:
        """The same items as iterating the worker, in lists: each list holds what was read and
        is ready now (at least one item, at most ``max_size``). Per-item costs are paid once
        per list instead; backpressure, reclaiming, stopping and every guarantee are the
        worker's, counted per item (a list of 32 holds 32 ``prefetch`` slots). Use it or the
        worker itself as the source, not both. Stages: :meth:`step_batch`, then
        :meth:`ack_many` (or your own function over ``list[Delivery]``)."""
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1
        ):
            raise ValueError(f"max_size must be an int >= 1 or None, got {max_size!r}")
        return _stages.Batches(self, max_size)

    def step_batch(
        self, fn: Callable[[list[Any]], Awaitable[Sequence[Any]]]
    ) -> Callable[[list[Delivery[T]]], Awaitable[list[Delivery[Any]]]]:
        """:meth:`step` for a list from :meth:`batches`: ``await fn(values)`` with the values
        of the deliveries no earlier step failed, returning one new value per value, in order.
        An ``Exception`` from ``fn`` (or a result of the wrong length, a ``ValueError``) is
        kept in the ``error`` of every delivery it was called with: each is then retried on
        its own terms, after ``claim_idle``, possibly in another batch."""
        return _stages.step_batch(fn)

    # -- Redis ----------------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        q = self._queue

        async def create() -> None:
            try:
                await command(q.client, "XGROUP", "CREATE", q.stream, q.group, "0", "MKSTREAM")
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._reconnect.call("XGROUP CREATE", create)
        self._group_ready = True

    async def _read(self, count: int) -> int:
        """Read up to ``count`` new entries, waiting up to half a second for them. With
        acknowledgements queued, the same round trip first sends them and reads what is there
        (``count`` includes the slots they free); only when that finds nothing new does a
        blocking read follow. Whatever happens to that round trip (cancelled, failed), the
        acknowledgements it did not confirm are queued again for the flusher."""
        q = self._queue
        entries: list[Any] = []
        acks, self._to_ack = self._to_ack[:_ACK_BATCH], self._to_ack[_ACK_BATCH:]
        if acks:
            try:
                entries = await self._reconnect.call(
                    "XACK and XREADGROUP", lambda: self._ack_and_read(acks, count)
                )
            except BaseException:
                self._to_ack[:0] = acks  # not confirmed: the flusher sends them
                if self._flusher is None:
                    self._flusher = asyncio.get_running_loop().create_task(self._flush())
                raise
            self._acked += len(acks)
            for entry_id in acks:
                self._held.pop(entry_id, None)
        if not entries:
            block = max(1, int(min(self._claim_every, _LONGEST_BLOCK) * 1000))
            raw = await self._reconnect.call(
                "XREADGROUP",
                lambda: command(
                    q.client,
                    "XREADGROUP",
                    "GROUP",
                    q.group,
                    self.consumer,
                    "COUNT",
                    count,
                    "BLOCK",
                    block,
                    "STREAMS",
                    q.stream,
                    ">",
                ),
            )
            entries = [e for group in stream_entries(raw).values() for e in group]
        for entry_id, fields in entries:
            entry_id = entry_id.decode() if entry_id.__class__ is bytes else str(entry_id)
            unreadable = self._admit(entry_id, fields, 1)
            if unreadable is not None:
                await self._dead_letter(entry_id, *unreadable, 1)
        return len(entries)

    async def _ack_and_read(self, acks: list[str], count: int) -> list[Any]:
        """Acknowledge ``acks`` and read up to ``count`` new entries without blocking, in one
        round trip. The acknowledgements go by the acknowledging script's hash (``XACK``,
        then ``HDEL`` of any error recorded for the ids: the ids travel once), the read as a
        plain command (copying entries into Lua and back cost Redis 2.5 times the CPU). A
        script Redis does not know yet (or lost: restarted, flushed) costs one more round
        trip, which loads it and acknowledges. Returns when Redis confirmed both."""
        q = self._queue
        pipe = q.client.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self._ack_sha, 2, q.stream, q.errors_key, q.group, *acks)
        pipe.execute_command(
            "XREADGROUP", "GROUP", q.group, self.consumer, "COUNT", count, "STREAMS", q.stream, ">"
        )
        acked, raw = await pipe.execute(raise_on_error=False)
        if isinstance(raw, Exception):
            raise raw
        entries = [e for group in stream_entries(raw).values() for e in group]
        if isinstance(acked, redis.exceptions.NoScriptError):
            # Not loaded yet (or Redis lost it): the script call loads it and acknowledges.
            await self._ack_script(keys=[q.stream, q.errors_key], args=[q.group, *acks])
        elif isinstance(acked, Exception):
            raise acked  # the acknowledgements go to the flusher; the entries are pending
        return entries

    async def _claim(self, count: int) -> None:
        q = self._queue
        claimed = await self._reconnect.call(
            "XAUTOCLAIM",
            lambda: self._claim_script(
                keys=[q.stream, q.errors_key],
                args=[q.group, self.consumer, int(self.claim_idle * 1000), count],
            ),
        )
        for entry_id, flat, count_raw, error in claimed or []:
            deliveries = int(count_raw)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            if deliveries > self.max_deliveries:
                reason = (
                    text(error)
                    if error
                    else "not acknowledged: the workers holding it died, hung or stopped"
                )
                data = fields.get(b"d", b"")
                await self._dead_letter(text(entry_id), data, reason, deliveries - 1)
                continue
            self._reclaimed += 1
            unreadable = self._admit(text(entry_id), fields, deliveries)
            if unreadable is not None:
                await self._dead_letter(text(entry_id), *unreadable, deliveries)

    def _admit(self, entry_id: str, fields: Any, deliveries: int) -> tuple[bytes, str] | None:
        """Hold the entry's delivery, ready to hand out; or, for an entry that cannot be
        decoded, return its data and why, for the dead-letter stream. (Not a coroutine: it runs
        once per item.)"""
        data = fields.get(b"d") if fields.__class__ is dict else _data_field(fields)
        if data is None:
            return b"", "malformed entry: no 'd' field"
        try:
            value = self._queue.codec.decode(data)
        except Exception as exc:
            return data, f"cannot decode: {type(exc).__name__}: {exc}"
        delivery: Delivery[T] = Delivery(self._queue.stream, entry_id, value, deliveries, data)
        self._held[entry_id] = delivery
        self._ready.append(delivery)
        return None

    async def _pending_count(self) -> int:
        q = self._queue
        n = await self._reconnect.call(
            "XPENDING", lambda: self._pending_script(keys=[q.stream], args=[q.group])
        )
        return int(n)

    # -- statistics -----------------------------------------------------------------------------

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            consumer=self.consumer,
            prefetch=self.prefetch,
            in_flight=len(self._held),
            delivered=self._delivered,
            reclaimed=self._reclaimed,
            acked=self._acked,
            failed=self._failed,
            dead_lettered=self._dead_lettered,
            reconnects=self._reconnect.failures,
            last_error=self._reconnect.last_error,
            stopping=self._stopping,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        state = "stopping" if s.stopping else "running"
        return (
            f"<StreamWorker {self._queue.stream!r}/{self._queue.group}/{s.consumer} {state} "
            f"in_flight={s.in_flight}/{s.prefetch} delivered={s.delivered} acked={s.acked} "
            f"failed={s.failed} dead={s.dead_lettered} reconnects={s.reconnects}>"
        )


def _data_field(fields: Any) -> bytes | None:
    """The ``d`` field of an entry, whether redis-py made its fields a dict or a script
    returned them as a flat list (field, value, ...)."""
    if isinstance(fields, dict):
        return fields.get(b"d")
    fields = fields or ()
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"d":
            return fields[i + 1]  # type: ignore[no-any-return]
    return None


_RELEASE_ERRORS = (TimeoutError, redis.exceptions.RedisError, ConnectionError)
