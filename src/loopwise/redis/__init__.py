"""loopwise past one process: work queues on Redis Streams, a shared rate limit and a backplane for
the server kit, on redis-py's asyncio client.

Needs the ``redis`` extra: ``pip install 'loopwise[redis]'``. Importing ``loopwise`` never imports
redis; importing this package without it raises one ``ImportError`` that says what to install.

* :class:`WorkQueue`: producers add items to a stream; :meth:`WorkQueue.consume` gives a
  :class:`StreamWorker`, the source that ``Pipeline`` and ``amap`` read from, acknowledging each
  item only after its last stage (at-least-once), reclaiming items of dead workers and moving
  failed ones to a dead-letter stream.
* :class:`SharedRateLimiter`: one rate limit for every process (GCRA in one Lua script on Redis'
  clock), with the interface of :class:`~loopwise.patterns.RateLimiter`.
* :class:`Backplane`: a ``WebSocketHub`` broadcast and an ``EventChannel`` event reach the
  clients of every server process; SSE ids and history are shared and survive restarts.

See docs/scale.md for every guarantee.
"""

try:
    import redis.asyncio as _redis_asyncio  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "loopwise.redis needs redis-py, which is not installed: "
        "install the extra with `pip install 'loopwise[redis]'`"
    ) from _exc

from loopwise.redis._backplane import Backplane as Backplane
from loopwise.redis._backplane import BackplaneStatistics as BackplaneStatistics
from loopwise.redis._codec import BYTES as BYTES
from loopwise.redis._codec import JSON as JSON
from loopwise.redis._codec import TEXT as TEXT
from loopwise.redis._codec import Codec as Codec
from loopwise.redis._connection import RedisUnavailableError as RedisUnavailableError
from loopwise.redis._delivery import DeadLetter as DeadLetter
from loopwise.redis._delivery import Delivery as Delivery
from loopwise.redis._delivery import WorkerStatistics as WorkerStatistics
from loopwise.redis._delivery import idempotency_key as idempotency_key
from loopwise.redis._limiter import SharedRateLimiter as SharedRateLimiter
from loopwise.redis._limiter import SharedRateLimiterStatistics as SharedRateLimiterStatistics
from loopwise.redis._queue import WorkQueue as WorkQueue
from loopwise.redis._worker import StreamWorker as StreamWorker

__all__ = [
    "BYTES",
    "JSON",
    "TEXT",
    "Backplane",
    "BackplaneStatistics",
    "Codec",
    "DeadLetter",
    "Delivery",
    "RedisUnavailableError",
    "SharedRateLimiter",
    "SharedRateLimiterStatistics",
    "StreamWorker",
    "WorkQueue",
    "WorkerStatistics",
    "idempotency_key",
]
