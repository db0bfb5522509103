"""Creation sites of aiohttp sessions/connectors and asyncio transports, and their leaks.

aiohttp already reports an unclosed ``ClientSession`` or connector through the loop's exception
handler, with a ``source_traceback`` when it has one; the doctor gives each new one that
traceback (which aiohttp otherwise records only in debug mode). asyncio's selector transports
only warn when collected unclosed; the doctor records where they were opened and reports them.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

from loopwise.doctor._frames import (
    code_site_frame,
    first_outside,
    frames_from_frame,
    user_location,
)
from loopwise.doctor._model import Event, EventKind
from loopwise.doctor._tasks import creation_site

__all__ = ["ResourcePatches"]

_Sink = Callable[[Event], None]


def _creation_traceback(depth: int) -> traceback.StackSummary:
    frames = frames_from_frame(sys._getframe(depth), limit=32)
    return traceback.StackSummary.from_list([(f.file, f.line, f.function, None) for f in frames])


def _with_source_traceback(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        try:
            if getattr(self, "_source_traceback", None) is None:
                self._source_traceback = _creation_traceback(2)
        except Exception:
            pass

    __init__.__loopwise__ = True  # type: ignore[attr-defined]
    return __init__


class ResourcePatches:
    """Installs and removes the class patches; each is applied at most once and undone exactly."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._undo: list[tuple[type, str, Any]] = []
        self._aiohttp_done = False
        self._transports_done = False

    def apply(self) -> None:
        """Patch what is importable now; aiohttp is patched only once the program imported it."""
        if not self._transports_done:
            self._transports_done = True
            self._patch_transports()
        if not self._aiohttp_done and "aiohttp" in sys.modules:
            self._aiohttp_done = True
            self._patch_aiohttp()

    def remove(self) -> None:
        """Restore every patched attribute."""
        while self._undo:
            cls, name, original = self._undo.pop()
            setattr(cls, name, original)
        self._aiohttp_done = self._transports_done = False

    def _set(self, cls: type, name: str, value: Any) -> None:
        self._undo.append((cls, name, cls.__dict__[name]))
        setattr(cls, name, value)

    def _patch_aiohttp(self) -> None:
        try:
            from aiohttp import client, connector
        except Exception:
            return
        for cls in (client.ClientSession, connector.BaseConnector):
            init = cls.__dict__.get("__init__")
            if init is not None and not getattr(init, "__loopwise__", False):
                self._set(cls, "__init__", _with_source_traceback(init))

    def _patch_transports(self) -> None:
        from asyncio import selector_events

        cls = selector_events._SelectorTransport  # type: ignore[attr-defined]
        init = cls.__dict__.get("__init__")
        finalizer = cls.__dict__.get("__del__")
        if init is None or finalizer is None or getattr(init, "__loopwise__", False):
            return
        sink = self._sink

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            try:
                site = first_outside(sys._getframe(1))
                if site is None:  # opened by the loop itself, e.g. a server accepting
                    task = asyncio.current_task()
                    site = creation_site(task) if task is not None else None
                self._loopwise_site = site
            except Exception:
                pass

        @functools.wraps(finalizer)
        def __del__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                if getattr(self, "_sock", None) is not None:
                    sink(_transport_event(self))
            except Exception:
                pass
            finalizer(self, *args, **kwargs)

        __init__.__loopwise__ = True  # type: ignore[attr-defined]
        self._set(cls, "__init__", __init__)
        self._set(cls, "__del__", __del__)


def _transport_event(transport: asyncio.BaseTransport) -> Event:
    site = getattr(transport, "_loopwise_site", None)
    stack = (code_site_frame(site),) if site is not None else ()
    where = user_location(stack)
    message = f"transport {type(transport).__name__} was never closed"
    if where is not None:
        message += f"; opened at {where.at}"
    message += " (close the writer/transport, e.g. writer.close(); await writer.wait_closed())"
    return Event(EventKind.UNCLOSED_RESOURCE, message, stack=stack, location=where)
