"""How a StreamWorker settles the items it handed out: acknowledgements queued and sent
together (or by the next read), failures recorded, dead letters written."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from loopwise.redis._connection import Reconnect
from loopwise.redis._delivery import Delivery

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from loopwise.redis._queue import WorkQueue

__all__ = ["Settling"]

T = TypeVar("T")
R = TypeVar("R")

_ACK_GATHER = 0.002  # seconds an acknowledgement waits for others to share its XACK
_ACK_BATCH = 1000  # ids in one XACK at most

logger = logging.getLogger("loopwise.redis")


class Settling(Generic[T]):
    """The settling half of :class:`~loopwise.redis.StreamWorker` (its reading half shares
    this state: the items held, the acknowledgements queued, the room it waits for)."""

    consumer: str
    prefetch: int
    max_deliveries: int
    _queue: WorkQueue[T]
    _reconnect: Reconnect
    _ack_script: AsyncScript
    _dead_script: AsyncScript
    _record_script: AsyncScript
    _held: dict[str, Delivery[T]]
    _to_ack: list[str]
    _flusher: asyncio.Task[None] | None
    _gathering: asyncio.Future[None] | None
    _room: asyncio.Event
    _room_needed: int
    _idle: bool
    _stopping: bool
    _releasing: bool
    _acked: int
    _failed: int
    _dead_lettered: int

    async def ack_many(self, batch: list[Delivery[R]]) -> list[Delivery[R]]:
        """:meth:`ack` for a list: the last stage of a pipeline over :meth:`batches`. Each
        delivery is acknowledged or, when a step failed it, recorded as :meth:`ack` does; the
        successes are queued first, so a failure's round trip does not hold them back."""
        done = [delivery.id for delivery in batch if delivery.error is None]
        if done:
            self._to_ack += done
            self._acks_queued()
        for delivery in batch:
            if delivery.error is not None:
                await self._settle_failure(delivery)
        return batch

    async def ack(self, delivery: Delivery[R]) -> Delivery[R]:
        """The last stage: acknowledge the item, or (when a step failed) record its error and
        leave it pending to be retried, or dead-letter it after ``max_deliveries``. Returns the
        delivery.

        An acknowledgement is queued and returns at once; the worker's next read sends the
        queued ones in its own round trip (before reading into the room they free), or, when
        no read takes them within 2 ms, one ``XACK`` sends them together (at once when the
        stream has nothing new or the worker stops). Either way it retries while Redis is
        unreachable and frees the item's ``prefetch`` slot when Redis confirmed it. Leaving
        the worker's ``async with`` waits for them (5 s at most). A failure is recorded in one
        round trip before this returns; cancelled, the item stays pending."""
        if delivery.error is None:
            self._queue_ack(delivery)
            return delivery
        return await self._settle_failure(delivery)

    def _queue_ack(self, delivery: Delivery[Any]) -> None:
        self._to_ack.append(delivery.id)
        self._acks_queued()

    def _acks_queued(self) -> None:
        """Acknowledgements were queued: start the flusher, or wake it or the reader if they
        wait for that many."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        elif self._gathering is not None and len(self._to_ack) >= _ACK_BATCH:
            _resolve(self._gathering)  # a full XACK (idle or stopping, the flusher was told)
        needed = self._room_needed
        if needed and self.prefetch - len(self._held) + len(self._to_ack) >= needed:
            self._room.set()  # the reader waits for this room: its read sends the acks

    async def _settle_failure(self, delivery: Delivery[R]) -> Delivery[R]:
        """Record a step's failure (or dead-letter the item after ``max_deliveries``) and free
        its slot; the item stays pending until then."""
        q = self._queue
        error = cast("Exception", delivery.error)
        reason = f"{type(error).__name__}: {error}"
        if delivery.deliveries >= self.max_deliveries:
            await self._dead_letter(delivery.id, delivery._data, reason, delivery.deliveries)
        else:
            await self._reconnect.call(
                "record the error",
                lambda: self._record_script(
                    keys=[q.stream, q.errors_key], args=[q.group, delivery.id, reason]
                ),
            )
        self._failed += 1
        if self._held.pop(delivery.id, None) is not None:
            self._room.set()
        return delivery

    async def _flush(self) -> None:
        """Send the queued acknowledgements together, one XACK at a time: each gathers for up
        to 2 ms, unless what is queued is already worth the round trip (``_enough_to_send``)."""
        q = self._queue
        try:
            while self._to_ack:
                if not self._enough_to_send():
                    await self._gather()  # let more items finish: fewer round trips
                    if not self._to_ack:
                        break  # a read took them, to send them in its own round trip
                ids, self._to_ack = self._to_ack[:_ACK_BATCH], self._to_ack[_ACK_BATCH:]
                try:
                    send = functools.partial(
                        self._ack_script, keys=[q.stream, q.errors_key], args=[q.group, *ids]
                    )
                    await self._reconnect.call("XACK", send)
                except Exception:  # not a connection error: the items stay pending in Redis
                    logger.exception("StreamWorker %r: acknowledging failed", q.stream)
                else:
                    self._acked += len(ids)
                for entry_id in ids:
                    self._held.pop(entry_id, None)
                self._room.set()
        finally:
            self._flusher = None

    def _enough_to_send(self) -> bool:
        """Whether the queued acknowledgements are worth their own round trip now: when the
        stream has nothing new (the reader waits on Redis, not for room), when the worker
        stops, or a full XACK.
        Otherwise they gather for 2 ms, and the reader takes them first when it needs their
        room: its read sends them in the same round trip."""
        return self._idle or self._stopping or self._releasing or len(self._to_ack) >= _ACK_BATCH

    async def _gather(self) -> None:
        """Wait up to 2 ms for more acknowledgements, or until there are enough to send."""
        loop = asyncio.get_running_loop()
        gathering = self._gathering = loop.create_future()
        timer = loop.call_later(_ACK_GATHER, _resolve, gathering)
        try:
            await gathering
        finally:
            timer.cancel()
            self._gathering = None

    def _send_acks_now(self) -> None:
        if self._gathering is not None and self._enough_to_send():
            _resolve(self._gathering)

    async def _dead_letter(self, entry_id: str, data: bytes, reason: str, deliveries: int) -> None:
        q = self._queue
        fields: list[Any] = [
            "id",
            entry_id,
            "data",
            data,
            "error",
            reason,
            "deliveries",
            deliveries,
        ]
        fields += ["group", q.group, "consumer", self.consumer]
        dead = await self._reconnect.call(
            "dead letter",
            lambda: self._dead_script(
                keys=[q.stream, q.errors_key, q.dead_letter], args=[q.group, entry_id, *fields]
            ),
        )
        if dead is not None:  # not when another delivery acknowledged the item meanwhile
            self._dead_lettered += 1


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
