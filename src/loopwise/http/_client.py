"""Client: one aiohttp session, bounded, retried when safe to repeat, errors mapped at the edge."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aiohttp
from yarl import URL

from loopwise._exceptions import ClosedError, HTTPError, UsageError
from loopwise.http._errors import (
    CLIENT_ERRORS,
    PoolWaitTimeout,
    closed_error,
    exhausted,
    map_error,
    pool_wait_timeout,
    public,
    status_error,
)
from loopwise.http._mock import MockTransport
from loopwise.http._options import (
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RetryOption,
    StrOrURL,
    TimeoutOption,
    UseClientDefault,
    check_base_url,
    check_connector_options,
    check_limit,
    check_rate,
    check_seconds,
    check_session_options,
    coerce_retry,
    coerce_timeout,
    replayable,
    resolve_url,
    with_connect_bound,
)
from loopwise.http._responses import (
    discard,
)
from loopwise.http._retry_policy import AttemptRecord, HTTPRetry
from loopwise.http._verbs import Verbs
from loopwise.patterns import RateLimiter, retry_testing

__all__ = ["Client", "ClientStatistics"]

T = TypeVar("T")
_log = logging.getLogger("loopwise.http")


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot of a :class:`Client`."""

    state: Literal["new", "open", "closed"]
    requests: int
    """Requests started (each counts once, however many attempts it took)."""
    in_flight: int
    """Requests started and not finished: a response or stream still open counts."""
    attempts: int
    """Tries started, retries included (one may end before it reached the wire, waiting for a
    connection or a rate-limit permit; redirect hops are part of their try)."""
    retries: int
    """Attempts that were retried."""
    failures: int
    """Requests that ended in an :class:`~loopwise.http.HTTPError`."""
    rate_limiters: int
    """Rate limiters in use (one per host with ``rate_scope="host"``)."""


class Client(Verbs):
    """An HTTP client on one shared :class:`aiohttp.ClientSession`: bounded connection pool,
    retries when safe to repeat, optional rate limit, errors mapped to :class:`HTTPError`.

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
      request on the wire takes a permit: attempts, redirect hops, aiohttp's own resends.
    * ``headers``: sent with every request.
    * ``raise_for_status``: raise :class:`HTTPStatusError` for a 4xx/5xx answer (default).
    * ``connector_options``, ``session_options``: more keyword arguments for
      :class:`aiohttp.TCPConnector` (``ssl``, ``ttl_dns_cache``...) and
      :class:`aiohttp.ClientSession` (``cookie_jar``, ``trust_env``, ``middlewares``...).
    * ``transport``: a :class:`MockTransport` that answers every request in-process, for tests
      (``connector_options`` do not apply then).
    """

    __slots__ = (
        "_attempts",
        "_base_url",
        "_closing",
        "_connector_options",
        "_failures",
        "_global_limiter",
        "_headers",
        "_in_flight",
        "_limit",
        "_limit_per_host",
        "_limiters",
        "_live",
        "_raise_for_status",
        "_rate",
        "_requests",
        "_retries",
        "_retry",
        "_session",
        "_session_options",
        "_state",
        "_timeout",
        "_transport",
        "_transport_held",
        "_waiting",
    )

    def __init__(
        self,
        base_url: StrOrURL | None = None,
        *,
        limit: int = 100,
        limit_per_host: int = 10,
        timeout: TimeoutOption = DEFAULT_TIMEOUT,
        pool_timeout: float | None = DEFAULT_POOL_TIMEOUT,
        retry: RetryOption = DEFAULT_RETRY,
        rate: float | RateLimiter | None = None,
        rate_scope: Literal["host", "global"] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
        connector_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
        transport: MockTransport | None = None,
    ) -> None:
        self._base_url = check_base_url(base_url)
        self._limit = check_limit("limit", limit)
        self._limit_per_host = check_limit("limit_per_host", limit_per_host)
        pool_bound = check_seconds("pool_timeout", pool_timeout, none="no bound")
        self._timeout = with_connect_bound(coerce_timeout(timeout), pool_bound)
        self._retry = coerce_retry(retry)
        self._rate, self._global_limiter = check_rate(rate, rate_scope)
        self._limiters: dict[tuple[str, str | None, int | None], RateLimiter] = {}
        self._headers = dict(headers) if headers is not None else None
        if not isinstance(raise_for_status, bool):
            raise TypeError(f"raise_for_status must be True or False, got {raise_for_status!r}")
        self._raise_for_status = raise_for_status
        self._connector_options = check_connector_options(connector_options)
        self._session_options = check_session_options(session_options)
        if transport is not None and not isinstance(transport, MockTransport):
            raise TypeError(f"transport must be a loopwise.http.MockTransport, got {transport!r}")
        self._transport = transport
        self._transport_held = False
        self._session: aiohttp.ClientSession | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._live: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()
        self._waiting: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[Any]] = set()
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
        options = self._session_options
        middlewares = self._middlewares()
        if middlewares:
            options = {**options, "middlewares": (*options.get("middlewares", ()), *middlewares)}
        if self._transport is not None:
            connector: aiohttp.BaseConnector = await self._transport._connector(
                self._limit, self._limit_per_host
            )
            self._transport_held = True
        else:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=self._limit_per_host, **self._connector_options
            )
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
            if self._transport_held and self._transport is not None:
                self._transport_held = False
                await self._transport._release()
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
        """Close the session and its connections. Idempotent.

        Requests still in flight end at once with a :class:`TransportError` saying the client
        was closed, not retried: those reading a body (in a ``get_*``, a stream, a download or
        your ``async with client.get(...)`` block), waiting for a retry or for a rate-limit
        permit."""
        self._state = "closed"
        session, self._session = self._session, None
        closed = aiohttp.ClientConnectionError("the Client was closed")
        for response in list(self._live):
            # aiohttp closes the connection but leaves a reader of its body waiting for ever.
            if not response.content.is_eof():
                response.content.set_exception(closed)
        for task in self._waiting:  # for a connection, a rate-limit permit, a retry
            self._closing.add(task)
            task.cancel()
        try:
            if session is not None:
                await session.close()
        finally:
            if self._transport_held and self._transport is not None:
                self._transport_held = False
                await self._transport._release()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying :class:`aiohttp.ClientSession` (requests sent on it bypass the retry
        rules and the error mapping)."""
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

    def _middlewares(self) -> tuple[aiohttp.ClientMiddlewareType, ...]:
        """The client middlewares this client adds to the session's and to a request's own."""
        middlewares: tuple[aiohttp.ClientMiddlewareType, ...] = ()
        if self._rate is not None or self._global_limiter is not None:
            # In aiohttp's request loop, so every request on the wire takes a permit: each
            # redirect hop and aiohttp's own resend on a stale keep-alive connection included.
            middlewares += (self._rate_limit,)
        if self._transport is not None:
            middlewares += (self._transport._tag,)
        return middlewares

    async def _rate_limit(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """aiohttp client middleware: a permit from the host's (or the global) limiter before
        each request goes on the wire."""
        limiter = self._limiter_for(request.url)
        if limiter is not None:
            await limiter.acquire()
        return await handler(request)

    async def _send(
        self,
        method: str,
        url: StrOrURL,
        retry: RetryOption | UseClientDefault,
        raise_for_status: bool | UseClientDefault,
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
        task = asyncio.current_task()
        assert task is not None
        target: URL | None = None
        try:
            session = self._open_session()
            target = resolve_url(self._base_url, method, url)
            timeout = self._timeout
            if "timeout" in kwargs:
                timeout = kwargs["timeout"] = with_connect_bound(
                    coerce_timeout(kwargs["timeout"]), self._timeout.connect
                )
            rules = self._retry if isinstance(retry, UseClientDefault) else coerce_retry(retry)
            if rules is not None and not replayable(kwargs):
                rules = None
            raise_ = (
                self._raise_for_status
                if isinstance(raise_for_status, UseClientDefault)
                else raise_for_status
            )
            if "middlewares" in kwargs:  # a request's own replace the session's: keep ours
                kwargs["middlewares"] = (*kwargs["middlewares"], *self._middlewares())
            start = 0.0 if rules is None else rules.clock()
            loop_time = asyncio.get_running_loop().time
            records: list[AttemptRecord] = []
            number = 0
            while True:
                number += 1
                self._attempts += 1
                sent_at = loop_time()
                response: aiohttp.ClientResponse | None = None
                delay: float | None = None
                try:
                    self._waiting.add(task)
                    try:
                        response = await session.request(method, target, **kwargs)
                    finally:
                        self._waiting.discard(task)
                    self._live.add(response)
                    status = response.status
                    if rules is not None and rules.retries_status(method, status):
                        hint = rules.delay_hint(response.headers)
                        plan = rules.next_delay(number, rules.clock() - start, hint)
                        if not isinstance(plan, str):
                            self._record(rules, records, number, status, None, plan, method, target)
                            delay = plan
                        elif raise_:
                            answer = await status_error(response, method)
                            raise exhausted(
                                rules, records, number, answer, None, plan, hint
                            ) from answer
                    elif raise_ and status >= 400:
                        raise await status_error(response, method)
                    if delay is None:
                        result = await consume(response)
                except CLIENT_ERRORS as exc:
                    # The one place where an attempt's aiohttp error is retried or given up on.
                    if response is not None:
                        response.release()
                        response = None
                    elif isinstance(exc, asyncio.TimeoutError):
                        limits = (self._limit, self._limit_per_host)
                        exc = pool_wait_timeout(exc, timeout, loop_time() - sent_at, limits)
                    if (
                        rules is None
                        or isinstance(exc, PoolWaitTimeout)  # a retry would wait past the bound
                        or self._session is None  # closed meanwhile
                        or not rules.retries_error(method, exc)
                    ):
                        raise map_error(exc, method, target) from exc
                    plan = rules.next_delay(number, rules.clock() - start, None)
                    if isinstance(plan, str):
                        error = map_error(exc, method, target)
                        error.__cause__ = exc
                        raise exhausted(rules, records, number, error, exc, plan) from error
                    self._record(rules, records, number, None, exc, plan, method, target)
                    delay = plan
                except BaseException:
                    if response is not None:
                        response.release()
                    raise
                if delay is not None:
                    assert rules is not None
                    self._waiting.add(task)
                    try:
                        if response is not None:
                            await discard(response)  # released before sleeping
                        if delay > 0 and not retry_testing():
                            await rules.sleep(delay)
                    finally:
                        self._waiting.discard(task)
                    if self._session is None:
                        raise closed_error(method, target)
                    continue
                assert response is not None
                if keep_open:
                    kept = True
                else:
                    response.release()
                return result, response
        except HTTPError:
            self._failures += 1
            raise
        except asyncio.CancelledError:
            if target is None or task not in self._closing:
                raise
            self._closing.discard(task)
            if task.uncancel() > 0:  # cancelled by someone else too
                raise
            self._failures += 1
            raise closed_error(method, target) from None
        finally:
            if not kept:
                self._in_flight -= 1

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
                public(url),
                delay,
                status if status is not None else f"{type(error).__name__}: {error}",
            )
        if rules.on_retry is not None:
            rules.on_retry(record)
