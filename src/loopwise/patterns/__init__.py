"""The asyncio building blocks people keep hand-writing wrong, done right.

* :func:`amap`: map an async function over a (possibly infinite) iterable, lazily, with bounded
  concurrency, optional rate limit, ordered or not, raising or collecting failures.
* :class:`RateLimiter`: a FIFO limiter with a strict window bound and one timer.
* :class:`CapacityLimiter`: at most N holders at once, FIFO, no barging.
* :func:`retry`: an immutable retry policy (decorator, ``call()``, or attempt loop).
* :class:`Pipeline`: stages of workers connected by bounded channels, with graceful close.
* :class:`Supervisor`: a TaskGroup that also owns background tasks and restartable services.
* :class:`LoopThread` and :func:`run_sync`: call async code from sync code without deadlocks.
* :func:`run`: ``asyncio.run`` with uvloop when installed.

See docs/patterns.md for every guarantee.
"""

from loopwise.patterns._bridge import LoopThread as LoopThread
from loopwise.patterns._bridge import LoopThreadStatistics as LoopThreadStatistics
from loopwise.patterns._bridge import run_sync as run_sync
from loopwise.patterns._cancel import StrayCancellationError as StrayCancellationError
from loopwise.patterns._capacity import CapacityLimiter as CapacityLimiter
from loopwise.patterns._capacity import CapacityLimiterStatistics as CapacityLimiterStatistics
from loopwise.patterns._limit import RateLimiter as RateLimiter
from loopwise.patterns._limit import RateLimiterStatistics as RateLimiterStatistics
from loopwise.patterns._map import AMap as AMap
from loopwise.patterns._map import AMapStatistics as AMapStatistics
from loopwise.patterns._map import Failure as Failure
from loopwise.patterns._map import amap as amap
from loopwise.patterns._pipeline import Pipeline as Pipeline
from loopwise.patterns._pipeline import PipelineStatistics as PipelineStatistics
from loopwise.patterns._pipeline import StageStatistics as StageStatistics
from loopwise.patterns._retry import Attempt as Attempt
from loopwise.patterns._retry import AttemptLoop as AttemptLoop
from loopwise.patterns._retry import GiveUpReason as GiveUpReason
from loopwise.patterns._retry import Retry as Retry
from loopwise.patterns._retry import RetryStatistics as RetryStatistics
from loopwise.patterns._retry import retry as retry
from loopwise.patterns._retry import retry_after_attribute as retry_after_attribute
from loopwise.patterns._retry import retry_testing as retry_testing
from loopwise.patterns._retry import set_retry_testing as set_retry_testing
from loopwise.patterns._run import run as run
from loopwise.patterns._supervise import Supervisor as Supervisor
from loopwise.patterns._supervise import SupervisorStatistics as SupervisorStatistics

__all__ = [
    "AMap",
    "AMapStatistics",
    "Attempt",
    "AttemptLoop",
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "Failure",
    "GiveUpReason",
    "LoopThread",
    "LoopThreadStatistics",
    "Pipeline",
    "PipelineStatistics",
    "RateLimiter",
    "RateLimiterStatistics",
    "Retry",
    "RetryStatistics",
    "StageStatistics",
    "StrayCancellationError",
    "Supervisor",
    "SupervisorStatistics",
    "amap",
    "retry",
    "retry_after_attribute",
    "retry_testing",
    "run",
    "run_sync",
    "set_retry_testing",
]
