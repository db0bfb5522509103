"""Running a program under the doctor exactly as ``python script.py`` / ``python -m mod`` would."""

from __future__ import annotations

import gc
import importlib.util
import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from types import TracebackType

from loopwise._exceptions import ConfigError
from loopwise.doctor._doctor import Doctor, install, uninstall
from loopwise.doctor._report import format_report, write_json

__all__ = ["RunOptions", "run_program"]

_OWN_FILES = (
    os.path.dirname(os.path.abspath(__file__)),
    os.path.abspath(runpy.__file__),
    "<frozen runpy>",
)


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


def _check_target(options: RunOptions) -> None:
    if options.is_module:
        if not options.target:
            raise ConfigError("-m needs a module name, e.g. 'loopwise run -m package.module'")
        try:
            spec = importlib.util.find_spec(options.target)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot find module {options.target!r}: {exc}") from None
        if spec is None:
            raise ConfigError(
                f"no module named {options.target!r} (is it importable from this directory?)"
            )
    elif not os.path.exists(options.target):
        raise ConfigError(f"cannot open {options.target!r}: no such file (give a script path)")
    if options.json_path is not None:
        parent = os.path.dirname(os.path.abspath(options.json_path))
        if not os.path.isdir(parent):
            raise ConfigError(f"cannot write --json {options.json_path!r}: no directory {parent!r}")


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Drop the leading frames of loopwise and runpy, as python shows none of its own."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (
            filename.startswith(_OWN_FILES) or os.path.abspath(filename).startswith(_OWN_FILES)
        ):
            break
        tb = tb.tb_next
    return tb


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _execute(options: RunOptions) -> int:
    """Run the target; returns its exit status as the interpreter would compute it."""
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    try:
        if options.is_module:
            sys.argv = [options.target, *options.args]
            sys.path.insert(0, os.getcwd()) if not sys.path else sys.path.__setitem__(
                0, os.getcwd()
            )
            runpy.run_module(options.target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = [options.target, *options.args]
            script_dir = os.path.dirname(os.path.abspath(options.target))
            if sys.path:
                sys.path[0] = script_dir
            else:
                sys.path.insert(0, script_dir)
            runpy.run_path(options.target, run_name="__main__")
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except KeyboardInterrupt as exc:
        traceback.print_exception(type(exc), exc, _user_traceback(exc.__traceback__))
        return 130
    except BaseException as exc:
        traceback.print_exception(type(exc), exc, _user_traceback(exc.__traceback__))
        return 1
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0


def run_program(options: RunOptions) -> int:
    """Run the program under the doctor, print the report on stderr; return its exit code.

    Raises :class:`~loopwise.ConfigError` (before running anything) for a missing script or
    module or an unwritable ``--json`` path.
    """
    _check_target(options)
    doctor: Doctor = install(
        threshold_ms=options.threshold_ms,
        track_coroutines=options.track_coroutines,
        task_sites=options.task_sites,
    )
    try:
        code = _execute(options)
        gc.collect()  # let finalizers report what the program dropped
        gc.collect()
    finally:
        uninstall()
    events = doctor.events
    sys.stdout.flush()
    sys.stderr.write("\n" + format_report(events))
    sys.stderr.flush()
    if options.json_path is not None:
        write_json(options.json_path, events)
    return code
