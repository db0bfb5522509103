"""Running a program under the doctor exactly as ``python script.py`` / ``python -m mod`` would.

The program gets a fresh ``__main__`` module laid out like the interpreter's own, the same
``sys.argv`` and ``sys.path[0]``; a script, a directory or zip file with ``__main__.py`` and
``-m module`` are told apart and run as CPython's ``main`` does (``runpy`` for the last two).
Its end is python's: uncaught exceptions go to ``sys.excepthook`` (without loopwise's frames),
``SystemExit`` gives the exit status, non-daemon threads are waited for, and an uncaught
``KeyboardInterrupt`` ends the process by SIGINT. The report comes after all of that.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import gc
import io
import itertools
import os
import runpy
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from loopwise._exceptions import ConfigError
from loopwise.doctor._doctor import Doctor, install, uninstall
from loopwise.doctor._report import format_report, write_json

__all__ = ["RunOptions", "run_program"]

_LOOPWISE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_DOCTOR_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``loopwise run`` was asked to do."""

    target: str
    args: tuple[str, ...] = ()
    is_module: bool = False
    threshold_ms: float = 100.0
    json_path: str | None = None
    track_coroutines: bool = False
    task_sites: bool = True
    full_stacks: bool = False
    gil_fallback: bool = False
    monitor: bool = False


class _CannotRun(Exception):
    """The interpreter's own one-line refusal, and the exit status it uses for it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _check_json_path(options: RunOptions) -> None:
    if options.json_path is not None:
        parent = os.path.dirname(os.path.abspath(options.json_path))
        if not os.path.isdir(parent):
            raise ConfigError(f"cannot write --json {options.json_path!r}: no directory {parent!r}")


def _has_importer(path: str) -> bool:
    """True when a path hook accepts ``path`` (a directory or zip file), as CPython's main asks."""
    for hook in sys.path_hooks:
        try:
            hook(path)
        except ImportError:
            continue
        return True
    return False


def _fresh_main() -> types.ModuleType:
    """A new ``__main__`` module with the keys, in the order, the interpreter gives its own."""
    main = types.ModuleType("__main__")
    namespace = vars(main)
    namespace["__annotations__"] = {}
    namespace["__builtins__"] = builtins
    sys.modules["__main__"] = main
    return main


def _set_path0(path0: str) -> None:
    if sys.flags.safe_path:  # python -P / PYTHONSAFEPATH: the interpreter adds no path0
        return
    if sys.path:
        sys.path[0] = path0
    else:
        sys.path.insert(0, path0)


def _load_script(target: str) -> types.CodeType:
    """The compiled script; :class:`_CannotRun` when it cannot be read (nothing has run yet)."""
    path = os.path.abspath(target)
    try:
        with io.open_code(path) as handle:
            source = handle.read()
    except OSError as exc:
        raise _CannotRun(
            f"{sys.executable}: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}", 2
        ) from None
    return compile(source, path, "exec", dont_inherit=True)


def _run_script(code: types.CodeType, options: RunOptions) -> None:
    path = code.co_filename
    sys.argv = [options.target, *options.args]
    _set_path0(os.path.dirname(os.path.realpath(path)))
    main = _fresh_main()
    from importlib.machinery import SourceFileLoader

    main.__dict__["__file__"] = path
    main.__dict__["__cached__"] = None
    main.__loader__ = SourceFileLoader("__main__", path)
    exec(code, main.__dict__)


def _run_main_module(options: RunOptions) -> None:
    """``python -m module`` or ``python dir_or_zip``: runpy, exactly as the interpreter uses it."""
    _fresh_main()
    run_as_main = runpy._run_module_as_main  # type: ignore[attr-defined]
    if options.is_module:
        sys.argv = ["-m", *options.args]
        _set_path0(os.getcwd())
        run_as_main(options.target, alter_argv=True)
    else:
        sys.argv = [options.target, *options.args]
        _set_path0(os.path.abspath(options.target))
        run_as_main("__main__", alter_argv=False)


def _without_own_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop loopwise's frames from a traceback (python shows none of its own).

    Cut: the launcher's frames at the start, and anywhere the doctor's own wrappers (around
    ``asyncio.Runner.run``, the loop's methods) stand between the program's frames.
    """
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_LOOPWISE_DIR):
        tb = tb.tb_next
    kept: list[TracebackType] = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_DOCTOR_DIR):
            kept.append(tb)
        tb = tb.tb_next
    for earlier, later in itertools.pairwise(kept):
        earlier.tb_next = later
    if kept:
        kept[-1].tb_next = None
    return kept[0] if kept else None


_MISSING = object()


def _strip_chain(exc: BaseException) -> None:
    """Cut loopwise's frames from ``exc`` and the exceptions chained to it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = _without_own_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions


def _print_uncaught(exc: BaseException) -> int | None:
    """Hand an uncaught exception to ``sys.excepthook``, as the interpreter does.

    Returns the exit status the hook chose by raising ``SystemExit`` (python exits with it),
    else None.
    """
    _strip_chain(exc)
    hook: Any = getattr(sys, "excepthook", _MISSING)
    if hook is _MISSING:
        print("sys.excepthook is missing", file=sys.stderr)
        traceback.print_exception(exc)
        return None
    try:
        hook(type(exc), exc, exc.__traceback__)
    except SystemExit as hook_exit:
        return _system_exit_status(hook_exit)
    except BaseException as hook_error:
        # Python calls the hook with no exception being handled: the hook's error has no
        # context of ours, and its traceback starts in the hook.
        if hook_error.__context__ is exc:
            hook_error.__context__ = None
        hook_error.__traceback__ = _without_own_frames(hook_error.__traceback__)
        print("Error in sys.excepthook:", file=sys.stderr)
        traceback.print_exception(hook_error)
        print("\nOriginal exception was:", file=sys.stderr)
        traceback.print_exception(exc)
    return None


def _system_exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):  # python ignores a failure to print it too
        sys.stderr.write(f"{code}\n")
    return 1


def _wait_for_threads() -> None:
    """Join non-daemon threads until none is left, as the interpreter does before exiting."""
    main = threading.main_thread()
    while True:
        pending = [
            t
            for t in threading.enumerate()
            if t is not main
            and t is not threading.current_thread()
            and not t.daemon
            and t.is_alive()
        ]
        if not pending:
            return
        for thread in pending:
            thread.join()


@dataclass(slots=True)
class _Outcome:
    status: int = 0
    interrupted: bool = False


def _execute(options: RunOptions, code: types.CodeType | None) -> _Outcome:
    outcome = _Outcome()
    try:
        try:
            if code is not None:
                _run_script(code, options)
            else:
                _run_main_module(options)
        except SystemExit as exc:
            outcome.status = _system_exit_status(exc)
        except KeyboardInterrupt as exc:
            status = _print_uncaught(exc)
            outcome.status, outcome.interrupted = (1, True) if status is None else (status, False)
        except BaseException as exc:  # the program's own, uncaught
            status = _print_uncaught(exc)
            outcome.status = 1 if status is None else status
        _wait_for_threads()
    except KeyboardInterrupt:  # Ctrl-C while waiting for the program's threads
        outcome.status, outcome.interrupted = 1, True
    return outcome


def _die_by_sigint() -> None:
    """End the process by SIGINT after running atexit handlers, like python after Ctrl-C."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream: nothing left to flush
            stream.flush()
    if hasattr(signal, "SIGINT") and hasattr(os, "kill"):
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def run_program(options: RunOptions) -> int:
    """Run the program under the doctor, print the report on stderr; return its exit status.

    The report is printed only when there is something to report (or, when stderr is a
    terminal, as one "no problems found" line). Raises :class:`~loopwise.ConfigError` (before
    running anything) for an unwritable ``--json`` path. A script that cannot be opened, a
    module that cannot be found or a directory without ``__main__.py`` get the interpreter's
    own one-line error and exit status.
    """
    _check_json_path(options)
    code: types.CodeType | None = None
    if not options.is_module and not _has_importer(options.target):
        try:
            code = _load_script(options.target)
        except _CannotRun as exc:
            sys.stderr.write(f"{exc}\n")
            return exc.code
        except (SyntaxError, ValueError) as exc:  # reported as python reports it, exit 1
            status = _print_uncaught(exc)
            return 1 if status is None else status
    doctor: Doctor = install(
        threshold_ms=options.threshold_ms,
        track_coroutines=options.track_coroutines,
        task_sites=options.task_sites,
        gil_fallback=options.gil_fallback,
        monitor=options.monitor,
    )
    if options.monitor:
        pid = os.getpid()
        _write_stderr(f"loopwise: monitor on: 'loopwise ps {pid}', 'loopwise top {pid}'\n")
    try:
        outcome = _execute(options, code)
        gc.collect()  # let finalizers report what the program dropped
        gc.collect()
    finally:
        uninstall()
    _report(doctor, options)
    if outcome.interrupted:
        _die_by_sigint()
        return 130
    return outcome.status


def _report(doctor: Doctor, options: RunOptions) -> None:
    events = doctor.events
    with contextlib.suppress(Exception):  # the program closed its stdout
        sys.stdout.flush()
    if events:
        _write_stderr("\n" + format_report(events, full_stacks=options.full_stacks))
    elif _stderr_is_a_tty():
        _write_stderr(format_report(events))
    if options.json_path is not None:
        write_json(options.json_path, events)


def _stderr_is_a_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):  # None, or closed by the program
        return False


def _write_stderr(text: str) -> None:
    """Write on ``sys.stderr``; on file descriptor 2 if the program closed that; else drop it."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
        return
    except (AttributeError, ValueError, OSError):
        pass
    data = text.encode(errors="backslashreplace")
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(2, data) :]
