"""Client: one aiohttp session, bounded, retried by urllib3's rules, errors mapped at the edge."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import json
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self, TypeAlias, TypeVar

import aiohttp
from yarl import URL

from loopwise._exceptions import (
    ClosedError,
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
    UsageError,
)
from loopwise.http._retry_policy import (
    AttemptRecord,
    HTTPRetry,
    never_reached_server,
)
from loopwise.patterns import RateLimiter, Retry
from loopwise.patterns._retry import GiveUpReason

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "Client",
    "ClientStatistics",
    "RequestContext",
    "ResponseStream",
]

T = TypeVar("T")
StrOrURL: TypeAlias = str | URL
RetryOption: TypeAlias = HTTPRetry | Retry | int | None


class _Unset(enum.Enum):
    UNSET = "UNSET"


_UNSET = _Unset.UNSET

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=30)
"""aiohttp's own default: 5 minutes for the whole request (body included), 30 s to connect."""

DEFAULT_RETRY = HTTPRetry()
"""3 attempts, idempotent methods, 429/502/503/504, ``Retry-After`` up to 120 s, backoff 0.5 s
doubling up to 30 s with full jitter."""

DEFAULT_POOL_TIMEOUT = 60.0
"""``pool_timeout`` of a :class:`Client` when none is given: the longest wait for a connection."""

DEFAULT_READ_TIMEOUT = 60.0
"""``sock_read`` of :meth:`Client.stream` and :meth:`Client.download` when none is given."""

_CLIENT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


class _PoolWaitTimeout(aiohttp.ConnectionTimeoutError):
    """aiohttp's connection timeout, known to be the pool timeout (mapped to PoolTimeout)."""


_EXCERPT_BYTES = 2048
_DRAIN_BYTES = 16 * 1024
_SESSION_KEYS_MANAGED = frozenset(
    {"base_url", "connector", "timeout", "headers", "raise_for_status", "loop"}
)

_log = logging.getLogger("loopwise.http")
_background: set[asyncio.Future[Any]] = set()


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot of a :class:`Client`."""

    state: Literal["new", "open", "closed"]
    requests: int
    """Requests started (each counts once, however many attempts it took)."""
    in_flight: int
    """Requests started and not finished: a response or stream still open counts."""
    attempts: int
    """Requests put on the wire, retries included."""
    retries: int
    """Attempts that were retried."""
    failures: int
    """Requests that ended in an :class:`~loopwise.http.HTTPError`."""
    rate_limiters: int
    """Rate limiters in use (one per host with ``rate_scope="host"``)."""


class Client:
    """An HTTP client on one shared :class:`aiohttp.ClientSession`: bounded connection pool,
    retries by urllib3's rules, optional rate limit, errors mapped to :class:`HTTPError`.

    Use it as ``async with Client(...) as client:`` — once per application or component, not per
    request (a session per request is 2 to 3 times slower and defeats keep-alive). The session and
    its connections are closed when the block exits, whatever the exit.

    Options:

    * ``base_url``: relative URLs are joined to it (RFC 3986; a missing trailing ``/`` is added,
      so ``"https://api.example.com/v1"`` + ``"users"`` is ``.../v1/users``).
    * ``limit``, ``limit_per_host``: connections open at once, in all and per host (0: no limit);
      a request waits for a free connection.
    * ``timeout``: an :class:`aiohttp.ClientTimeout`, a number of seconds for the whole request,
      or None for no timeout; per attempt (retries and their delays come on top).
    * ``pool_timeout``: the longest wait for a connection (a free place in the pool, plus opening
      it when none is idle), for every request, stream and download: :class:`PoolTimeout` after
      it. It fills aiohttp's ``connect`` timeout when ``timeout`` leaves it unset; None: no bound.
    * ``retry``: an :class:`HTTPRetry`, a :func:`loopwise.retry` policy (its timing, the HTTP
      rules), a number of attempts, or None for no retries.
    * ``rate``, ``rate_scope``: requests per second, per host (``"host"``, the default) or for
      the whole client (``"global"``); or a :class:`loopwise.RateLimiter` shared as it is. Every
      attempt takes a slot.
    * ``headers``: sent with every request.
    * ``raise_for_status``: raise :class:`HTTPStatusError` for a 4xx/5xx answer (default).
    * ``connector_options``, ``session_options``: more keyword arguments for
      :class:`aiohttp.TCPConnector` (``ssl``, ``ttl_dns_cache``...) and
      :class:`aiohttp.ClientSession` (``cookie_jar``, ``trust_env``, ``auth``...).
    """

    __slots__ = (
        "_attempts",
        "_base_url",
        "_connector_options",
        "_failures",
        "_global_limiter",
        "_headers",
        "_in_flight",
        "_limit",
        "_limit_per_host",
        "_limiters",
        "_pool_timeout",
        "_raise_for_status",
        "_rate",
        "_requests",
        "_retries",
        "_retry",
        "_session",
        "_session_options",
        "_state",
        "_timeout",
    )

    def __init__(
        self,
        base_url: StrOrURL | None = None,
        *,
        limit: int = 100,
        limit_per_host: int = 10,
        timeout: aiohttp.ClientTimeout | float | None = DEFAULT_TIMEOUT,
        pool_timeout: float | None = DEFAULT_POOL_TIMEOUT,
        retry: RetryOption = DEFAULT_RETRY,
        rate: float | RateLimiter | None = None,
        rate_scope: Literal["host", "global"] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
        connector_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._base_url = _check_base_url(base_url)
        self._limit = _check_limit("limit", limit)
        self._limit_per_host = _check_limit("limit_per_host", limit_per_host)
        self._pool_timeout = _check_pool_timeout(pool_timeout)
        self._timeout = self._bounded(_coerce_timeout(timeout))
        self._retry = _coerce_retry(retry)
        self._rate, self._global_limiter = _check_rate(rate, rate_scope)
        self._limiters: dict[tuple[str, str | None, int | None], RateLimiter] = {}
        self._headers = dict(headers) if headers is not None else None
        if not isinstance(raise_for_status, bool):
            raise TypeError(f"raise_for_status must be True or False, got {raise_for_status!r}")
        self._raise_for_status = raise_for_status
        self._connector_options = dict(connector_options or {})
        self._session_options = dict(session_options or {})
        clash = _SESSION_KEYS_MANAGED & self._session_options.keys()
        if clash:
            raise ValueError(
                f"session_options may not set {', '.join(sorted(clash))}: "
                "use the Client argument of the same name instead"
            )
        if {"limit", "limit_per_host"} & self._connector_options.keys():
            raise ValueError(
                "connector_options may not set limit/limit_per_host: use the Client arguments"
            )
        self._session: aiohttp.ClientSession | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._requests = 0
        self._in_flight = 0
        self._attempts = 0
        self._retries = 0
        self._failures = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise UsageError(
                f"this Client is {self._state}: a Client is entered once; create a new one"
            )
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=self._limit_per_host, **self._connector_options
        )
        options = self._session_options
        if self._rate is not None or self._global_limiter is not None:
            # In aiohttp's request loop, so every request on the wire takes a permit: each
            # redirect hop and aiohttp's own resend on a stale keep-alive connection included.
            options = {
                **options,
                "middlewares": (*options.get("middlewares", ()), self._rate_limit),
            }
        try:
            self._session = aiohttp.ClientSession(
                base_url=self._base_url,
                connector=connector,
                timeout=self._timeout,
                headers=self._headers,
                raise_for_status=False,
                **options,
            )
        except BaseException:
            await connector.close()
            raise
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections. Idempotent; responses still open are closed."""
        self._state = "closed"
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying :class:`aiohttp.ClientSession` (requests sent on it bypass the retry
        rules, the rate limit and the error mapping)."""
        return self._open_session()

    @property
    def retry(self) -> HTTPRetry | None:
        """The default retry policy of this client."""
        return self._retry

    def statistics(self) -> ClientStatistics:
        """Return a snapshot of the client's counters."""
        return ClientStatistics(
            state=self._state,
            requests=self._requests,
            in_flight=self._in_flight,
            attempts=self._attempts,
            retries=self._retries,
            failures=self._failures,
            rate_limiters=len(self._limiters) + (self._global_limiter is not None),
        )

    def __repr__(self) -> str:
        base = f" {self._base_url}" if self._base_url is not None else ""
        return (
            f"<Client{base} {self._state} in_flight={self._in_flight} requests={self._requests} "
            f"retries={self._retries} failures={self._failures} "
            f"limit={self._limit}/{self._limit_per_host}>"
        )

    # -- requests -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: StrOrURL,
        *,
        retry: RetryOption | _Unset = _UNSET,
        raise_for_status: bool | None = None,
        **kwargs: Any,
    ) -> RequestContext:
        """Send a request: ``async with client.request("GET", url) as response:``.

        Yields the :class:`aiohttp.ClientResponse` once its headers arrived and the retry rules
        accepted it; it is released when the block exits. ``retry`` and ``raise_for_status``
        override the client's for this request. Other keyword arguments go to aiohttp
        (``params``, ``json``, ``data``, ``headers``, ``timeout`` — a number means total
        seconds...).

        Retries happen before the block is entered; an error raised by aiohttp inside the block
        (reading the body, say) is mapped to an :class:`HTTPError` but not retried.
        """
        return RequestContext(self, method, url, retry, raise_for_status, kwargs)

    def get(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("GET", url, ...)``."""
        return RequestContext(self, "GET", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    def head(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("HEAD", url, ...)``."""
        return RequestContext(self, "HEAD", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    def options(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("OPTIONS", url, ...)``."""
        return RequestContext(self, "OPTIONS", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    def post(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("POST", url, ...)``: not retried by default (not idempotent)."""
        return RequestContext(self, "POST", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    def put(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("PUT", url, ...)``."""
        return RequestContext(self, "PUT", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    def patch(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("PATCH", url, ...)``: not retried by default (not idempotent)."""
        return RequestContext(self, "PATCH", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    def delete(self, url: StrOrURL, **kwargs: Any) -> RequestContext:
        """``request("DELETE", url, ...)``."""
        return RequestContext(self, "DELETE", url, _pop_retry(kwargs), _pop_raise(kwargs), kwargs)

    async def get_bytes(
        self,
        url: StrOrURL,
        *,
        retry: RetryOption | _Unset = _UNSET,
        raise_for_status: bool | None = None,
        **kwargs: Any,
    ) -> bytes:
        """GET ``url`` and return its body. A body cut short is retried like a dropped
        connection (GET is idempotent)."""
        return (await self._send("GET", url, retry, raise_for_status, kwargs, _read_bytes))[0]

    async def get_text(
        self,
        url: StrOrURL,
        *,
        encoding: str | None = None,
        retry: RetryOption | _Unset = _UNSET,
        raise_for_status: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """GET ``url`` and return its body decoded with ``encoding`` (default: the response's
        charset, else UTF-8). Undecodable bytes raise :class:`DecodingError`."""

        async def read(response: aiohttp.ClientResponse) -> str:
            return _decode_text(response, await response.read(), encoding)

        return (await self._send("GET", url, retry, raise_for_status, kwargs, read))[0]

    async def get_json(
        self,
        url: StrOrURL,
        *,
        loads: Callable[[bytes], Any] = json.loads,
        retry: RetryOption | _Unset = _UNSET,
        raise_for_status: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """GET ``url`` and return its body parsed as JSON (whatever the ``Content-Type``).
        A body that does not parse raises :class:`DecodingError` (not retried)."""

        if loads is json.loads:
            read = _read_json
        else:

            async def read(response: aiohttp.ClientResponse) -> Any:
                return _parse_json(response, await response.read(), loads)

        return (await self._send("GET", url, retry, raise_for_status, kwargs, read))[0]

    def stream(
        self,
        url: StrOrURL,
        *,
        method: str = "GET",
        chunk_size: int = 64 * 1024,
        read_timeout: float | None = None,
        retry: RetryOption | _Unset = _UNSET,
        raise_for_status: bool | None = None,
        **kwargs: Any,
    ) -> ResponseStream:
        """Iterate over a body in chunks of at most ``chunk_size`` bytes, as they arrive::

            async with client.stream(url) as chunks:
                async for chunk in chunks:
                    ...

        The request is sent when the block is entered, and the connection is released when it
        exits, whatever the exit (end of body, ``break``, exception, cancellation). Iterating
        without the ``async with`` raises :class:`~loopwise.UsageError` before anything is sent:
        ``async for`` tells an iterator nothing when the loop stops early, so such a stream could
        hold its connection for good. Retries happen before the first chunk; an error in the
        middle of the body raises (mapped) and is not retried.

        No total timeout: a long body may take as long as it takes, as long as data keeps coming
        (``read_timeout`` seconds at most between two reads; default the client's ``sock_read``,
        else 60 s). A ``timeout=`` keyword replaces this.
        """
        _check_chunk_size(chunk_size)
        self._streaming_timeout(kwargs, read_timeout)
        return ResponseStream(
            self, method.upper(), url, retry, raise_for_status, kwargs, chunk_size
        )

    async def download(
        self,
        url: StrOrURL,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = 256 * 1024,
        read_timeout: float | None = None,
        fsync: bool = True,
        retry: RetryOption | _Unset = _UNSET,
        **kwargs: Any,
    ) -> Path:
        """GET ``url`` into the file ``path``, atomically; return the path.

        The body goes to a temporary file next to ``path`` (``.NAME.RANDOM.part``), which
        replaces ``path`` only once the whole body arrived (and, with ``fsync``, reached the
        disk). On any failure — error status, dropped connection, body cut short, timeout,
        cancellation — the temporary file is removed and ``path`` is left as it was: there is
        never a half-written file at ``path``. A failure in the middle of the body is retried like
        any other (from the start). Disk writes run in a worker thread, never on the event loop.
        Timeouts as for :meth:`stream`: ``read_timeout`` between reads, no total limit.
        """
        _check_chunk_size(chunk_size)
        target = Path(os.fspath(path))
        self._streaming_timeout(kwargs, read_timeout)

        async def write(response: aiohttp.ClientResponse) -> None:
            await _write_atomically(response, target, chunk_size, fsync)

        await self._send("GET", url, retry, True, kwargs, write)
        return target

    # -- internals ------------------------------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            if self._state == "closed":
                raise ClosedError("this Client is closed: send requests inside its `async with`")
            raise UsageError(
                "this Client is not open: use `async with Client(...) as client:` first"
            )
        return session

    def _build_url(self, method: str, url: StrOrURL) -> URL:
        if isinstance(url, str):
            try:
                url = URL(url)
            except (ValueError, TypeError) as exc:
                raise InvalidURL(f"invalid URL {url!r}: {exc}", method=method, url=URL()) from exc
        elif not isinstance(url, URL):
            raise TypeError(f"url must be a str or yarl.URL, got {url!r}")
        if not url.absolute:
            if self._base_url is None:
                raise InvalidURL(
                    f"relative URL {str(url)!r} needs a base: pass Client(base_url=...) or an "
                    "absolute URL",
                    method=method,
                    url=url,
                )
            url = self._base_url.join(url)
        if url.scheme not in ("http", "https"):
            raise InvalidURL(
                f"cannot send a request to {str(_public(url))!r}: only http and https URLs work",
                method=method,
                url=_public(url),
            )
        return url

    def _limiter_for(self, url: URL) -> RateLimiter | None:
        if self._global_limiter is not None:
            return self._global_limiter
        rate = self._rate
        if rate is None:
            return None
        key = (url.scheme, url.host, url.port)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = RateLimiter(rate)
        return limiter

    def _bounded(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
        """``timeout`` with the pool timeout as its ``connect`` bound when it has none."""
        if timeout.connect is None and self._pool_timeout is not None:
            return aiohttp.ClientTimeout(
                total=timeout.total,
                connect=self._pool_timeout,
                sock_read=timeout.sock_read,
                sock_connect=timeout.sock_connect,
                ceil_threshold=timeout.ceil_threshold,
            )
        return timeout

    async def _rate_limit(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """aiohttp client middleware: a permit from the host's (or the global) limiter before
        each request goes on the wire."""
        limiter = self._limiter_for(request.url)
        if limiter is not None:
            await limiter.acquire()
        return await handler(request)

    def _streaming_timeout(self, kwargs: dict[str, Any], read_timeout: float | None) -> None:
        if "timeout" in kwargs:
            return
        base = self._timeout
        if read_timeout is None:
            read_timeout = base.sock_read if base.sock_read is not None else DEFAULT_READ_TIMEOUT
        elif not (isinstance(read_timeout, int | float) and read_timeout > 0):
            raise ValueError(f"read_timeout must be a number of seconds > 0, got {read_timeout!r}")
        kwargs["timeout"] = aiohttp.ClientTimeout(
            total=None,
            connect=base.connect,
            sock_connect=base.sock_connect,
            sock_read=read_timeout,
        )

    async def _send(
        self,
        method: str,
        url: StrOrURL,
        retry: RetryOption | _Unset,
        raise_for_status: bool | None,
        kwargs: dict[str, Any],
        consume: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        keep_open: bool = False,
    ) -> tuple[T, aiohttp.ClientResponse]:
        """Send with retries; ``consume`` reads the body inside the attempt (its transport errors
        retry), then the response is released. With ``keep_open`` the response is returned
        unreleased and still counted in flight: the caller releases it and decrements
        ``_in_flight``.

        One coroutine for all of it (every frame costs on each resumption), and nothing is
        allocated for the retry bookkeeping until an attempt fails.
        """
        self._requests += 1
        self._in_flight += 1
        kept = False
        try:
            session = self._open_session()
            target = self._build_url(method, url)
            if "timeout" in kwargs:
                kwargs["timeout"] = self._bounded(_coerce_timeout(kwargs["timeout"]))
            rules = self._retry if retry is _UNSET else _coerce_retry(retry)
            if rules is not None and not _replayable(kwargs):
                rules = None
            raise_ = self._raise_for_status if raise_for_status is None else raise_for_status
            if "middlewares" in kwargs and (
                self._rate is not None or self._global_limiter is not None
            ):
                kwargs["middlewares"] = (*kwargs["middlewares"], self._rate_limit)
            start = 0.0 if rules is None else rules.clock()
            loop_time = asyncio.get_running_loop().time
            records: list[AttemptRecord] = []
            number = 0
            while True:
                number += 1
                self._attempts += 1
                sent_at = loop_time()
                try:
                    response = await session.request(method, target, **kwargs)
                except _CLIENT_ERRORS as exc:
                    if isinstance(exc, aiohttp.ConnectionTimeoutError):
                        exc = self._pool_timeout_error(exc, kwargs, loop_time() - sent_at)
                    if rules is None or not rules.retries_error(method, exc):
                        raise _map_error(exc, method, target) from exc
                    plan = rules.next_delay(number, rules.clock() - start, None)
                    if isinstance(plan, str):
                        error = _map_error(exc, method, target)
                        error.__cause__ = exc
                        raise self._exhausted(rules, records, number, error, exc, plan) from error
                    self._record(rules, records, number, None, exc, plan, method, target)
                    if plan > 0:
                        await rules.sleep(plan)
                    continue

                status = response.status
                if (
                    rules is not None
                    and status in rules.statuses
                    and (rules.methods is None or method in rules.methods)
                ):
                    hint = rules.delay_hint(response.headers)
                    plan = rules.next_delay(number, rules.clock() - start, hint)
                    if not isinstance(plan, str):
                        self._record(rules, records, number, status, None, plan, method, target)
                        await _discard(response)  # released before sleeping
                        if plan > 0:
                            await rules.sleep(plan)
                        continue
                    if raise_:
                        error = await _status_error(response, method)
                        raise self._exhausted(
                            rules, records, number, error, None, plan, hint
                        ) from error
                elif raise_ and status >= 400:
                    raise await _status_error(response, method)

                try:
                    result = await consume(response)
                except _CLIENT_ERRORS as exc:
                    response.release()
                    if rules is None or not rules.retries_error(method, exc):
                        raise _map_error(exc, method, target) from exc
                    plan = rules.next_delay(number, rules.clock() - start, None)
                    if isinstance(plan, str):
                        error = _map_error(exc, method, target)
                        error.__cause__ = exc
                        raise self._exhausted(rules, records, number, error, exc, plan) from error
                    self._record(rules, records, number, None, exc, plan, method, target)
                    if plan > 0:
                        await rules.sleep(plan)
                    continue
                except BaseException:
                    response.release()
                    raise
                if keep_open:
                    kept = True
                else:
                    response.release()
                return result, response
        except HTTPError:
            self._failures += 1
            raise
        finally:
            if not kept:
                self._in_flight -= 1

    def _pool_timeout_error(
        self, exc: aiohttp.ConnectionTimeoutError, kwargs: Mapping[str, Any], waited: float
    ) -> aiohttp.ConnectionTimeoutError:
        """``exc``, or a :class:`_PoolWaitTimeout` when the wait for a connection (aiohttp's
        ``connect`` bound, the pool timeout) ran out rather than ``sock_connect``."""
        timeout = kwargs.get("timeout", self._timeout)
        bound = timeout.connect if isinstance(timeout, aiohttp.ClientTimeout) else None
        if bound is None or waited < bound * 0.95:
            return exc
        error = _PoolWaitTimeout(
            f"no connection within {bound:g}s: the pool (limit={self._limit}, "
            f"limit_per_host={self._limit_per_host}) stayed full or the server did not accept a "
            "new connection in time; release responses and streams (leave their `async with`), "
            "or raise the limits or pool_timeout"
        )
        error.__cause__ = exc
        return error

    def _record(
        self,
        rules: HTTPRetry,
        records: list[AttemptRecord],
        number: int,
        status: int | None,
        error: BaseException | None,
        delay: float,
        method: str,
        url: URL,
    ) -> None:
        """Note a failed attempt that will be retried after ``delay`` seconds."""
        record = AttemptRecord(number, status, error, delay)
        records.append(record)
        self._retries += 1
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "retrying %s %s in %.3gs after %s",
                method,
                _public(url),
                delay,
                status if status is not None else f"{type(error).__name__}: {error}",
            )
        if rules.on_retry is not None:
            rules.on_retry(record)

    @staticmethod
    def _exhausted(
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


class RequestContext:
    """``async with client.request(...) as response:`` (see :meth:`Client.request`)."""

    __slots__ = ("_client", "_kwargs", "_method", "_raise", "_response", "_retry", "_url")

    def __init__(
        self,
        client: Client,
        method: str,
        url: StrOrURL,
        retry: RetryOption | _Unset,
        raise_for_status: bool | None,
        kwargs: dict[str, Any],
    ) -> None:
        self._client = client
        self._method = method.upper()
        self._url = url
        self._retry = retry
        self._raise = raise_for_status
        self._kwargs = kwargs
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        if self._response is not None:
            raise UsageError("this request was already sent: call client.request() again")
        _, response = await self._client._send(
            self._method, self._url, self._retry, self._raise, self._kwargs, _nothing, True
        )
        self._response = response
        return response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        response = self._response
        assert response is not None
        self._client._in_flight -= 1
        response.release()
        await response.wait_for_close()
        if isinstance(exc, aiohttp.ClientError):
            self._client._failures += 1
            raise _map_error(exc, self._method, response.url) from exc


class ResponseStream:
    """The chunks of a response body (see :meth:`Client.stream`): an async context manager whose
    value iterates over the chunks. ``response`` is the :class:`aiohttp.ClientResponse` inside
    the block (headers read, body being streamed)."""

    __slots__ = (
        "_chunk_size",
        "_client",
        "_done",
        "_kwargs",
        "_method",
        "_raise",
        "_retry",
        "_url",
        "response",
    )

    def __init__(
        self,
        client: Client,
        method: str,
        url: StrOrURL,
        retry: RetryOption | _Unset,
        raise_for_status: bool | None,
        kwargs: dict[str, Any],
        chunk_size: int,
    ) -> None:
        self._client = client
        self._method = method
        self._url = url
        self._retry = retry
        self._raise = raise_for_status
        self._kwargs = kwargs
        self._chunk_size = chunk_size
        self._done = False
        self.response: aiohttp.ClientResponse | None = None

    async def _open(self) -> aiohttp.ClientResponse:
        if self.response is not None or self._done:
            raise UsageError("this stream was already entered: call client.stream() again")
        try:
            _, response = await self._client._send(
                self._method, self._url, self._retry, self._raise, self._kwargs, _nothing, True
            )
        except BaseException:
            self._done = True
            raise
        self.response = response
        return response

    async def aclose(self) -> None:
        """Release the response (its connection goes back to the pool when the body was read to
        the end, else it is closed). Idempotent."""
        if self._done:
            return
        self._done = True
        response = self.response
        if response is not None:
            self._client._in_flight -= 1
            response.release()
            await response.wait_for_close()

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        if self.response is None and not self._done:
            raise UsageError(
                "client.stream() is a context manager: write `async with client.stream(url) as "
                "chunks: async for chunk in chunks: ...` (a bare `async for` cannot give the "
                "connection back when the loop stops early)"
            )
        return self

    async def __anext__(self) -> bytes:
        response = self.response
        if response is None or self._done:
            raise StopAsyncIteration
        try:
            chunk = await response.content.read(self._chunk_size)
        except _CLIENT_ERRORS as exc:
            await self.aclose()
            self._client._failures += 1
            raise _map_error(exc, self._method, response.url) from exc
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    def __repr__(self) -> str:
        state = "closed" if self._done else ("open" if self.response is not None else "new")
        return f"<ResponseStream {self._method} {self._url} {state}>"


# -- helpers --------------------------------------------------------------------------------------


async def _nothing(response: aiohttp.ClientResponse) -> None:
    return None


async def _read_bytes(response: aiohttp.ClientResponse) -> bytes:
    return await response.read()


async def _read_json(response: aiohttp.ClientResponse) -> Any:
    return _parse_json(response, await response.read(), json.loads)


def _parse_json(
    response: aiohttp.ClientResponse, body: bytes, loads: Callable[[bytes], Any]
) -> Any:
    try:
        return loads(body)
    except ValueError as exc:
        raise DecodingError(
            f"the body of GET {_public(response.url)} is not JSON ({exc}); "
            "use get_text() or get_bytes() to read it as it is",
            method="GET",
            url=_public(response.url),
            body=_excerpt_text(response, body),
        ) from exc


def _pop_retry(kwargs: dict[str, Any]) -> RetryOption | _Unset:
    return kwargs.pop("retry", _UNSET)  # type: ignore[no-any-return]


def _pop_raise(kwargs: dict[str, Any]) -> bool | None:
    return kwargs.pop("raise_for_status", None)  # type: ignore[no-any-return]


def _public(url: URL) -> URL:
    """The URL without user name and password, fit for messages and logs."""
    return url.with_user(None) if url.raw_user is not None else url


def _check_base_url(base_url: StrOrURL | None) -> URL | None:
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


def _check_limit(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (0: no limit), got {value!r}")
    return value


def _check_pool_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"pool_timeout must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1 (bytes), got {chunk_size!r}")


def _coerce_timeout(timeout: aiohttp.ClientTimeout | float | None) -> aiohttp.ClientTimeout:
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


def _coerce_retry(retry: RetryOption) -> HTTPRetry | None:
    if retry is None or isinstance(retry, HTTPRetry):
        return retry
    if isinstance(retry, Retry):
        return HTTPRetry.from_retry(retry)
    if isinstance(retry, int) and not isinstance(retry, bool):
        return DEFAULT_RETRY.replace(attempts=retry)
    raise TypeError(
        "retry takes an HTTPRetry, a loopwise.retry() policy, a number of attempts or None, "
        f"got {retry!r}"
    )


def _check_rate(
    rate: float | RateLimiter | None, scope: Literal["host", "global"] | None
) -> tuple[float | None, RateLimiter | None]:
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


def _replayable(kwargs: Mapping[str, Any]) -> bool:
    """Whether the request body can be sent again (a stream or a file cannot)."""
    data = kwargs.get("data")
    return data is None or isinstance(data, bytes | bytearray | str | dict | list | tuple)


def _map_error(exc: BaseException, method: str, url: URL) -> HTTPError:
    """aiohttp's exception as one of ours (the caller chains it as ``__cause__``)."""
    public = _public(url)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.TooManyRedirects):
        return _too_many_redirects(exc, method, public)
    if isinstance(exc, aiohttp.ContentTypeError):
        return DecodingError(f"{method} {public}: {exc.message}", method=method, url=public)
    if isinstance(exc, aiohttp.ClientResponseError):
        return HTTPStatusError(
            method=method,
            url=public,
            status=exc.status,
            reason=exc.message,
            headers=exc.headers or {},
        )
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return InvalidURL(f"{method} {public}: invalid URL: {detail}", method=method, url=public)
    if isinstance(exc, _PoolWaitTimeout):
        return PoolTimeout(f"{method} {public}: {exc}", method=method, url=public)
    if never_reached_server(exc):
        return ConnectError(
            f"{method} {public}: cannot connect: {detail}", method=method, url=public
        )
    if isinstance(exc, asyncio.TimeoutError):  # includes aiohttp's ServerTimeoutError
        return HTTPTimeout(
            f"{method} {public}: timed out: {detail} (raise the timeout, or use stream() or "
            "download() for long bodies)",
            method=method,
            url=public,
        )
    return TransportError(f"{method} {public}: {detail}", method=method, url=public)


def _too_many_redirects(exc: aiohttp.TooManyRedirects, method: str, url: URL) -> TooManyRedirects:
    chain = [_public(response.url) for response in exc.history]
    if exc.history:
        last = exc.history[-1]
        location = last.headers.get("Location")
        if location is not None:
            with contextlib.suppress(ValueError):
                chain.append(_public(last.url.join(URL(location))))
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


async def _read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _status_error(response: aiohttp.ClientResponse, method: str) -> HTTPStatusError:
    """An HTTPStatusError for ``response``, with an excerpt of its body; releases it."""
    try:
        body = b"" if method == "HEAD" else await _read_up_to(response, _EXCERPT_BYTES)
    except _CLIENT_ERRORS:
        body = b""
    finally:
        response.release()
    return HTTPStatusError(
        method=method,
        url=_public(response.url),
        status=response.status,
        reason=response.reason or "",
        headers=response.headers,
        body=_excerpt_text(response, body),
    )


def _excerpt_text(response: aiohttp.ClientResponse, body: bytes) -> str:
    charset = response.charset or "utf-8"
    try:
        return body[:_EXCERPT_BYTES].decode(charset, errors="replace")
    except LookupError:
        return body[:_EXCERPT_BYTES].decode("utf-8", errors="replace")


def _decode_text(response: aiohttp.ClientResponse, body: bytes, encoding: str | None) -> str:
    charset = encoding or response.charset or "utf-8"
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise DecodingError(
            f"the body of GET {_public(response.url)} is not valid {charset} text ({exc}); "
            "pass encoding=..., or use get_bytes()",
            method="GET",
            url=_public(response.url),
            body=_excerpt_text(response, body),
        ) from exc


async def _discard(response: aiohttp.ClientResponse) -> None:
    """Release a response that will be retried: a small body is read so that its connection can
    be reused; a large or unknown one is not waited for (the connection is closed)."""
    try:
        length = response.content_length
        if length is not None and length <= _DRAIN_BYTES:
            await response.read()
    except _CLIENT_ERRORS:
        pass
    finally:
        response.release()


# -- atomic download ------------------------------------------------------------------------------


def _open_exclusive(path: Path) -> io.BufferedWriter:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    return os.fdopen(fd, "wb")


def _commit(fh: IO[bytes], tmp: Path, target: Path, fsync: bool) -> None:
    fh.flush()
    if fsync:
        os.fsync(fh.fileno())
    fh.close()
    os.replace(tmp, target)


def _discard_file(fh: IO[bytes] | None, tmp: Path) -> None:
    if fh is not None:
        with contextlib.suppress(OSError):
            fh.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


class _TempFile:
    """A temporary file and the one disk operation in flight on it (in a worker thread)."""

    __slots__ = ("fh", "inflight", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[bytes] | None = None
        self.inflight: asyncio.Future[Any] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a thread. Cancelling the caller does not cancel the operation:
        :meth:`discard` waits for it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self.inflight = future
        return await asyncio.shield(future)

    async def discard(self) -> None:
        """Wait for the operation in flight, then close and remove the file."""
        inflight = self.inflight
        if inflight is not None:
            with contextlib.suppress(Exception):
                await inflight  # its failure, if any, is not ours to report
            if self.fh is None and not inflight.cancelled() and inflight.exception() is None:
                opened = inflight.result()
                if isinstance(opened, io.BufferedWriter):
                    self.fh = opened
        await asyncio.get_running_loop().run_in_executor(None, _discard_file, self.fh, self.path)


async def _write_atomically(
    response: aiohttp.ClientResponse, target: Path, chunk_size: int, fsync: bool
) -> None:
    """Write the body to a temporary file next to ``target``, then rename it over ``target``.

    At most one disk write is in flight while the next chunk is read. On any failure the
    temporary file is removed (in a shielded task, so a second cancellation cannot skip it).
    """
    loop = asyncio.get_running_loop()
    tmp = _TempFile(target.with_name(f".{target.name}.{secrets.token_hex(4)}.part"))
    try:
        fh = tmp.fh = await tmp.run(_open_exclusive, tmp.path)
        pending: asyncio.Future[Any] | None = None
        buffered: list[bytes] = []
        size = 0
        while True:
            chunk = await response.content.read(chunk_size)
            if chunk:
                buffered.append(chunk)
                size += len(chunk)
                if size < chunk_size:
                    continue
            if buffered:
                data = buffered[0] if len(buffered) == 1 else b"".join(buffered)
                buffered, size = [], 0
                if pending is not None:
                    await asyncio.shield(pending)
                pending = tmp.inflight = loop.run_in_executor(None, fh.write, data)
            if not chunk:
                break
        if pending is not None:
            await asyncio.shield(pending)
        await tmp.run(_commit, fh, tmp.path, target, fsync)
    except BaseException:
        cleanup = asyncio.ensure_future(tmp.discard())
        _background.add(cleanup)
        cleanup.add_done_callback(_background.discard)
        await asyncio.shield(cleanup)
        raise
