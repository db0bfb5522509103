"""loopwise: make asyncio and aiohttp code correct and fast."""

from loopwise._exceptions import ConfigError as ConfigError
from loopwise._exceptions import LoopwiseError as LoopwiseError
from loopwise._version import __version__ as __version__

__all__ = [
    "ConfigError",
    "LoopwiseError",
    "__version__",
]
