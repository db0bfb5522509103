"""``loopwise run`` end to end: each finding at the right file:line, the program untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RunDoctor

LOOPS = ["asyncio", "uvloop"]

BLOCKING = """\
import asyncio
import sys
import time


def fetch_config():
    time.sleep(0.3)  # <- sleep


def checksum():
    end = time.thread_time() + 0.3  # 300 ms of CPU, however busy the machine is
    total = 0
    while time.thread_time() < end: total += 1  # <- cpu
    return total


async def main():
    await asyncio.sleep(0.01)
    fetch_config()  # <- call-sleep
    await asyncio.sleep(0.01)
    checksum()
    await asyncio.sleep(0.01)


if sys.argv[1] == "uvloop":
    import uvloop

    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_blocking_sleep_and_cpu_loop_are_located(run_doctor: RunDoctor, loop: str) -> None:
    run = run_doctor(BLOCKING, loop)
    assert run.code == 0, run.stderr
    sleep = run.located("blocked", "sleep")
    cpu = run.located("blocked", "cpu")
    assert len(sleep) == 1, run.stderr
    assert len(cpu) == 1, run.stderr
    assert len(run.of_kind("blocked")) == 2, run.stderr
    assert sleep[0]["duration_ms"] > 100
    # The stack leads from the caller to the blocking line, innermost last.
    stack = [(f["file"], f["line"]) for f in sleep[0]["stack"]]
    assert stack[-1] == (run.script.name, run.line("sleep"))
    assert (run.script.name, run.line("call-sleep")) in stack
    assert f"{run.script.name}:{run.line('sleep')}" in run.stderr


def test_short_stalls_below_the_threshold_are_not_reported(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        import asyncio, time

        async def main():
            for _ in range(5):
                time.sleep(0.02)
                await asyncio.sleep(0)

        asyncio.run(main())
        """,
        threshold_ms=150,
    )
    assert run.code == 0, run.stderr
    assert run.of_kind("blocked") == []
    assert run.stderr == ""  # nothing to report: not a byte more than python prints


def test_a_c_call_holding_the_gil_is_located(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        import asyncio

        def crunch():
            return 3 ** 3_000_000  # <- gil

        async def main():
            await asyncio.sleep(0.01)
            crunch()
            await asyncio.sleep(0.01)

        asyncio.run(main())
        """,
        options=("--gil-fallback",),
    )
    assert run.code == 0, run.stderr
    assert len(run.located("blocked", "gil")) == 1, run.stderr


LEAKS = """\
import asyncio

import aiohttp


async def forever():
    try:
        await asyncio.sleep(3600)  # <- waiting
    finally:
        print("cancelled by asyncio.run")


async def explode():
    raise ValueError("nobody saw me")  # <- raise


async def refresh():
    return 1


async def main():
    keep = asyncio.create_task(forever())  # <- leak
    lost = asyncio.create_task(explode())  # <- lost
    await asyncio.sleep(0.01)
    del lost
    refresh()  # <- unawaited
    session = aiohttp.ClientSession()  # <- session
    print("done", keep.done(), session.closed)


asyncio.run(main())
"""


def test_leaks_are_reported_with_their_creation_lines(run_doctor: RunDoctor) -> None:
    run = run_doctor(LEAKS)
    assert run.code == 0, run.stderr
    # The program ran as it would without the doctor: asyncio.run still cancelled the task.
    assert run.stdout.splitlines() == ["done False False", "cancelled by asyncio.run"]

    leak = run.located("task-leak", "leak")
    assert len(leak) == 1, run.stderr
    assert "still pending at shutdown" in leak[0]["message"]
    assert f"prog.py:{run.line('waiting')}" in leak[0]["message"]

    lost = run.of_kind("exception-not-retrieved")
    assert len(lost) == 1, run.stderr
    assert "ValueError('nobody saw me')" in lost[0]["message"]
    frames = [(f["file"], f["line"]) for f in lost[0]["stack"]]
    assert frames[0] == (run.script.name, run.line("lost"))  # where the task was created
    assert frames[-1] == (run.script.name, run.line("raise"))  # the traceback, innermost last

    assert len(run.located("never-awaited", "unawaited")) == 1, run.stderr
    assert len(run.located("unclosed-resource", "session")) == 1, run.stderr

    # The JSON report has the documented shape.
    kinds = {
        "blocked",
        "task-leak",
        "exception-not-retrieved",
        "never-awaited",
        "unclosed-resource",
    }
    assert run.events
    for event in run.events:
        assert event["kind"] in kinds
        assert isinstance(event["message"], str) and event["message"]
        assert "duration_ms" in event
        for frame in event["stack"]:
            assert set(frame) == {"file", "line", "function"}
            assert isinstance(frame["line"], int)


def test_unclosed_transport_is_reported_where_it_was_opened(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        import asyncio

        accepted = []

        async def main():
            server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_connection(  # <- open
                asyncio.Protocol, "127.0.0.1", port
            )
            while not accepted:
                await asyncio.sleep(0.001)
            server.close()
            await server.wait_closed()

        asyncio.run(main())
        """
    )
    assert run.code == 0, run.stderr
    assert len(run.located("unclosed-resource", "open")) == 1, run.stderr


def test_text_report_puts_the_most_severe_kind_first(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        LEAKS.replace(
            "    await asyncio.sleep(0.01)\n", "    time.sleep(0.2)  # <- block\n", 1
        ).replace("import asyncio\n", "import asyncio\nimport time\n", 1)
    )
    report = run.stderr[run.stderr.index("loopwise doctor:") :]
    order = [
        report.index(f"[{kind}]")
        for kind in (
            "blocked",
            "exception-not-retrieved",
            "task-leak",
            "never-awaited",
            "unclosed-resource",
        )
    ]
    assert order == sorted(order), report
    assert len(run.located("blocked", "block")) == 1


def test_program_sees_its_own_argv_main_and_exit_code(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        import sys
        print(repr(sys.argv[1:]), __name__, sys.argv[0].endswith("prog.py"))
        sys.exit(3)
        """,
        "--json",
        "x",
        "-m",
        "y",
    )
    assert run.code == 3
    assert run.stdout.splitlines() == ["['--json', 'x', '-m', 'y'] __main__ True"]
    assert run.events == []


def test_program_exception_shows_only_the_programs_traceback(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        def fail():
            raise RuntimeError("boom")  # <- raise

        fail()
        """
    )
    assert run.code == 1
    assert f'prog.py", line {run.line("raise")}, in fail' in run.stderr
    assert "RuntimeError: boom" in run.stderr
    traceback_text = run.stderr.split("loopwise doctor:")[0]
    assert "loopwise" not in traceback_text and "runpy" not in traceback_text


def test_run_a_module_with_dash_m(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text(
        "import asyncio, sys, time\n"
        "async def main():\n"
        "    time.sleep(0.25)\n"
        "print(__name__, sys.argv[1:])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "loopwise.doctor", "--json", "r.json", "-m", "pkg.tool", "a", "-x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["__main__ ['a', '-x']"]
    events = json.loads((tmp_path / "r.json").read_text())["events"]
    assert [(e["kind"], e["location"]["line"]) for e in events] == [("blocked", 3)]
    assert events[0]["location"]["file"].endswith("tool.py")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-m"], "-m needs a module name"),
        ([], "give a script or -m module"),
        (["--threshold-ms", "abc", "x.py"], "expected a number of milliseconds"),
        (["--threshold-ms", "0", "x.py"], "must be a positive number"),
        (["--json", "no/such/dir/r.json", "x.py"], "cannot write --json"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path: Path, argv: list[str], needle: str) -> None:
    (tmp_path / "x.py").write_text("print('ran')\n")
    done = subprocess.run(
        [sys.executable, "-m", "loopwise.doctor", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "ran" not in done.stdout


def test_register_adds_run_to_a_fresh_parser(tmp_path: Path) -> None:
    import argparse

    from loopwise.doctor._cli import register

    parser = argparse.ArgumentParser(prog="loopwise")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "--threshold-ms", "50", "s.py", "--threshold-ms", "7"])
    assert args.script == "s.py"
    assert args.args == ["--threshold-ms", "7"]
    assert args.threshold_ms == 50
    assert callable(args.handler)


def test_a_process_starved_of_cpu_is_not_reported_as_blocked(tmp_path: Path) -> None:
    """SIGSTOP freezes every thread: the loop looks late, but the program did not block it."""
    import os
    import signal
    import threading

    script = tmp_path / "idle.py"
    script.write_text(
        "import asyncio, sys\n"
        "async def main():\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.to_thread(sys.stdin.readline)\n"
        "asyncio.run(main())\n"
    )
    report = tmp_path / "r.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "loopwise.doctor", "--json", str(report), str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        assert process.stdout.readline() == "ready\n"
        resumed = threading.Event()
        os.kill(process.pid, signal.SIGSTOP)
        resumed.wait(0.4)  # the frozen span, longer than the 100 ms threshold
        os.kill(process.pid, signal.SIGCONT)
        resumed.wait(0.2)  # let the heartbeat and the watchdog both run again
        _, err = process.communicate("go\n", timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert json.loads(report.read_text())["events"] == [], err


def test_a_task_a_library_created_is_located_where_your_code_waits(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        import asyncio

        from aiohttp import ClientSession, web

        async def slow(request):
            await asyncio.sleep(3600)  # <- handler
            return web.Response()

        async def main():
            app = web.Application()
            app.router.add_get("/", slow)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            async with ClientSession() as session:
                try:
                    await session.get(f"http://127.0.0.1:{port}/", timeout=0.2)
                except asyncio.TimeoutError:
                    print("timed out")
            await asyncio.sleep(0.05)  # the server never cleaned up: its handler still runs

        asyncio.run(main())
        """
    )
    assert run.code == 0, run.stderr
    assert run.located("task-leak", "handler"), run.stderr
