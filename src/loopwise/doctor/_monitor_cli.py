"""``loopwise ps``, ``pstree`` and ``top``: look inside a program watched with the monitor on.

Cheap to import: the client, the views and rich are imported by the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loopwise._argtypes import port_number

__all__ = ["register"]

_HOW = (
    "The program must run with the monitor on: 'loopwise run --monitor script.py' or "
    "'with loopwise.doctor.watch(monitor=True): ...'. Only processes of your own user can be "
    "read."
)


def _pid(text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        pid = 0
    if pid <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a process id")
    return pid


def register(subparsers: Any) -> None:
    """Add ``ps``, ``pstree`` and ``top`` to the ``loopwise`` command."""
    ps = subparsers.add_parser(
        "ps",
        help="list the tasks of a running program (monitor on)",
        description="One line per task of process PID: id, name, coroutine, state, age, the "
        "line it waits at, and what it waits for. " + _HOW,
    )
    ps.add_argument("pid", type=_pid, metavar="PID")
    ps.add_argument("--json", action="store_true", help="print the monitor's answer as JSON")
    ps.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="show at most N tasks (1000)"
    )
    ps.set_defaults(handler=handle_ps, view="ps")
    tree = subparsers.add_parser(
        "pstree",
        help="show who awaits whom in a running program (monitor on)",
        description="The await graph of process PID: each task above the tasks it waits for "
        "(tasks it awaits, its TaskGroup's tasks, the holder of the lock it waits for); a cycle "
        "is shown once and not followed. " + _HOW,
    )
    tree.add_argument("pid", type=_pid, metavar="PID")
    tree.add_argument("--json", action="store_true", help="print the tree as JSON")
    tree.set_defaults(handler=handle_ps, view="pstree", limit=10_000)
    top = subparsers.add_parser(
        "top",
        help="a live view of a running program's loop lag and tasks (monitor on)",
        description="Refreshes once a second: loop lag (now, p99 over the last minute), tasks "
        "by state and by coroutine, the longest-waiting tasks and the last blocked events with "
        "their lines. Press q to quit. " + _HOW,
    )
    top.add_argument("pid", type=_pid, metavar="PID")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument("--json", action="store_true", help="print one frame as JSON and exit")
    top.add_argument(
        "--web", action="store_true", help="serve the view as a live page on 127.0.0.1"
    )
    top.add_argument(
        "--port", type=port_number, default=0, help="with --web: the port (default: any free one)"
    )
    top.set_defaults(handler=handle_top)


def _ask(pid: int, op: str, limit: int = 1000) -> dict[str, Any] | None:
    from loopwise.doctor._monitor_client import MonitorUnavailable, request

    try:
        return request(pid, op, limit=limit)
    except MonitorUnavailable as exc:
        print(f"loopwise: {exc}", file=sys.stderr)
        return None


def handle_ps(args: argparse.Namespace) -> int:
    """``ps`` and ``pstree``: 0 when printed, 1 when the process cannot be read."""
    from loopwise.doctor._monitor_views import await_tree, format_ps, format_pstree

    if not 1 <= args.limit <= 10_000:
        print("loopwise ps: error: --limit must be from 1 to 10000", file=sys.stderr)
        return 2
    answer = _ask(args.pid, "ps", args.limit)
    if answer is None:
        return 1
    if args.view == "pstree":
        if args.json:
            print(json.dumps({"pid": answer["pid"], "tree": await_tree(answer["tasks"])}))
        else:
            sys.stdout.write(format_pstree(answer))
    elif args.json:
        print(json.dumps(answer))
    else:
        sys.stdout.write(format_ps(answer))
    return 0


def handle_top(args: argparse.Namespace) -> int:
    """``top``: 0 after ``q`` or ``--once``, 1 when the process cannot be read (or has ended)."""
    if args.web:
        from loopwise.doctor._top_web import serve_top

        return serve_top(args.pid, args.port)
    from loopwise.doctor._monitor_views import render_top

    answer = _ask(args.pid, "top")
    if answer is None:
        return 1
    if args.once or args.json:
        if args.json:
            print(json.dumps(answer))
        else:
            from rich.console import Console

            Console().print(render_top(answer))
        return 0
    return _live(args.pid, answer)


def _live(pid: int, answer: dict[str, Any]) -> int:
    from rich.console import Console
    from rich.live import Live

    from loopwise.doctor._monitor_views import render_top

    console = Console()
    with _KeyReader() as keys, Live(render_top(answer), console=console, screen=False) as live:
        while True:
            if keys.wait_for_quit(1.0):
                return 0
            fresh = _ask(pid, "top")
            if fresh is None:
                return 1
            live.update(render_top(fresh))


class _KeyReader:
    """Reads single keys from a terminal without waiting for Enter (``q`` quits)."""

    def __init__(self) -> None:
        self._saved: Any = None

    def __enter__(self) -> _KeyReader:
        if sys.stdin.isatty():
            import termios
            import tty

            self._saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)

    def wait_for_quit(self, timeout: float) -> bool:
        """Wait ``timeout`` s for a key; True when it was ``q`` (or stdin ended)."""
        import select
        import time

        if self._saved is None:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if not ready:
            return False
        key = sys.stdin.read(1)
        return key in ("q", "Q", "")
