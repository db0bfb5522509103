"""The errors loopwise raises.

Every error derives from :class:`LoopwiseError`, so ``except loopwise.LoopwiseError`` catches
anything the library raises on purpose::

    LoopwiseError
    ├── ConfigError          a bad option, config key, rule code or path given to loopwise
    ├── HTTPProblem          an HTTP error answer (4xx/5xx), served as problem+json (RFC 9457)
    ├── ClosedError          (also RuntimeError) work handed to a closed Pipeline/LoopThread/Supervisor
    └── UsageError           (also RuntimeError) an API called where it cannot work, e.g. run_sync()
                             on the event loop's own thread; the message says what to do instead
"""

from __future__ import annotations

__all__ = ["ClosedError", "ConfigError", "HTTPProblem", "LoopwiseError", "UsageError"]


class LoopwiseError(Exception):
    """Base class of every error loopwise raises on purpose."""


class ConfigError(LoopwiseError):
    """A bad option, config key, rule code or path: the message says which and what to use instead."""


class HTTPProblem(LoopwiseError):
    """An HTTP error answer that a handler raises; ``problem_middleware`` serves it as
    ``application/problem+json`` (RFC 9457) with exactly the fields given here.

    ``status`` must be 400-599. ``title`` defaults to the status phrase; ``detail`` is shown to the
    client, so put only what the client may read in it. Extra keyword arguments become extension
    members of the problem object (``errors=[...]`` for a 422, for example); they must be JSON
    serialisable. ``headers`` are added to the response (``Retry-After``, ``Allow``, ...).
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        *,
        detail: str | None = None,
        type: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: object,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(
                f"HTTPProblem status must be 400-599, got {status}: "
                "return a normal response (or raise aiohttp's HTTPFound & co) for other codes"
            )
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(f"{status} {title or ''}".rstrip() + (f": {detail}" if detail else ""))


class ClosedError(LoopwiseError, RuntimeError):
    """Work was handed to a Pipeline, LoopThread or Supervisor that is closing or closed.

    The work was not accepted: nothing of it ran. ``__cause__`` is the failure that closed it, if any.
    """


class UsageError(LoopwiseError, RuntimeError):
    """An API was called where it cannot work (for example ``run_sync()`` on the event loop's own
    thread, where it would deadlock); the message says what to do instead."""
