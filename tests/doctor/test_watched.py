"""All the program runs is watched until it really ends; blocks are real, never starvation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RunDoctor


def test_a_thread_outliving_the_script_is_waited_for_and_watched(run_doctor: RunDoctor) -> None:
    run = run_doctor(
        """\
        import asyncio, threading, time

        async def late_work():
            await asyncio.sleep(0.01)
            time.sleep(0.3)  # <- thread-block

        def worker():
            time.sleep(0.3)
            asyncio.run(late_work())
            print("worker done", flush=True)

        threading.Thread(target=worker).start()
        print("main done", flush=True)
        """
    )
    assert run.code == 0, run.stderr
    assert run.stdout == "main done\nworker done\n"
    assert len(run.located("blocked", "thread-block")) == 1, run.stderr


PLAIN_CALLBACKS = """\
import asyncio, functools, time

class Echo(asyncio.Protocol):
    def data_received(self, data):
        time.sleep(0.3)  # <- protocol

async def main():
    loop = asyncio.get_running_loop()
    loop.call_soon(time.sleep, 0.3)
    await asyncio.sleep(0.05)
    loop.call_later(0.01, functools.partial(time.sleep, 0.3))
    await asyncio.sleep(0.4)
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x")
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()

asyncio.run(main())
"""


def test_blocking_plain_callbacks_are_reported_naming_the_callback(
    run_doctor: RunDoctor,
) -> None:
    run = run_doctor(PLAIN_CALLBACKS)
    assert run.code == 0, run.stderr
    blocked = run.of_kind("blocked")
    assert len(blocked) == 3, run.stderr
    named = [e for e in blocked if "callback time.sleep" in e["message"]]
    assert len(named) == 2, run.stderr  # call_soon and call_later (through the partial)
    assert len(run.located("blocked", "protocol")) == 1, run.stderr
    assert all((" busy " in e["message"]) != (" waiting " in e["message"]) for e in blocked)


HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"

CLEAN_SERVER = """\
import asyncio, time

async def handle(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    end = time.monotonic() + 3
    while time.monotonic() < end:
        writer.write(b"ping")
        await reader.readexactly(4)
        await asyncio.sleep(0.002)
    writer.close()
    server.close()
    await server.wait_closed()
    time.sleep(0.3)  # <- sleep
    await asyncio.sleep(0.05)
    end = time.thread_time() + 0.3  # 300 ms of CPU, however long the machine takes to give it
    while time.thread_time() < end: pass  # <- cpu

asyncio.run(main())
"""


def test_cpu_starvation_by_other_processes_is_not_a_block(
    run_doctor: RunDoctor, tmp_path: Path
) -> None:
    """Three CPU hogs on a 2-core budget: the clean loop is starved, never blocked."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", HOG.format(seconds=8)])
        for _ in range(max(3, (os.cpu_count() or 2) + 1))
    ]
    try:
        run = run_doctor(CLEAN_SERVER)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert run.code == 0, run.stderr
    blocked = run.of_kind("blocked")
    assert {(e["location"] or {}).get("line") for e in blocked} == {
        run.line("sleep"),
        run.line("cpu"),
    }, json.dumps(blocked, indent=1)
    (sleep,) = run.located("blocked", "sleep")
    (cpu,) = run.located("blocked", "cpu")
    assert " waiting " in sleep["message"]
    assert " busy " in cpu["message"]


@pytest.mark.parametrize("start_delay", ["0", "0.001"])
def test_a_block_right_after_the_loop_starts_is_labelled(
    run_doctor: RunDoctor, start_delay: str
) -> None:
    run = run_doctor(
        f"""\
        import asyncio, time

        async def main():
            await asyncio.sleep({start_delay})
            time.sleep(0.3)  # <- early

        asyncio.run(main())
        """
    )
    (early,) = run.located("blocked", "early")
    assert " waiting (not on CPU) " in early["message"], early["message"]
