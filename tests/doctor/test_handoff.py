"""The doctor's thread gets the GIL from a loop that never idles, at the loop's own pace.

A busy loop releases the GIL for a moment around every ``select``; a thread waiting for the
GIL is woken by each release and finds it taken again, so without the handoff the watchdog
ticked about 3 times a second instead of 20, and woke hundreds of times per tick.
"""

from __future__ import annotations

import asyncio
import gc
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loopwise import doctor
from loopwise.doctor._handoff import MAX_YIELD, Handoff, yield_to_doctor
from loopwise.doctor._loopwatch import YIELD_TRIES, SelectorWatch

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc thread status")


async def _busy_without_idling(seconds: float) -> int:
    """Queue ping-pong between many task pairs: the loop always has work, never sleeps."""
    deadline = time.monotonic() + seconds
    rounds = 0

    async def ping(inbox: asyncio.Queue[int], outbox: asyncio.Queue[int]) -> None:
        nonlocal rounds
        while time.monotonic() < deadline:
            await outbox.put(1)
            await inbox.get()
            rounds += 1
        await outbox.put(0)

    async def pong(inbox: asyncio.Queue[int], outbox: asyncio.Queue[int]) -> None:
        while await inbox.get():
            await outbox.put(1)

    async with asyncio.timeout(seconds + 10):
        async with asyncio.TaskGroup() as group:
            for _ in range(256):
                a: asyncio.Queue[int] = asyncio.Queue()
                b: asyncio.Queue[int] = asyncio.Queue()
                group.create_task(ping(a, b))
                group.create_task(pong(b, a))
    return rounds


def _voluntary_switches(native_id: int) -> int:
    with open(f"/proc/self/task/{native_id}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


@linux_only
def test_the_watchdog_keeps_its_pace_beside_a_loop_that_never_idles() -> None:
    seconds = 2.0
    with doctor.watch() as doc:
        watchdog = doc._watchdog

        async def main() -> tuple[int, int, int]:
            await asyncio.sleep(0.05)  # the watchdog thread is running
            assert watchdog._thread is not None and watchdog._thread.native_id is not None
            native = watchdog._thread.native_id
            ticks, switches = watchdog._ticks, _voluntary_switches(native)
            gc.disable()  # a long collection would hand the GIL over by itself
            try:
                rounds = await _busy_without_idling(seconds)
            finally:
                gc.enable()
            return watchdog._ticks - ticks, _voluntary_switches(native) - switches, rounds

        ticks, switches, rounds = asyncio.run(main())
    assert rounds > 1000  # the loop really was busy
    expected = seconds / watchdog.idle_tick
    assert ticks >= expected / 3, f"{ticks} ticks in {seconds} s, expected about {expected:.0f}"
    # Each tick sleeps once and takes the GIL once or twice; without the handoff every GIL
    # release of the loop could wake the waiting watchdog for nothing (seen: 5 to 300+
    # wake-ups per tick, 2.5 with it).
    assert switches / max(ticks, 1) < 6, f"{switches} wake-ups for {ticks} ticks"


@linux_only
def test_a_watchdog_started_beside_a_loop_that_is_busy_at_once_still_keeps_its_pace() -> None:
    # The watchdog thread starts when the loop is attached; a program that is busy from its
    # first callback gives it no idle moment to get going (seen: 0 ticks in 0.6 s).
    seconds = 1.0
    with doctor.watch() as doc:
        watchdog = doc._watchdog

        async def main() -> tuple[int, int]:
            gc.disable()
            try:
                rounds = await _busy_without_idling(seconds)
            finally:
                gc.enable()
            return watchdog._ticks, rounds

        ticks, rounds = asyncio.run(main())
    assert rounds > 1000
    expected = seconds / watchdog.idle_tick
    assert ticks >= expected / 3, f"{ticks} ticks in {seconds} s, expected about {expected:.0f}"


def test_a_loop_thread_waits_for_the_gate_no_longer_than_the_bound() -> None:
    handoff = Handoff()
    gate = handoff.expect(time.monotonic())
    started = time.monotonic()
    yield_to_doctor(gate)  # nobody opens it
    assert time.monotonic() - started < MAX_YIELD + 0.5
    assert gate.locked()  # still closed for the doctor's thread to open


def test_every_waiting_thread_goes_on_once_the_doctor_is_done() -> None:
    handoff = Handoff()
    gate = handoff.expect(time.monotonic())
    passed: list[bool] = []

    def loop_thread() -> None:
        # A long wait for this test only: it must end because the gate opens.
        passed.append(gate.acquire(timeout=5.0))
        gate.release()

    threads = [threading.Thread(target=loop_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    handoff.done(gate)
    for thread in threads:
        thread.join(timeout=5.0)
    assert passed == [True, True, True]
    assert handoff.state == (float("inf"), None)


def test_done_and_close_both_opening_a_gate_is_harmless() -> None:
    handoff = Handoff()
    gate = handoff.expect(0.0)
    handoff.done(gate)
    handoff.close()
    handoff.done(gate)
    assert not gate.locked()
    yield_to_doctor(gate)  # an open gate: passes at once and stays open
    assert not gate.locked()


def test_a_loop_waits_ever_more_rarely_for_a_doctor_thread_that_never_comes() -> None:
    loop = asyncio.new_event_loop()
    try:
        handoff = Handoff()
        watch = SelectorWatch(loop, 0.1, handoff)
        handoff.expect(0.0)  # due long ago, and nobody will open it
        started = time.monotonic()
        try:
            for _ in range(2000):
                loop.run_until_complete(asyncio.sleep(0))
        finally:
            watch.stop()
        spent = time.monotonic() - started
        # The waits come 5, 10, 20 ... ms apart: a handful in this run, never one per iteration.
        assert 2 <= watch._tries <= min(YIELD_TRIES, 2 + math.log2(spent / 0.005 + 1))
        assert spent < YIELD_TRIES * MAX_YIELD + 2.0
    finally:
        loop.close()


def test_a_moment_named_replaces_the_one_before_and_close_opens_its_gate() -> None:
    handoff = Handoff()
    first = handoff.expect(5.0)
    second = handoff.expect(3.0)
    assert handoff.state == (3.0, second)
    handoff.done(first)  # an older moment's gate opens; the current one stays
    assert handoff.state == (3.0, second)
    assert not first.locked() and second.locked()
    handoff.close()
    assert handoff.state == (float("inf"), None)
    assert not second.locked()


# The program under test: a heartbeat-watched loop waits at a gate nobody opens, and Ctrl-C
# arrives while it waits there (the signal is sent only once its thread is seen in the wait).
CTRL_C_AT_THE_GATE = """\
import asyncio
import signal
import sys
import threading
import time
import traceback

from loopwise.doctor._handoff import Handoff, yield_to_doctor
from loopwise.doctor._loopwatch import HeartbeatWatch

loop = asyncio.new_event_loop()
handoff = Handoff()
watch = HeartbeatWatch(loop, 0.1, 0.005, handoff)
watch.start()
main = threading.get_ident()


def ctrl_c_at_the_gate():
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        handoff.close()
        handoff.expect(0.0)  # due at once and never opened: the next beat waits at it
        time.sleep(0.001)
        frame = sys._current_frames().get(main)
        if frame is not None and frame.f_code is yield_to_doctor.__code__:
            signal.pthread_kill(main, signal.SIGINT)
            return


threading.Thread(target=ctrl_c_at_the_gate, daemon=True).start()
try:
    loop.run_until_complete(asyncio.sleep(30))
except KeyboardInterrupt as interrupt:
    where = [frame.name for frame in traceback.extract_tb(interrupt.__traceback__)]
    print("interrupted in the beat" if "_beat" in where else f"interrupted in {where}")
handoff.close()
# The program goes on after Ctrl-C (a graceful shutdown): the heartbeat must still beat, or
# the doctor takes the idle loop for a blocked one.
before = watch.away_since
loop.run_until_complete(asyncio.sleep(0.2))
print("beating" if watch.away_since > before else "stopped")
loop.close()
"""


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_while_a_heartbeat_loop_waits_at_the_gate_leaves_the_heartbeat_beating(
    tmp_path: Path,
) -> None:
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_AT_THE_GATE)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted in the beat", "beating"], done.stderr
