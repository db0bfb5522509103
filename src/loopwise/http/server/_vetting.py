"""What the problem middleware checks in a handler's answer before aiohttp tries to send it.

aiohttp finds these faults only while it sends the answer, after every middleware has returned:
a handler result that is not a response (a text/plain 500, with a traceback in debug mode), a
header aiohttp refuses to serialise (the connection is dropped), a ``FileResponse`` for a file
that is not there (an empty 404). Found here, each becomes a problem answer that the access log
records with the status actually sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
from collections.abc import Mapping

from aiohttp import web

from loopwise.http.server._logsafe import printable

__all__ = ["needs_vetting", "vet"]

# What aiohttp refuses in a header name or value (it allows the tab).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Header values already found sendable: most answers repeat the same few, so one C-level set
# check replaces the scan. Bounded: past the limit, new values are scanned every time.
_sendable: set[str] = set()
_SENDABLE_LIMIT = 4096


def needs_vetting(response: web.StreamResponse) -> bool:
    """Cheap: False for a plain ``web.Response`` whose header values are known to be sendable.

    (``response`` is what a handler returned: at run time it may be anything.) Header names
    come from code, not from clients: they are checked only when a value needs a look.
    """
    return response.__class__ is not web.Response or not _sendable.issuperset(
        response.headers.values()
    )


def _unsendable_header(headers: Mapping[str, str]) -> str | None:
    """The name of the first header aiohttp would refuse to send, or None (remembering the
    sendable values)."""
    for name, value in headers.items():
        if _FORBIDDEN.search(name):
            return printable(name)
        if value in _sendable:
            continue
        if _FORBIDDEN.search(value):
            return printable(name)
        if len(_sendable) < _SENDABLE_LIMIT:
            _sendable.add(value)
    return None


async def vet(
    request: web.Request, response: object, log: logging.Logger, rid: str | None
) -> int | None:
    """The error status to answer instead of ``response`` (logged to ``log`` with the request
    id ``rid`` when the handler is at fault), or None when it can be sent as it is."""
    if not isinstance(response, web.StreamResponse):
        _log_fault(
            log,
            request,
            rid,
            f"returned {type(response).__name__} instead of a web.Response "
            "(return a response, or raise an HTTP exception)",
        )
        return 500
    if response.prepared:
        return None
    bad = _unsendable_header(response.headers)
    if bad is not None:
        _log_fault(
            log,
            request,
            rid,
            f"set header {bad} with a control character (CR, LF, ...) in its name or value, "
            "which would allow header injection: it was not sent",
        )
        return 500
    if isinstance(response, web.FileResponse):
        return await _file_status(response)
    return None


async def _file_status(response: web.FileResponse) -> int | None:
    """404 or 403 when the file cannot be served, as ``FileResponse`` would find out itself."""
    path = getattr(response, "_path", None)
    if path is None:  # an aiohttp that keeps the path elsewhere: let FileResponse decide
        return None
    try:
        mode = (await asyncio.get_running_loop().run_in_executor(None, os.stat, path)).st_mode
    except PermissionError:
        return 403
    except OSError:
        return 404
    return None if stat.S_ISREG(mode) else 403


def _log_fault(log: logging.Logger, request: web.Request, rid: str | None, what: str) -> None:
    path = printable(request.path)
    log.error(
        "the handler of %s %s (request id %s) %s",
        request.method,
        path,
        rid or "-",
        what,
        extra={"request_id": rid, "method": request.method, "path": path},
    )
