"""The options of :class:`~loopwise.http.Client` and its requests: defaults, checks, coercions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias, final

import aiohttp
from yarl import URL

from loopwise._exceptions import InvalidURL
from loopwise.http._errors import public
from loopwise.http._retry_policy import HTTPRetry
from loopwise.patterns import RateLimiter, Retry

__all__ = [
    "DEFAULT_POOL_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "USE_CLIENT_DEFAULT",
    "RetryOption",
    "StrOrURL",
    "TimeoutOption",
    "UseClientDefault",
]

StrOrURL: TypeAlias = str | URL
RetryOption: TypeAlias = HTTPRetry | Retry | int | None
TimeoutOption: TypeAlias = aiohttp.ClientTimeout | float | None


@final
class UseClientDefault:
    """The type of :data:`USE_CLIENT_DEFAULT`: a request option left to the client's setting.

    A marker rather than ``None`` because ``None`` means something for these options
    (``retry=None``: no retries; ``timeout=None``: no timeout).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"

    def __reduce__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault()
"""The default of a request's ``retry``, ``raise_for_status`` and ``timeout``: use the client's.
Pass it explicitly when wrapping a verb and forwarding an option you were not given."""

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=30)
"""aiohttp's own default: 5 minutes for the whole request (body included), 30 s to connect."""

DEFAULT_POOL_TIMEOUT = 60.0
"""``pool_timeout`` of a :class:`Client` when none is given: the longest wait for a connection."""

DEFAULT_READ_TIMEOUT = 60.0
"""``sock_read`` of :meth:`Client.stream` and :meth:`Client.download` when none is given."""

DEFAULT_RETRY = HTTPRetry()
"""3 attempts, idempotent methods, 429/502/503/504, ``Retry-After`` up to 120 s, backoff 0.5 s
doubling up to 30 s with full jitter."""

SESSION_KEYS_MANAGED = frozenset(
    {"base_url", "connector", "timeout", "headers", "raise_for_status", "loop"}
)
REQUEST_KEYS_TYPED = frozenset(
    {
        "params",
        "data",
        "json",
        "headers",
        "cookies",
        "auth",
        "timeout",
        "allow_redirects",
        "max_redirects",
        "retry",
        "raise_for_status",
        "method",
        "url",
        "str_or_url",
    }
)


def check_base_url(base_url: StrOrURL | None) -> URL | None:
    if base_url is None:
        return None
    try:
        url = URL(base_url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"base_url {base_url!r} is not a URL: {exc}") from exc
    if not url.absolute or url.scheme not in ("http", "https"):
        raise ValueError(
            f"base_url must be an absolute http(s) URL such as 'https://api.example.com/v1/', "
            f"got {str(base_url)!r}"
        )
    if not url.path.endswith("/"):
        url = url.with_path(url.path + "/")
    return url.with_query(None).with_fragment(None)


def check_limit(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (0: no limit), got {value!r}")
    return value


def check_seconds(name: str, value: float | None, *, none: str) -> float | None:
    """``value`` as a float number of seconds > 0, or None (``none`` says what None means)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a number of seconds > 0 or None ({none}), got {value!r}")
    return float(value)


def check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1 (bytes), got {chunk_size!r}")


def check_raise_for_status(value: bool | UseClientDefault) -> None:
    if not isinstance(value, bool | UseClientDefault):
        raise TypeError(
            f"raise_for_status must be True, False or leave it out (the client's setting), got "
            f"raise_for_status={value!r}; a wrapper forwarding 'the default' passes "
            "loopwise.http.USE_CLIENT_DEFAULT"
        )


def coerce_timeout(timeout: TimeoutOption) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(
            f"timeout must be an aiohttp.ClientTimeout, a number of seconds > 0 or None, "
            f"got {timeout!r}"
        )
    return aiohttp.ClientTimeout(total=float(timeout))


def with_connect_bound(
    timeout: aiohttp.ClientTimeout, bound: float | None
) -> aiohttp.ClientTimeout:
    """``timeout`` with ``bound`` as its ``connect`` (getting a connection) when it has none."""
    if timeout.connect is not None or bound is None:
        return timeout
    return aiohttp.ClientTimeout(
        total=timeout.total,
        connect=bound,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


def streaming_timeout(
    base: aiohttp.ClientTimeout, read_timeout: float | None
) -> aiohttp.ClientTimeout:
    """The timeout of a stream or download: no total, ``read_timeout`` between two reads (else
    the client's ``sock_read``, else :data:`DEFAULT_READ_TIMEOUT`), ``base``'s connect bounds."""
    if read_timeout is None:
        read_timeout = base.sock_read if base.sock_read is not None else DEFAULT_READ_TIMEOUT
    elif (
        isinstance(read_timeout, bool)
        or not isinstance(read_timeout, int | float)
        or not read_timeout > 0
    ):
        raise ValueError(f"read_timeout must be a number of seconds > 0, got {read_timeout!r}")
    return aiohttp.ClientTimeout(
        total=None,
        connect=base.connect,
        sock_connect=base.sock_connect,
        sock_read=read_timeout,
    )


def coerce_retry(retry: RetryOption) -> HTTPRetry | None:
    if retry is None or isinstance(retry, HTTPRetry):
        return retry
    if isinstance(retry, Retry):
        return HTTPRetry.from_retry(retry)
    if isinstance(retry, int) and not isinstance(retry, bool):
        return DEFAULT_RETRY.replace(attempts=retry)
    raise TypeError(
        "retry takes an HTTPRetry, a loopwise.retry() policy, a number of attempts, None or "
        f"USE_CLIENT_DEFAULT, got {retry!r}"
    )


def check_rate(
    rate: float | RateLimiter | None, scope: Literal["host", "global"] | None
) -> tuple[float | None, RateLimiter | None]:
    """(requests per second per host, or the limiter shared by every request)."""
    if scope not in (None, "host", "global"):
        raise ValueError(f"rate_scope must be 'host' or 'global', got {scope!r}")
    if rate is None:
        return None, None
    if isinstance(rate, RateLimiter):
        if scope == "host":
            raise ValueError(
                "a RateLimiter instance is shared by every request: pass a number of requests "
                "per second for a limit per host"
            )
        return None, rate
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise TypeError(f"rate must be requests per second or a RateLimiter, got {rate!r}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number of requests per second > 0, got {rate!r}")
    if scope == "global":
        return None, RateLimiter(rate)
    return float(rate), None


def check_session_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    result = dict(options or {})
    clash = SESSION_KEYS_MANAGED & result.keys()
    if clash:
        raise ValueError(
            f"session_options may not set {', '.join(sorted(clash))}: "
            "use the Client argument of the same name instead"
        )
    return result


def check_connector_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    result = dict(options or {})
    if {"limit", "limit_per_host"} & result.keys():
        raise ValueError(
            "connector_options may not set limit/limit_per_host: use the Client arguments"
        )
    return result


def check_aiohttp_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request's ``aiohttp_options``: aiohttp keyword arguments the signature does not name."""
    result = dict(options or {})
    clash = REQUEST_KEYS_TYPED & result.keys()
    if clash:
        raise ValueError(
            f"aiohttp_options may not set {', '.join(sorted(clash))}: "
            "pass the keyword argument of the same name instead"
        )
    return result


def replayable(kwargs: Mapping[str, Any]) -> bool:
    """Whether the request body can be sent again (a stream or a file cannot)."""
    data = kwargs.get("data")
    return data is None or isinstance(data, bytes | bytearray | str | dict | list | tuple)


def resolve_url(base_url: URL | None, method: str, url: StrOrURL) -> URL:
    """The absolute http(s) URL a request goes to, or :class:`InvalidURL` saying why not."""
    if isinstance(url, str):
        try:
            url = URL(url)
        except (ValueError, TypeError) as exc:
            raise InvalidURL(f"invalid URL {url!r}: {exc}", method=method, url=URL()) from exc
    elif not isinstance(url, URL):
        raise TypeError(f"url must be a str or yarl.URL, got {url!r}")
    if not url.absolute:
        if base_url is None:
            raise InvalidURL(
                f"relative URL {str(url)!r} needs a base: pass Client(base_url=...) or an "
                "absolute URL",
                method=method,
                url=url,
            )
        url = base_url.join(url)
    if url.scheme not in ("http", "https"):
        raise InvalidURL(
            f"cannot send a request to {str(public(url))!r}: only http and https URLs work",
            method=method,
            url=public(url),
        )
    return url
