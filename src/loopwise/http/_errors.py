"""aiohttp's exceptions and error answers mapped to loopwise's :class:`HTTPError` tree."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

import aiohttp
from yarl import URL

from loopwise._exceptions import (
    ConnectError,
    DecodingError,
    HTTPError,
    HTTPStatusError,
    HTTPTimeout,
    InvalidURL,
    PoolTimeout,
    RetryExhausted,
    TooManyRedirects,
    TransportError,
)
from loopwise.http._retry_policy import AttemptRecord, HTTPRetry, never_reached_server
from loopwise.patterns._retry import GiveUpReason

CLIENT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
"""What aiohttp raises for a failed request: mapped by :func:`map_error`."""

EXCERPT_BYTES = 2048


class PoolWaitTimeout(aiohttp.ConnectionTimeoutError):
    """aiohttp's connection timeout, known to be the pool timeout (mapped to PoolTimeout)."""


def public(url: URL) -> URL:
    """The URL without user name and password, fit for messages and logs."""
    return url.with_user(None) if url.raw_user is not None else url


def map_error(exc: BaseException, method: str, url: URL) -> HTTPError:
    """aiohttp's exception as one of ours (the caller chains it as ``__cause__``)."""
    shown = public(url)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.TooManyRedirects):
        return too_many_redirects(exc, method, shown)
    if isinstance(exc, aiohttp.ContentTypeError):
        return DecodingError(f"{method} {shown}: {exc.message}", method=method, url=shown)
    if isinstance(exc, aiohttp.ClientResponseError):
        return HTTPStatusError(
            method=method,
            url=shown,
            status=exc.status,
            reason=exc.message,
            headers=exc.headers or {},
        )
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return InvalidURL(f"{method} {shown}: invalid URL: {detail}", method=method, url=shown)
    if isinstance(exc, PoolWaitTimeout):
        return PoolTimeout(f"{method} {shown}: {exc}", method=method, url=shown)
    if never_reached_server(exc):
        return ConnectError(f"{method} {shown}: cannot connect: {detail}", method=method, url=shown)
    if isinstance(exc, asyncio.TimeoutError):  # includes aiohttp's ServerTimeoutError
        return HTTPTimeout(
            f"{method} {shown}: timed out: {detail} (raise the timeout, or use stream() or "
            "download() for long bodies)",
            method=method,
            url=shown,
        )
    return TransportError(f"{method} {shown}: {detail}", method=method, url=shown)


def closed_error(method: str, url: URL) -> TransportError:
    return TransportError(
        f"{method} {public(url)}: the Client was closed while this request was in flight",
        method=method,
        url=public(url),
    )


def pool_wait_timeout(
    exc: asyncio.TimeoutError,
    timeout: aiohttp.ClientTimeout,
    waited: float,
    limits: tuple[int, int],
) -> asyncio.TimeoutError:
    """``exc``, or a :class:`PoolWaitTimeout` when the request timed out waiting for a
    connection: aiohttp's ``connect`` bound (the pool timeout: waiting for a free place in the
    pool, then opening a connection) rather than ``sock_connect``, or the ``total`` bound while
    the pool was full. aiohttp raises the same exceptions for these; where its timer fired tells
    them apart (the time waited when aiohttp's code no longer looks as expected).
    """
    pool = f"the pool (limit={limits[0]}, limit_per_host={limits[1]})"
    advice = (
        "release responses and streams (leave their `async with`), or raise the limits or "
        "pool_timeout"
    )
    if not isinstance(exc, aiohttp.ConnectionTimeoutError):  # the total bound
        if timeout.total is None or not _waited_in_pool(exc.__cause__):
            return exc
        return _pool_wait_timeout(
            f"no connection within the total timeout of {timeout.total:g}s: {pool} stayed full; "
            f"{advice}",
            exc,
        )
    bound = timeout.connect
    if bound is None:
        return exc
    where = _connect_timeout_site(exc)
    if where == "socket" or (where is None and waited < bound * 0.95):
        return exc
    if where == "opening":
        what = f"the server did not accept a new connection in time ({pool} had room)"
    elif where == "pool":
        what = f"{pool} stayed full"
    else:
        what = f"{pool} stayed full or the server did not accept a new connection in time"
    return _pool_wait_timeout(f"no connection within {bound:g}s: {what}; {advice}", exc)


def _pool_wait_timeout(message: str, cause: BaseException) -> PoolWaitTimeout:
    error = PoolWaitTimeout(message)
    error.__cause__ = cause
    return error


def _waited_in_pool(interrupted: BaseException | None) -> bool:
    """Whether the cancellation a timer turned into a timeout hit a wait for a pool place."""
    return isinstance(interrupted, asyncio.CancelledError) and (
        "_wait_for_available_connection" in _frame_names(interrupted.__traceback__)
    )


def _frame_names(tb: TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def _connect_timeout_site(
    exc: aiohttp.ConnectionTimeoutError,
) -> Literal["pool", "opening", "socket"] | None:
    """Which of aiohttp's timers fired: the ``connect`` bound while waiting for the pool or
    while opening a connection, or ``sock_connect``; None when the traceback is not laid out as
    in aiohttp 3.12 to 3.14 (``connect`` raising its own timeout, else a deeper frame)."""
    fired = exc.__cause__
    if not isinstance(fired, asyncio.TimeoutError):
        return None
    names = _frame_names(fired.__traceback__)
    if "connect" not in names:
        return None
    if any(name != "__aexit__" for name in names[names.index("connect") + 1 :]):
        return "socket"  # raised below the connector's own timer: sock_connect
    return "pool" if _waited_in_pool(fired.__cause__) else "opening"


def too_many_redirects(exc: aiohttp.TooManyRedirects, method: str, url: URL) -> TooManyRedirects:
    chain = [public(response.url) for response in exc.history]
    if exc.history:
        last = exc.history[-1]
        location = last.headers.get("Location")
        if location is not None:
            with contextlib.suppress(ValueError):
                chain.append(public(last.url.join(URL(location))))
    hops = len(exc.history)
    shown = " -> ".join(u.path_qs if u.origin() == url.origin() else str(u) for u in chain)
    return TooManyRedirects(
        f"{method} {url}: gave up after {hops} redirects, the max_redirects limit ({shown}); "
        "the server may redirect in a loop: pass max_redirects=... to allow more, or "
        "allow_redirects=False to get the redirect itself",
        method=method,
        url=url,
        chain=tuple(chain),
    )


def exhausted(
    rules: HTTPRetry,
    records: list[AttemptRecord],
    number: int,
    error: HTTPError,
    raw: BaseException | None,
    why: GiveUpReason,
    hint: float | None = None,
) -> RetryExhausted:
    """RetryExhausted for a failure the policy retries but gave up on."""
    status = error.status if isinstance(error, HTTPStatusError) else None
    attempts = (*records, AttemptRecord(number, status, raw))
    if why == "max_hint":
        asked = "longer than any delay" if hint is None or math.isinf(hint) else f"{hint:g}s"
        reason = f"Retry-After {asked} is above max_retry_after={rules.max_retry_after:g}s"
    elif why == "max_time":
        reason = f"the next attempt would end past max_time={rules.max_time:g}s"
    else:
        reason = f"attempts={rules.attempts} used up"
    n = len(attempts)
    return RetryExhausted(
        f"gave up after {n} attempt{'s' if n > 1 else ''} ({reason}): {error}",
        method=error.method,
        url=error.url,
        attempts=attempts,
        last=error,
        reason=reason,
    )


async def read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def status_error(response: aiohttp.ClientResponse, method: str) -> HTTPStatusError:
    """An HTTPStatusError for ``response``, with an excerpt of its body; releases it."""
    try:
        body = b"" if method == "HEAD" else await read_up_to(response, EXCERPT_BYTES)
    except CLIENT_ERRORS:
        body = b""
    finally:
        response.release()
    return HTTPStatusError(
        method=method,
        url=public(response.url),
        status=response.status,
        reason=response.reason or "",
        headers=response.headers,
        body=excerpt_text(response, body),
    )


def excerpt_text(response: aiohttp.ClientResponse, body: bytes) -> str:
    charset = response.charset or "utf-8"
    try:
        return body[:EXCERPT_BYTES].decode(charset, errors="replace")
    except LookupError:
        return body[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def decode_text(response: aiohttp.ClientResponse, body: bytes, encoding: str | None) -> str:
    charset = encoding or response.charset or "utf-8"
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise DecodingError(
            f"the body of GET {public(response.url)} is not valid {charset} text ({exc}); "
            "pass encoding=..., or use get_bytes()",
            method="GET",
            url=public(response.url),
            body=excerpt_text(response, body),
        ) from exc


def parse_json(response: aiohttp.ClientResponse, body: bytes, loads: Callable[[bytes], Any]) -> Any:
    try:
        return loads(body)
    except ValueError as exc:
        raise DecodingError(
            f"the body of GET {public(response.url)} is not JSON ({exc}); "
            "use get_text() or get_bytes() to read it as it is",
            method="GET",
            url=public(response.url),
            body=excerpt_text(response, body),
        ) from exc
