"""Task and coroutine findings: creation sites, leaks at shutdown, lost exceptions, lost awaits."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from loopwise.doctor._frames import (
    CodeSite,
    code_site_frame,
    first_outside,
    frames_from_frame,
    frames_from_summary,
    frames_from_traceback,
    is_user_file,
    user_location,
)
from loopwise.doctor._model import Event, EventKind, Frame

__all__ = [
    "Task",
    "creation_site",
    "creation_time",
    "event_from_context",
    "is_housekeeping",
    "leak_event",
    "make_task_factory",
    "unawaited_event",
    "unawaited_warning_text",
    "unretrieved_exception_pending",
]

_getframe = sys._getframe
_monotonic = time.monotonic
_TaskFactory = Callable[..., "asyncio.Future[Any]"]
# Creation sites and times of tasks made by a task factory the doctor wraps (not our Task).
_side_table: weakref.WeakKeyDictionary[Any, tuple[CodeSite | None, float]] = (
    weakref.WeakKeyDictionary()
)


class Task(asyncio.Task):  # type: ignore[type-arg]
    """An ``asyncio.Task`` that remembers the line and time that created it; otherwise identical."""

    __slots__ = ("_loopwise_born", "_loopwise_site")


def make_task_factory(
    inner: _TaskFactory | None, registry: weakref.WeakSet[Any] | None = None
) -> _TaskFactory:
    """A task factory recording each task's creation site, wrapping ``inner`` if there is one.

    With ``registry``, each task is also added to it (see :func:`unretrieved_exception_pending`).
    """
    if registry is not None:
        plain = make_task_factory(inner)
        add = registry.add

        def registering(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Future[Any]:
            task = plain(loop, coro, **kwargs)
            with contextlib.suppress(TypeError):
                add(task)
            return task

        registering.__loopwise__ = True  # type: ignore[attr-defined]
        return registering
    if inner is None:

        def factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Future[Any]:
            task = Task(coro, loop=loop, **kwargs)
            task._loopwise_site = first_outside(_getframe(1))  # type: ignore[attr-defined]
            task._loopwise_born = _monotonic()  # type: ignore[attr-defined]
            return task

    else:
        sites = _side_table

        def factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Future[Any]:
            task = inner(loop, coro, **kwargs)
            with contextlib.suppress(TypeError):  # not weak-referenceable
                sites[task] = (first_outside(_getframe(1)), _monotonic())
            return task

    factory.__loopwise__ = True  # type: ignore[attr-defined]
    return factory


def unretrieved_exception_pending(registry: weakref.WeakSet[Any]) -> bool:
    """True when a task of ``registry`` failed and its exception was not retrieved yet.

    asyncio reports such a task only when it is garbage-collected. Tasks that can no longer
    be reported are dropped from ``registry`` as a side effect.
    """
    pending = False
    for task in list(registry):
        if not task.done():
            continue
        if not task.cancelled() and getattr(task, "_log_traceback", False):
            pending = True
        else:
            registry.discard(task)
    return pending


def creation_site(task: object) -> CodeSite | None:
    """Where ``task`` was created, if it was created while the doctor watched its loop."""
    site = getattr(task, "_loopwise_site", None)
    if site is not None:
        return site  # type: ignore[no-any-return]
    try:
        entry = _side_table.get(task)
    except TypeError:
        return None
    return entry[0] if entry is not None else None


def creation_time(task: object) -> float | None:
    """When (``time.monotonic()``) ``task`` was created, if the doctor watched its loop then."""
    born = getattr(task, "_loopwise_born", None)
    if born is not None:
        return born  # type: ignore[no-any-return]
    try:
        entry = _side_table.get(task)
    except TypeError:
        return None
    return entry[1] if entry is not None else None


def _suspended_at(task: asyncio.Future[Any]) -> Frame | None:
    """The innermost user frame of the await chain ``task`` is suspended in."""
    awaitable: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    chain: list[Frame] = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        chain.append(Frame(code.co_filename, frame.f_lineno or code.co_firstlineno, code.co_name))
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    where = user_location(chain)
    return where if where is not None and is_user_file(where.file) else None


def _describe(task: asyncio.Future[Any]) -> str:
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", None) or type(coro).__name__
        return f"task {task.get_name()!r} running {name}()"
    return "future"


def leak_event(task: asyncio.Future[Any], when: str) -> Event:
    """A ``task-leak`` event for ``task``, still pending ``when`` (e.g. "at shutdown")."""
    site = creation_site(task)
    stack: tuple[Frame, ...] = (code_site_frame(site),) if site is not None else ()
    where = stack[-1] if stack else None
    parts = [f"{_describe(task)} was still pending {when}"]
    if where is not None:
        parts.append(f"created at {where.at}")
    suspended = _suspended_at(task)
    if suspended is not None:
        parts.append(f"waiting at {suspended.at}")
    message = "; ".join(parts) + " (await it, cancel it, or use a TaskGroup)"
    if suspended is not None and (where is None or not is_user_file(where.file)):
        # A library made the task (a server's handler task): your line is where it waits.
        stack, where = (*stack, suspended), suspended
    return Event(EventKind.TASK_LEAK, message, stack=stack, location=where)


def _exception_event(future: asyncio.Future[Any], exc: BaseException) -> Event:
    site = creation_site(future)
    created = (code_site_frame(site),) if site is not None else ()
    trace = frames_from_traceback(exc.__traceback__)
    stack = created + trace
    where = user_location(trace) or (created[-1] if created else None)
    parts = [f"{_describe(future)} failed and nobody retrieved its exception: {exc!r}"]
    if created:
        parts.append(f"created at {created[-1].at}")
    if where is not None:
        parts.append(f"raised at {where.at}")
    message = "; ".join(parts) + " (await the task or add a done callback that reads it)"
    return Event(EventKind.EXCEPTION_NOT_RETRIEVED, message, stack=stack, location=where)


def _resource_event(name: str, context: dict[str, Any]) -> Event:
    summary = context.get("source_traceback") or ()
    stack = frames_from_summary(summary)
    where = user_location(stack)
    message = f"{name} was never closed"
    if where is not None:
        message += f"; opened at {where.at}"
    message += " (use 'async with' or close it before the loop ends)"
    return Event(EventKind.UNCLOSED_RESOURCE, message, stack=stack, location=where)


def event_from_context(context: dict[str, Any]) -> Event | None:
    """The event an asyncio exception-handler ``context`` reports, ``None`` if none applies."""
    message = str(context.get("message", ""))
    task = context.get("task") or context.get("future")
    exc = context.get("exception")
    if isinstance(task, asyncio.Future):
        if message.startswith("Task was destroyed but it is pending"):
            if is_housekeeping(task):
                return None
            return leak_event(task, "when it was garbage-collected")
        if isinstance(exc, BaseException) and "exception was never retrieved" in message:
            return _exception_event(task, exc)
    if "client_session" in context:
        return _resource_event("aiohttp ClientSession", context)
    if "connector" in context and message.startswith("Unclosed connector"):
        return _resource_event("aiohttp connector", context)
    return None


def unawaited_event(coro: object, dropped: Any) -> Event:
    """A ``never-awaited`` event for ``coro``; ``dropped`` is the frame that let go of it."""
    name = getattr(coro, "__qualname__", None) or repr(coro)
    origin = getattr(coro, "cr_origin", None)
    if origin:
        created = tuple(reversed(frames_from_summary(origin)))
        where = user_location(created)
        message = f"coroutine {name}() was never awaited"
        if where is not None:
            message += f"; created at {where.at}"
        stack = created
    else:
        stack = frames_from_frame(dropped, limit=16)
        where = user_location(stack)
        message = f"coroutine {name}() was never awaited"
        if where is not None:
            message += f"; created and dropped at {where.at}"
    message += " (add 'await', or wrap it in asyncio.create_task and keep the task)"
    return Event(EventKind.NEVER_AWAITED, message, stack=stack, location=where)


def unawaited_warning_text(coro: object) -> str:
    """The text of the interpreter's own "coroutine ... was never awaited" warning."""
    lines = [f"coroutine '{getattr(coro, '__qualname__', coro)}' was never awaited\n"]
    origin = getattr(coro, "cr_origin", None)
    if origin:
        lines.append("Coroutine created at (most recent call last)\n")
        summaries = [traceback.FrameSummary(file, line, func) for file, line, func in origin[::-1]]
        lines += traceback.format_list(summaries)
    return "".join(lines).rstrip("\n")


def is_housekeeping(task: asyncio.Future[Any]) -> bool:
    """True for a task asyncio made itself: closing an async generator the program dropped.

    The loop's async-generator finalizer schedules ``aclose()`` as a task; that is asyncio
    tidying up, not a task the program leaked. (An ``aclose()`` task the program created has a
    creation site and is not excluded.)
    """
    if not isinstance(task, asyncio.Task) or creation_site(task) is not None:
        return False
    return type(task.get_coro()).__name__ == "async_generator_athrow"


def _pending_tasks(loop: asyncio.AbstractEventLoop) -> Generator[asyncio.Task[Any]]:
    current = asyncio.current_task(loop) if loop.is_running() else None
    for task in asyncio.all_tasks(loop):
        if task is not current and not task.done() and not is_housekeeping(task):
            yield task


def pending_events(loop: asyncio.AbstractEventLoop) -> list[Event]:
    """A ``task-leak`` event for each task still pending on ``loop``, oldest first."""
    tasks = sorted(_pending_tasks(loop), key=_natural_name)
    return [leak_event(task, "at shutdown") for task in tasks]


def _natural_name(task: asyncio.Task[Any]) -> tuple[str, int]:
    match = re.fullmatch(r"(.*?)(\d+)", task.get_name())
    return (match.group(1), int(match.group(2))) if match else (task.get_name(), -1)
