"""``loopwise run``: run a program under the doctor (cheap to import; the work is imported late)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["handle_run", "register"]

_DESCRIPTION = """\
Run a Python program exactly as 'python script.py args...' or 'python -m module args...' would
(same sys.argv, __main__ and exit code), watching its event loops; then print what the doctor
found on stderr: loops blocked longer than the threshold, tasks still pending at shutdown,
task exceptions never retrieved, coroutines never awaited and resources never closed, each
with the file:line to fix. Everything after the script or module is passed to it untouched.
"""


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of milliseconds, not {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, not {text}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "run",
        help="run a program under the runtime doctor",
        description=_DESCRIPTION,
        usage="%(prog)s [options] (script.py | -m module) [args ...]",
    )
    parser.add_argument(
        "--threshold-ms",
        type=_threshold,
        default=100.0,
        metavar="N",
        help="report a loop blocked for longer than N ms (default: 100)",
    )
    parser.add_argument(
        "--json", metavar="FILE", dest="json_path", help="also write the findings to FILE as JSON"
    )
    parser.add_argument(
        "--track-coroutines",
        action="store_true",
        help="record where every coroutine is created (slower; names the creation line of a "
        "coroutine never awaited even when it was dropped elsewhere)",
    )
    parser.add_argument(
        "--gil-fallback",
        action="store_true",
        help="locate C calls that hold the GIL with faulthandler (off by default: if the "
        "process is starved or stopped, faulthandler can crash it)",
    )
    parser.add_argument(
        "--full-stacks",
        action="store_true",
        help="show every frame of each finding (library frames are folded by default)",
    )
    parser.add_argument(
        "--monitor",
        action="store_true",
        help="let 'loopwise ps/pstree/top PID' look inside the program while it runs (a Unix "
        "socket readable only by you, in your runtime directory)",
    )
    parser.add_argument(
        "--no-task-sites",
        dest="task_sites",
        action="store_false",
        help="do not record the line that creates each task",
    )
    parser.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="module",
        help="run a library module as a script, like python -m",
    )
    parser.add_argument("script", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    parser.set_defaults(handler=handle_run)


def handle_run(args: argparse.Namespace) -> int:
    """Run the requested program; returns its exit code (2 for a usage error)."""
    import sys

    from loopwise._exceptions import ConfigError
    from loopwise.doctor._runner import RunOptions, run_program

    if args.module is not None:
        if not args.module:
            print("loopwise run: error: -m needs a module name", file=sys.stderr)
            return 2
        target, rest, is_module = args.module[0], tuple(args.module[1:]), True
    elif args.script is not None:
        target, rest, is_module = args.script, tuple(args.args), False
    else:
        print(
            "loopwise run: error: give a script or -m module (see 'loopwise run --help')",
            file=sys.stderr,
        )
        return 2
    options = RunOptions(
        target=target,
        args=rest,
        is_module=is_module,
        threshold_ms=args.threshold_ms,
        json_path=args.json_path,
        track_coroutines=args.track_coroutines,
        task_sites=args.task_sites,
        full_stacks=args.full_stacks,
        gil_fallback=args.gil_fallback,
        monitor=args.monitor,
    )
    try:
        return run_program(options)
    except ConfigError as exc:
        print(f"loopwise run: error: {exc}", file=sys.stderr)
        return 2
