"""Run reference blocks as programs.

``python _run_block.py < spec.json`` runs one block. ``python _run_block.py --serve`` imports
the usual libraries once, then reads one spec per line on stdin and runs each block in a
forked child (a fresh process that skips the imports), answering one JSON line per block.

A block is compiled with the reference file's name and its own line numbers, so tracebacks
and doctor events point at the Markdown. It runs as ``__main__`` under the loopwise doctor;
the exception it raised (if any) and the doctor's events are written to ``spec["result"]``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from typing import Any, NoReturn


def run(spec: dict[str, Any]) -> None:
    """Run the block described by ``spec`` in this process and write its result file."""
    result: dict[str, Any] = {"error": None, "bases": [], "message": None, "events": []}
    source = "\n" * (spec["first_line"] - 1) + spec["code"]
    code = compile(source, spec["filename"], "exec")
    module = types.ModuleType("__main__")
    module.__file__ = spec["filename"]
    sys.modules["__main__"] = module
    sys.argv = [spec["filename"]]

    from loopwise import doctor

    # A program that installs the doctor itself cannot run under a second one.
    watching = spec.get("doctor", True)
    with doctor.watch(threshold_ms=spec["threshold_ms"]) if watching else _unwatched() as watched:
        try:
            exec(code, module.__dict__)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                result["error"] = "SystemExit"
                result["message"] = str(exc.code)
        except BaseException as exc:
            traceback.print_exc()
            result["error"] = type(exc).__name__
            result["bases"] = [cls.__name__ for cls in type(exc).__mro__]
            result["message"] = str(exc)
        gc.collect()
        if watched is not None:
            watched.sync()
    if watched is not None:
        result["events"] = [event.to_json() for event in watched.events]
    with open(spec["result"], "w", encoding="utf-8") as file:
        json.dump(result, file)


@contextlib.contextmanager
def _unwatched() -> Iterator[None]:
    yield None


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    """The child's exit code, and whether it had to be killed after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1, True
        time.sleep(0.005)


def _exit_child() -> NoReturn:
    """What interpreter exit does that a program can observe, without tearing down modules.

    Non-daemon threads are joined and ``atexit`` functions run (a block that would hang at
    exit still hangs, and times out); skipping the module teardown saves ~0.1 s per block.
    """
    try:
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def serve() -> int:
    """Answer specs from stdin, one forked child per block."""
    import asyncio  # noqa: F401  (imported once here, inherited by every child)

    import aiohttp.test_utils
    import aiohttp.web  # noqa: F401

    import loopwise.doctor
    import loopwise.http
    import loopwise.http.server  # noqa: F401

    for line in sys.stdin:
        spec = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run the block, then exit
            os.chdir(spec["cwd"])
            for fd, path in ((1, spec["stdout"]), (2, spec["stderr"]), (0, os.devnull)):
                flags = os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                target = os.open(path, flags, 0o644)
                os.dup2(target, fd)
                os.close(target)
            try:
                run(spec)
            finally:
                _exit_child()
        code, timed_out = _wait(pid, spec["timeout"])
        sys.stdout.write(json.dumps({"returncode": code, "timed_out": timed_out}) + "\n")
        sys.stdout.flush()
    return 0


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    run(json.load(sys.stdin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
