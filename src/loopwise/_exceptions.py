"""The errors loopwise raises.

Every error derives from :class:`LoopwiseError`, so ``except loopwise.LoopwiseError`` catches
anything the library raises on purpose::

    LoopwiseError
    ├── ConfigError          a bad option, config key, rule code or path given to loopwise
    ├── HTTPProblem          an HTTP error answer (4xx/5xx), served as problem+json (RFC 9457)
    ├── HTTPError            a request sent with loopwise.http.Client failed (.method, .url)
    │   ├── HTTPStatusError  the server answered 4xx/5xx (.status, .reason, .headers, .body)
    │   ├── TransportError   no complete answer: connection dropped, body cut short, TLS failed
    │   │   ├── ConnectError the request never reached the server (refused, DNS, connect timeout)
    │   │   │   └── PoolTimeout (also HTTPTimeout) no connection within pool_timeout
    │   │   └── HTTPTimeout  (also TimeoutError) no data within the read or total timeout
    │   ├── DecodingError    (also ValueError) a body that is not the JSON or text asked for
    │   ├── InvalidURL       (also ValueError) a URL the client cannot send a request to
    │   ├── TooManyRedirects max_redirects redirects in a row (.chain: the URLs, in order)
    │   └── RetryExhausted   the retry policy gave up (.attempts, .last, also the __cause__)
    ├── ClosedError          (also RuntimeError) work handed to a closed Pipeline, LoopThread...
    └── UsageError           (also RuntimeError) an API called where it cannot work, e.g. run_sync()
                             on the event loop's own thread; the message says what to do instead
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yarl import URL

    from loopwise.http._retry_policy import AttemptRecord

__all__ = [
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "DecodingError",
    "HTTPError",
    "HTTPProblem",
    "HTTPStatusError",
    "HTTPTimeout",
    "InvalidURL",
    "LoopwiseError",
    "PoolTimeout",
    "RetryExhausted",
    "TooManyRedirects",
    "TransportError",
    "UsageError",
]


class LoopwiseError(Exception):
    """Base class of every error loopwise raises on purpose."""


class ConfigError(LoopwiseError):
    """A bad option, config key, rule code or path: the message says which, and what to use."""


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

    The work was not accepted: nothing of it ran. ``__cause__`` is the failure that closed it, if
    any.
    """


class UsageError(LoopwiseError, RuntimeError):
    """An API was called where it cannot work (for example ``run_sync()`` on the event loop's own
    thread, where it would deadlock); the message says what to do instead."""


class HTTPError(LoopwiseError):
    """A request sent with :class:`loopwise.http.Client` failed.

    ``method`` and ``url`` name the request (the URL without user name or password, so the error is
    safe to log). ``__cause__`` is aiohttp's original exception, when there was one.
    """

    def __init__(self, message: str, *, method: str, url: URL) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class HTTPStatusError(HTTPError):
    """The server answered with a 4xx or 5xx status (and ``raise_for_status`` was on).

    ``status``, ``reason`` and ``headers`` come from the response; ``body`` is an excerpt of its
    body (the first couple of KiB, decoded with errors replaced), enough to read a JSON error. The
    response itself has already been released.
    """

    def __init__(
        self,
        *,
        method: str,
        url: URL,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        body: str = "",
    ) -> None:
        message = f"{f'{status} {reason}'.strip()} for {method} {url}"
        if body:
            line = " ".join(body.split())
            message += f": {line[:200]}" + ("..." if len(line) > 200 else "")
        message += " (pass raise_for_status=False to get the response instead)"
        super().__init__(message, method=method, url=url)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class TransportError(HTTPError):
    """No complete answer: the connection failed or dropped, the body was cut short, TLS failed."""


class ConnectError(TransportError):
    """The request never reached the server: connection refused, DNS failure, connect timeout.

    Retrying is safe for every method, since the server saw nothing.
    """


class HTTPTimeout(TransportError, TimeoutError):
    """No data arrived within the read timeout (``sock_read``), or the total timeout ran out."""


class PoolTimeout(ConnectError, HTTPTimeout):
    """No connection within the client's ``pool_timeout`` (or the request's total timeout,
    when shorter): the pool stayed full (responses or streams not released, or more concurrent
    requests than ``limit``/``limit_per_host``), or a new connection could not be opened in
    time. The request never reached the server. Not retried: a retry would wait past the
    bound."""


class DecodingError(HTTPError, ValueError):
    """The body is not what was asked for: not JSON for ``get_json``, not valid text for
    ``get_text``. ``body`` holds an excerpt of it."""

    def __init__(self, message: str, *, method: str, url: URL, body: str = "") -> None:
        super().__init__(message, method=method, url=url)
        self.body = body


class InvalidURL(HTTPError, ValueError):
    """A URL the client cannot send a request to: malformed, not http(s), or relative without a
    ``base_url``."""


class TooManyRedirects(HTTPError):
    """The server answered ``max_redirects`` redirects in a row (aiohttp's default 10), whatever
    ``raise_for_status`` says: there is no final answer to return. Not retried.

    ``chain`` holds the URLs in order: the one requested, then the target of each redirect
    followed, then the target that was not (all without user name or password).
    """

    def __init__(self, message: str, *, method: str, url: URL, chain: tuple[URL, ...]) -> None:
        super().__init__(message, method=method, url=url)
        self.chain = chain


class RetryExhausted(HTTPError):
    """The retry policy gave up on a failure it retries: attempts or ``max_time`` used up, or a
    ``Retry-After`` longer than the policy allows.

    ``attempts`` holds one :class:`~loopwise.http.AttemptRecord` per attempt, in order; ``last``
    is the error of the final attempt (also the ``__cause__``); ``status`` is its HTTP status when
    it was an answer, else None; ``reason`` says why the policy gave up.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: URL,
        attempts: tuple[AttemptRecord, ...],
        last: HTTPError,
        reason: str,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.attempts = attempts
        self.last = last
        self.reason = reason

    @property
    def status(self) -> int | None:
        """The HTTP status of the last attempt, or None when it got no answer."""
        last = self.last
        return last.status if isinstance(last, HTTPStatusError) else None
