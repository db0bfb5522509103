"""loopwise: make asyncio and aiohttp code correct and fast."""

from loopwise._exceptions import ClosedError as ClosedError
from loopwise._exceptions import ConfigError as ConfigError
from loopwise._exceptions import LoopwiseError as LoopwiseError
from loopwise._exceptions import UsageError as UsageError
from loopwise._version import __version__ as __version__
from loopwise.patterns import Attempt as Attempt
from loopwise.patterns import CapacityLimiter as CapacityLimiter
from loopwise.patterns import Failure as Failure
from loopwise.patterns import LoopThread as LoopThread
from loopwise.patterns import Pipeline as Pipeline
from loopwise.patterns import RateLimiter as RateLimiter
from loopwise.patterns import Retry as Retry
from loopwise.patterns import Supervisor as Supervisor
from loopwise.patterns import amap as amap
from loopwise.patterns import retry as retry
from loopwise.patterns import run as run
from loopwise.patterns import run_sync as run_sync

__all__ = [
    "Attempt",
    "CapacityLimiter",
    "ClosedError",
    "ConfigError",
    "Failure",
    "LoopThread",
    "LoopwiseError",
    "Pipeline",
    "RateLimiter",
    "Retry",
    "Supervisor",
    "UsageError",
    "__version__",
    "amap",
    "retry",
    "run",
    "run_sync",
]
