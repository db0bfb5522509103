"""The request id middleware: every request gets an id, in a contextvar and the response."""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import istr

__all__ = ["RequestIdFilter", "current_request_id", "request_id_middleware"]

_T = TypeVar("_T")


def _request_key(name: str, kind: type[_T]) -> web.RequestKey[_T]:
    """A typed request storage key (a plain string on aiohttp before 3.14)."""
    factory = getattr(web, "RequestKey", None)
    key: web.RequestKey[_T] = factory(name, kind) if factory is not None else name  # type: ignore[assignment]
    return key


_REQUEST_ID_HEADER_KEY = _request_key("loopwise.request_id_header", str)

_request_id: ContextVar[str | None] = ContextVar("loopwise_request_id", default=None)
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def current_request_id() -> str | None:
    """The id of the request being handled by the current task, or ``None`` outside a request.

    Set by :func:`request_id_middleware` for the whole handler (and anything it awaits or starts
    with ``create_task``, which copies the context).
    """
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """A logging filter that gives every record a ``request_id`` attribute.

    The value is the current request's id, or ``"-"`` outside a request; a record that already
    has one (the access log's) keeps it. Attach it to a handler and use ``%(request_id)s``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or "-"
        return True


_DEFAULT_HEADER = "X-Request-ID"

# New ids are 64-bit numbers in hex: a random per-process prefix (upper 32 bits) plus a counter.
# They are made 256 at a time, each a shared 14-character head plus one of 256 tails: far cheaper
# than formatting a number per request.
_ID_TAILS = [f"{i:02x}" for i in range(255, -1, -1)]  # popped from the end: ascending
_id_batch: list[str] = []


def _id_blocks() -> itertools.count[int]:
    return itertools.count(int.from_bytes(os.urandom(4)) << 24)


_id_block = _id_blocks()


def _reseed_ids() -> None:
    global _id_block
    _id_block = _id_blocks()
    _id_batch.clear()


os.register_at_fork(after_in_child=_reseed_ids)


def _new_request_id() -> str:
    """16 hex characters: a random per-process prefix and a counter (unique, cheap)."""
    try:
        return _id_batch.pop()
    except IndexError:
        head = f"{next(_id_block) & 0xFF_FFFF_FFFF_FFFF:014x}"
        _id_batch.extend([head + tail for tail in _ID_TAILS])
        return _id_batch.pop()


def request_id_middleware(
    *,
    header: str = _DEFAULT_HEADER,
    trust_incoming: bool = True,
    generate: Callable[[], str] = _new_request_id,
) -> Middleware:
    """Give every request an id: the client's ``header`` when it is a sane token, else a new one.

    Guarantees: the id is in :func:`current_request_id` for the handler's duration (and in the
    tasks it starts) and in the response's ``header`` (also on error answers; streaming
    responses get it when started with :func:`prepare_stream`, as the hub and channel do). An
    incoming id longer than 128 characters or with characters outside ``[A-Za-z0-9._:@/+=-]`` is
    replaced, never echoed. With ``trust_incoming=False`` a new id is always made. New ids are 16
    hex characters, unique across processes (a random prefix per process) and cheap to make.
    """

    custom_header = header != _DEFAULT_HEADER
    default_ids = generate is _new_request_id
    header = istr(header)

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(header) if trust_incoming else None
        if incoming and _VALID_ID.fullmatch(incoming):
            rid = incoming
        elif default_ids and _id_batch:
            rid = _id_batch.pop()  # what generate() would do, without the call
        else:
            rid = generate()
        if custom_header:
            request[_REQUEST_ID_HEADER_KEY] = header
        token = _request_id.set(rid)
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                exc.headers[header] = rid
                raise
            if not response.prepared:
                response.headers[header] = rid
            return response
        finally:
            try:  # noqa: SIM105 (as in the fused stack, where suppress() would cost)
                _request_id.reset(token)
            except ValueError:
                # an abandoned request closed by the garbage collector (GeneratorExit) runs
                # this outside its task's context: there is nothing left to reset
                pass

    return request_id


def _request_id_member() -> dict[str, object]:
    rid = _request_id.get()
    return {"request_id": rid} if rid else {}
