"""What a request gives back while its response is open: ``async with client.get(...)`` and
``async with client.stream(...)``."""

from __future__ import annotations

import json
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp

from loopwise._exceptions import UsageError
from loopwise.http._errors import CLIENT_ERRORS, map_error, parse_json
from loopwise.http._options import RetryOption, StrOrURL, UseClientDefault

if TYPE_CHECKING:
    from loopwise.http._client import Client

__all__ = ["RequestContext", "ResponseStream"]

DRAIN_BYTES = 16 * 1024


class RequestContext:
    """``async with client.request(...) as response:`` (see :meth:`Client.request`)."""

    __slots__ = ("_client", "_kwargs", "_method", "_raise", "_response", "_retry", "_url")

    def __init__(
        self,
        client: Client,
        method: str,
        url: StrOrURL,
        retry: RetryOption | UseClientDefault,
        raise_for_status: bool | UseClientDefault,
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
            self._method, self._url, self._retry, self._raise, self._kwargs, nothing, True
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
            raise map_error(exc, self._method, response.url) from exc

    def __repr__(self) -> str:
        state = "new" if self._response is None else "sent"
        return f"<RequestContext {self._method} {self._url} {state}>"


class ResponseStream:
    """The chunks of a response body (see :meth:`Client.stream`): an async context manager whose
    value iterates over the chunks. ``response`` is the :class:`aiohttp.ClientResponse` inside
    the block (headers read, body being streamed)."""

    __slots__ = (
        "_chunk_size",
        "_client",
        "_done",
        "_exited",
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
        retry: RetryOption | UseClientDefault,
        raise_for_status: bool | UseClientDefault,
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
        self._exited = False
        self.response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> Self:
        if self.response is not None or self._done:
            raise UsageError("this stream was already entered: call client.stream() again")
        try:
            _, response = await self._client._send(
                self._method, self._url, self._retry, self._raise, self._kwargs, nothing, True
            )
        except BaseException:
            self._done = True
            raise
        self.response = response
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exited = True
        await self.aclose()

    async def aclose(self) -> None:
        """Release the response (its connection goes back to the pool when the body was read to
        the end, else it is closed). Idempotent; the ``async with`` exit calls it."""
        if self._done:
            return
        self._done = True
        response = self.response
        if response is not None:
            self._client._in_flight -= 1
            response.release()
            await response.wait_for_close()

    def __aiter__(self) -> Self:
        if self._exited:
            raise UsageError(
                "this stream ended with its `async with` block: iterate over the chunks inside "
                "the block (its exit gives the connection back)"
            )
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
        except CLIENT_ERRORS as exc:
            await self.aclose()
            self._client._failures += 1
            raise map_error(exc, self._method, response.url) from exc
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


# -- what the one-shot requests read inside their attempt ----------------------------------------


async def nothing(response: aiohttp.ClientResponse) -> None:
    return None


async def read_bytes(response: aiohttp.ClientResponse) -> bytes:
    return await response.read()


async def read_json(response: aiohttp.ClientResponse) -> Any:
    return parse_json(response, await response.read(), json.loads)


async def discard(response: aiohttp.ClientResponse) -> None:
    """Release a response that will be retried: a small body is read so that its connection can
    be reused; a large or unknown one is not waited for (the connection is closed)."""
    try:
        length = response.content_length
        if length is not None and length <= DRAIN_BYTES:
            await response.read()
    except CLIENT_ERRORS:
        pass
    finally:
        response.release()
