"""The request methods of :class:`~loopwise.http.Client`, with typed keyword arguments: the
verbs, which yield the response, and those that read the body for you."""

from __future__ import annotations

import json as _json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
from aiohttp.typedefs import LooseCookies, LooseHeaders, Query

from loopwise.http._download import write_atomically
from loopwise.http._errors import decode_text, parse_json
from loopwise.http._options import (
    USE_CLIENT_DEFAULT,
    RetryOption,
    StrOrURL,
    TimeoutOption,
    UseClientDefault,
    check_aiohttp_options,
    check_chunk_size,
    check_raise_for_status,
    streaming_timeout,
)
from loopwise.http._responses import RequestContext, ResponseStream, read_bytes, read_json

if TYPE_CHECKING:
    from loopwise.http._client import Client

__all__ = ["Verbs", "request_kwargs"]

T = TypeVar("T")


def request_kwargs(
    params: Query,
    data: Any,
    json: Any,
    headers: LooseHeaders | None,
    cookies: LooseCookies | None,
    timeout: TimeoutOption | UseClientDefault,
    allow_redirects: bool,
    max_redirects: int,
    aiohttp_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The keyword arguments for :meth:`aiohttp.ClientSession.request`: only those given, so
    aiohttp's (and the session's) defaults apply to the rest."""
    kwargs = check_aiohttp_options(aiohttp_options) if aiohttp_options else {}
    if params is not None:
        kwargs["params"] = params
    if data is not None:
        kwargs["data"] = data
    if json is not None:
        kwargs["json"] = json
    if headers is not None:
        kwargs["headers"] = headers
    if cookies is not None:
        kwargs["cookies"] = cookies
    if not isinstance(timeout, UseClientDefault):
        kwargs["timeout"] = timeout
    if allow_redirects is not True:
        kwargs["allow_redirects"] = allow_redirects
    if max_redirects != 10:
        kwargs["max_redirects"] = max_redirects
    return kwargs


class Verbs:
    """The request methods; :class:`Client` sends what they prepare (``_send``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _timeout: aiohttp.ClientTimeout

        async def _send(
            self,
            method: str,
            url: StrOrURL,
            retry: RetryOption | UseClientDefault,
            raise_for_status: bool | UseClientDefault,
            kwargs: dict[str, Any],
            consume: Callable[[aiohttp.ClientResponse], Awaitable[T]],
            keep_open: bool = False,
        ) -> tuple[T, aiohttp.ClientResponse]: ...

    def request(
        self,
        method: str,
        url: StrOrURL,
        *,
        params: Query = None,
        data: Any = None,
        json: Any = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """Send a request: ``async with client.request("GET", url) as response:``.

        Yields the :class:`aiohttp.ClientResponse` once its headers arrived and the retry rules
        accepted it; it is released when the block exits. ``params``, ``data``, ``json``,
        ``headers``, ``cookies``, ``allow_redirects`` and ``max_redirects`` are aiohttp's;
        ``timeout`` (a number means total seconds), ``retry`` and ``raise_for_status`` override
        the client's for this request (:data:`USE_CLIENT_DEFAULT`: keep the client's). Other
        aiohttp keyword arguments (``ssl``, ``proxy``, ``auth``...) go in ``aiohttp_options``.

        Retries happen before the block is entered; an error raised by aiohttp inside the block
        (reading the body, say) is mapped to an :class:`HTTPError` but not retried.
        """
        check_raise_for_status(raise_for_status)
        kwargs = request_kwargs(
            params, data, json, headers, cookies, timeout, allow_redirects, max_redirects,
            aiohttp_options,
        )  # fmt: skip
        return RequestContext(cast("Client", self), method, url, retry, raise_for_status, kwargs)

    def get(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("GET", url, ...)``."""
        return self.request(
            "GET",
            url,
            params=params,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    def head(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("HEAD", url, ...)``."""
        return self.request(
            "HEAD",
            url,
            params=params,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    def options(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("OPTIONS", url, ...)``."""
        return self.request(
            "OPTIONS",
            url,
            params=params,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    def delete(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("DELETE", url, ...)`` (a body: use ``request()``)."""
        return self.request(
            "DELETE",
            url,
            params=params,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    def post(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        data: Any = None,
        json: Any = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("POST", url, ...)``: not retried by default (not idempotent)."""
        return self.request(
            "POST",
            url,
            params=params,
            data=data,
            json=json,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    def put(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        data: Any = None,
        json: Any = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("PUT", url, ...)``."""
        return self.request(
            "PUT",
            url,
            params=params,
            data=data,
            json=json,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    def patch(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        data: Any = None,
        json: Any = None,
        headers: LooseHeaders | None = None,
        cookies: LooseCookies | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> RequestContext:
        """``request("PATCH", url, ...)``: not retried by default (not idempotent)."""
        return self.request(
            "PATCH",
            url,
            params=params,
            data=data,
            json=json,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            retry=retry,
            raise_for_status=raise_for_status,
            aiohttp_options=aiohttp_options,
        )

    # -- the body read for you ---------------------------------------------------------------

    async def get_bytes(
        self,
        url: StrOrURL,
        *,
        params: Query = None,
        headers: LooseHeaders | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 (per attempt)
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> bytes:
        """GET ``url`` and return its body. A body cut short is retried like a dropped
        connection (GET is idempotent)."""
        check_raise_for_status(raise_for_status)
        kwargs = request_kwargs(
            params, None, None, headers, None, timeout, True, 10, aiohttp_options
        )
        return (await self._send("GET", url, retry, raise_for_status, kwargs, read_bytes))[0]

    async def get_text(
        self,
        url: StrOrURL,
        *,
        encoding: str | None = None,
        params: Query = None,
        headers: LooseHeaders | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 (per attempt)
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> str:
        """GET ``url`` and return its body decoded with ``encoding`` (default: the response's
        charset, else UTF-8). Undecodable bytes raise :class:`DecodingError`."""

        async def read(response: aiohttp.ClientResponse) -> str:
            return decode_text(response, await response.read(), encoding)

        check_raise_for_status(raise_for_status)
        kwargs = request_kwargs(
            params, None, None, headers, None, timeout, True, 10, aiohttp_options
        )
        return (await self._send("GET", url, retry, raise_for_status, kwargs, read))[0]

    async def get_json(
        self,
        url: StrOrURL,
        *,
        loads: Callable[[bytes], Any] = _json.loads,
        params: Query = None,
        headers: LooseHeaders | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 (per attempt)
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> Any:
        """GET ``url`` and return its body parsed as JSON (whatever the ``Content-Type``).
        A body that does not parse raises :class:`DecodingError` (not retried)."""
        if loads is _json.loads:
            read = read_json
        else:

            async def read(response: aiohttp.ClientResponse) -> Any:
                return parse_json(response, await response.read(), loads)

        check_raise_for_status(raise_for_status)
        kwargs = request_kwargs(
            params, None, None, headers, None, timeout, True, 10, aiohttp_options
        )
        return (await self._send("GET", url, retry, raise_for_status, kwargs, read))[0]

    def stream(
        self,
        url: StrOrURL,
        *,
        method: str = "GET",
        chunk_size: int = 64 * 1024,
        read_timeout: float | None = None,
        params: Query = None,
        data: Any = None,
        json: Any = None,
        headers: LooseHeaders | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
    ) -> ResponseStream:
        """Iterate over a body in chunks of at most ``chunk_size`` bytes, as they arrive::

            async with client.stream(url) as chunks:
                async for chunk in chunks:
                    ...

        The request is sent when the block is entered, and the connection is released when it
        exits, whatever the exit (end of body, ``break``, exception, cancellation). Iterating
        without the ``async with`` raises :class:`~loopwise.UsageError` before anything is sent:
        ``async for`` tells an iterator nothing when the loop stops early, so such a stream could
        hold its connection for good; iterating after the block raises it too (not an empty
        body). Retries happen before the first chunk; an error in the middle of the body raises
        (mapped) and is not retried.

        No total timeout: a long body may take as long as it takes, as long as data keeps coming
        (``read_timeout`` seconds at most between two reads; default the client's ``sock_read``,
        else 60 s). A ``timeout=`` replaces this.
        """
        check_chunk_size(chunk_size)
        check_raise_for_status(raise_for_status)
        if isinstance(timeout, UseClientDefault):
            timeout = streaming_timeout(self._timeout, read_timeout)
        kwargs = request_kwargs(
            params, data, json, headers, None, timeout, True, 10, aiohttp_options
        )
        return ResponseStream(
            cast("Client", self), method.upper(), url, retry, raise_for_status, kwargs, chunk_size
        )

    async def download(
        self,
        url: StrOrURL,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = 256 * 1024,
        read_timeout: float | None = None,
        fsync: bool = True,
        params: Query = None,
        headers: LooseHeaders | None = None,
        timeout: TimeoutOption | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 (per attempt)
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        aiohttp_options: Mapping[str, Any] | None = None,
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
        check_chunk_size(chunk_size)
        target = Path(os.fspath(path))
        if isinstance(timeout, UseClientDefault):
            timeout = streaming_timeout(self._timeout, read_timeout)
        kwargs = request_kwargs(
            params, None, None, headers, None, timeout, True, 10, aiohttp_options
        )

        async def write(response: aiohttp.ClientResponse) -> None:
            await write_atomically(response, target, chunk_size, fsync)

        await self._send("GET", url, retry, True, kwargs, write)
        return target
