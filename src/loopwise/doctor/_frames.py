"""Turning interpreter frames into :class:`Frame` values and telling user code from library code."""

from __future__ import annotations

import contextlib
import os
import runpy
import site
import sys
import sysconfig
import traceback
from collections.abc import Iterable, Sequence
from types import CodeType, FrameType, TracebackType

from loopwise.doctor._model import Frame

__all__ = [
    "CodeSite",
    "code_site_frame",
    "first_outside",
    "frames_from_frame",
    "frames_from_summary",
    "frames_from_traceback",
    "is_user_file",
    "library_name",
    "user_location",
]

#: A cheap record of one execution point: the code object and its last instruction offset.
CodeSite = tuple[CodeType, int]

_DOCTOR_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(sys.modules["asyncio"].__file__ or "")) + os.sep


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {
        paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths
    }
    with contextlib.suppress(AttributeError):  # some virtualenv implementations lack it
        prefixes.update(site.getsitepackages())
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if isinstance(user_site, str):
        prefixes.add(user_site)
    normalized = {os.path.abspath(p) + os.sep for p in prefixes if p}
    return (*sorted(normalized), _DOCTOR_DIR)


_LIBRARY_PREFIXES = _library_prefixes()
_BY_LENGTH = sorted(_LIBRARY_PREFIXES, key=len, reverse=True)


def library_name(filename: str) -> str:
    """The package or stdlib module a library file belongs to (``asyncio``, ``pytest``, …)."""
    if filename.startswith("<frozen "):
        return filename[len("<frozen ") : -1].split(".")[0]
    path = os.path.abspath(filename)
    if path.startswith(_DOCTOR_DIR):
        return "loopwise"
    for prefix in _BY_LENGTH:
        if path.startswith(prefix):
            first = path[len(prefix) :].split(os.sep)[0]
            return first.removesuffix(".py") or "?"
    return os.path.basename(filename)


_CACHE_LIMIT = 10_000
_user_file_cache: dict[str, bool] = {}


def is_user_file(filename: str) -> bool:
    """True when ``filename`` is user code: not the stdlib, an installed package or the doctor."""
    cached = _user_file_cache.get(filename)
    if cached is None:
        if filename.startswith("<"):
            cached = not filename.startswith("<frozen")
        else:
            cached = not os.path.abspath(filename).startswith(_LIBRARY_PREFIXES)
        if len(_user_file_cache) >= _CACHE_LIMIT:  # programs that exec() code under new names
            _user_file_cache.clear()
        _user_file_cache[filename] = cached
    return cached


# Keyed by file name, not by code object: a str caches its hash, a code object hashes its
# whole body on every lookup (it showed as a third of the task factory's cost).
_internal_file_cache: dict[str, bool] = {}


def _is_internal(code: CodeType) -> bool:
    name = code.co_filename
    internal = _internal_file_cache.get(name)
    if internal is None:
        internal = name.startswith(_ASYNCIO_DIR) or name.startswith(_DOCTOR_DIR)
        if len(_internal_file_cache) >= _CACHE_LIMIT:
            _internal_file_cache.clear()
        _internal_file_cache[name] = internal
    return internal


def _loop_entry_codes() -> frozenset[CodeType]:
    """Code of the frames where a loop runs callbacks: above them is not the creator's code."""
    import asyncio.base_events
    import asyncio.events
    import asyncio.runners

    loop_cls = asyncio.base_events.BaseEventLoop
    functions = (
        asyncio.events.Handle._run,
        asyncio.runners.Runner.run,
        asyncio.runners.run,
        loop_cls.run_forever,
        loop_cls.run_until_complete,
        loop_cls._run_once,  # type: ignore[attr-defined]
    )
    return frozenset(f.__code__ for f in functions)


_LOOP_ENTRY_CODES = _loop_entry_codes()
# By identity: _LOOP_ENTRY_CODES holds these code objects for as long as this module lives
# (even if a library replaces asyncio's methods and drops the originals), so no other code
# object can take one of their ids; and only asyncio's and the doctor's code reaches the check.
_LOOP_ENTRY_IDS = frozenset(map(id, _LOOP_ENTRY_CODES))


def first_outside(frame: FrameType | None) -> CodeSite | None:
    """The first frame, walking outwards, that is neither asyncio's nor the doctor's own.

    ``None`` when the walk reaches the loop running a callback first: the code that caused the
    call is not on the stack.
    """
    while frame is not None:
        code = frame.f_code
        if not _is_internal(code):
            return (code, frame.f_lasti)
        if id(code) in _LOOP_ENTRY_IDS:
            return None
        frame = frame.f_back
    return None


def _line_of(code: CodeType, lasti: int) -> int:
    for start, end, line in code.co_lines():
        if start <= lasti < end and line is not None:
            return line
    return code.co_firstlineno


def code_site_frame(site_: CodeSite) -> Frame:
    """The :class:`Frame` of a recorded code site."""
    code, lasti = site_
    return Frame(code.co_filename, _line_of(code, lasti), code.co_name)


_LAUNCHER_FILES = (
    "<frozen runpy>",
    os.path.abspath(runpy.__file__),
    os.path.join(_DOCTOR_DIR, "_runner.py"),
)


def _shown(frames: Iterable[Frame]) -> tuple[Frame, ...]:
    """``frames`` (innermost last) without the doctor's own frames and its program launcher.

    Under ``loopwise run`` everything outside the program's own code (the ``loopwise``
    command, runpy) is the launcher.
    """
    frames = list(frames)
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].file in _LAUNCHER_FILES:
            frames = frames[index + 1 :] or frames
            break
    return tuple(f for f in frames if not f.file.startswith(_DOCTOR_DIR))


def frames_from_frame(frame: FrameType | None, limit: int = 64) -> tuple[Frame, ...]:
    """The stack ending at ``frame``, innermost last, at most ``limit`` frames deep."""
    frames: list[Frame] = []
    while frame is not None and len(frames) < limit:
        code = frame.f_code
        frames.append(Frame(code.co_filename, frame.f_lineno or 0, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return _shown(frames)


def frames_from_traceback(tb: TracebackType | None) -> tuple[Frame, ...]:
    """The frames of a traceback, innermost last."""
    return tuple(
        Frame(summary.filename, summary.lineno or 0, summary.name)
        for summary in traceback.extract_tb(tb)
    )


def frames_from_summary(summary: Iterable[object]) -> tuple[Frame, ...]:
    """Frames from a ``traceback.StackSummary`` or a list of ``(file, line, function)`` tuples."""
    frames: list[Frame] = []
    for item in summary:
        if isinstance(item, traceback.FrameSummary):
            frames.append(Frame(item.filename, item.lineno or 0, item.name))
        elif isinstance(item, tuple) and len(item) >= 3:
            frames.append(Frame(str(item[0]), int(item[1]), str(item[2])))
    return _shown(frames)


def user_location(stack: Sequence[Frame]) -> Frame | None:
    """The innermost frame of user code in ``stack`` (innermost last), else its innermost frame."""
    for frame in reversed(stack):
        if is_user_file(frame.file):
            return frame
    return stack[-1] if stack else None
