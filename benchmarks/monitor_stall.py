"""How long the doctor's monitor stops the event loop while a client reads snapshots.

One process runs the default asyncio loop under ``loopwise.doctor.watch(monitor=True)`` with
``--tasks`` tasks alive (a quarter each waiting on a sleep, an Event, a Queue and a Lock) and a
ticker coroutine that only does ``await asyncio.sleep(0)``: every gap between two ticks longer
than usual is time the loop could not run. Phases of ``--seconds`` alternate, ``--rounds``
times: one with nobody reading, one while a client process asks for a snapshot (``--op ps``:
every task; ``top``: the summary) every ``--poll-ms`` ms.

Prints, for each kind of phase, the loop's gap percentiles, the longest gap and how many gaps
exceeded 1 ms -- and of those, how many had the loop thread waiting over 1 ms for the GIL (off
CPU and not runnable: the ticker makes no other blocking call; from its CPU clock and its
run-queue time in ``schedstat``, Linux) and how many were mostly the OS running another
process (runnable, off CPU); the client's view (snapshots answered, time each took, the
monitor's longest step in CPU time -- how long it held the GIL -- and in wall time); and the
garbage collections run by the monitor's thread and by the loop's thread while polled (a
collection holds the GIL throughout, whichever thread runs it).

The gaps are kept in an ``array`` (a list of a million floats is a young container the
garbage collector walks through: that showed as multi-millisecond collections, in whichever
thread they ran, that were the benchmark's own doing), written into memory touched before the
first phase (see ``_Gaps``).

The client reads each answer whole but parses only its head (the snapshot's figures): parsing
megabytes of records took a CPU for about 0.1 s per snapshot, and on a 2-core machine that
pre-empted the monitor's thread while it held the GIL, which showed as the loop waiting for the
GIL (a client doing so runs as well with ``loopwise ps``; it is not what is measured here).

Run by hand, e.g.:  python benchmarks/monitor_stall.py --tasks 10000 --seconds 5
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

CLIENT = """\
import json, os, socket, sys, time
from loopwise.doctor._monitor_paths import candidate_paths
pid, seconds, poll, op = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
path = next(p for p in candidate_paths(pid) if os.path.exists(p))
took, cpu, wall, sizes, slow, slow_cpu = [], [], [], [], [], []
end = time.monotonic() + seconds
while time.monotonic() < end:
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(path)
        sock.sendall(json.dumps({"op": op, "limit": 10000}).encode() + b"\\n")
        first, chunk = b"", b"x"
        while b'"tasks":[' not in first and chunk:
            chunk = sock.recv(65536)
            first += chunk
        while chunk:  # the records are read, not parsed: see the module's docstring
            chunk = sock.recv(1 << 20)
    mark = first.find(b'"tasks":[')
    head = json.loads(first[:mark].rstrip(b",") + b"}" if mark >= 0 else first)
    snapshot = head["snapshot"]
    took.append(snapshot["took_ms"])
    cpu.append(snapshot["longest_step_ms"])
    wall.append(snapshot.get("longest_step_wall_ms"))
    slow.append(snapshot.get("steps_over_1ms", 0))
    slow_cpu.append(snapshot.get("steps_over_1ms_cpu", 0))
    sizes.append(head["tasks_total"])
    time.sleep(max(0.0, poll - (time.monotonic() - start)))
print(json.dumps({"took": took, "cpu": cpu, "wall": wall, "tasks": sizes, "slow": slow,
                  "slow_cpu": slow_cpu}))
"""

MONITOR_THREAD = "loopwise-doctor-monitor"


class _Collections:
    """Garbage collections by thread while ``recording``: (generation, milliseconds)."""

    def __init__(self) -> None:
        self.recording = False
        self.runs: dict[str, list[tuple[int, float]]] = {}
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._started[ident] = time.perf_counter()
            return
        began = self._started.pop(ident, None)
        if began is None or not self.recording:
            return
        name = threading.current_thread().name
        if name != MONITOR_THREAD:
            name = "loop"
        elapsed = (time.perf_counter() - began) * 1000
        self.runs.setdefault(name, []).append((info["generation"], elapsed))

    def summary(self) -> dict[str, Any]:
        return {
            thread: {
                "count_by_generation": [sum(1 for g, _ in runs if g == i) for i in range(3)],
                "longest_ms": round(max(ms for _, ms in runs), 3),
                "over_1ms": sum(ms > 1 for _, ms in runs),
            }
            for thread, runs in sorted(self.runs.items())
        }


class _Gaps:
    """The loop's gaps between two ticks, and for each gap over 1 ms how long the loop thread
    was off CPU though runnable (the OS ran another process) and how long it was neither on CPU
    nor runnable: waiting for the GIL, the ticker doing no other blocking call.

    The gaps are written in place into memory allocated and touched once, before the first
    phase: a growing array (or a fresh one each phase) makes the loop thread take page faults,
    which wait whenever another thread changes the process's memory map (that showed as
    hundreds of 1-10 ms gaps, in the quiet phases too).
    """

    def __init__(self, capacity: int) -> None:
        self.room: array.array[float] = array.array("d", [0.0]) * capacity
        self.count = 0
        self.long: array.array[float] = array.array("d")  # the gaps over 1 ms
        self.gil_waits: array.array[float] = array.array("d")  # in each of them
        self.os_waits: array.array[float] = array.array("d")

    @property
    def all(self) -> array.array[float]:
        return self.room[: self.count]


async def _ticker(seconds: float, gaps: _Gaps) -> None:
    from loopwise.doctor._loopwatch import ClockReader

    room, count = gaps.room, gaps.count
    clocks = ClockReader(reopen_every=1 << 40)  # reads schedstat without releasing the GIL
    native = threading.get_native_id()
    perf, cpu_time = time.perf_counter, time.thread_time
    end = perf() + seconds
    last, last_cpu, last_clock = perf(), cpu_time(), clocks.read(native)
    try:
        while last < end and count < len(room):
            await asyncio.sleep(0)
            now, cpu, clock = perf(), cpu_time(), clocks.read(native)
            gap = now - last
            room[count] = gap
            count += 1
            if gap > 0.001 and clock is not None and last_clock is not None:
                runnable = clock[2] - last_clock[2]  # run-queue wait: exact once scheduled in
                gaps.long.append(gap)
                gaps.os_waits.append(runnable)
                gaps.gil_waits.append(max(0.0, gap - (cpu - last_cpu) - runnable))
            last, last_cpu, last_clock = now, cpu, clock
    finally:
        clocks.close()
        gaps.count = count


async def _population(count: int) -> list[asyncio.Task[Any]]:
    event = asyncio.Event()
    queue: asyncio.Queue[int] = asyncio.Queue()
    lock = asyncio.Lock()
    await lock.acquire()  # held by the main task all along: the lock waiters wait
    makers = [
        lambda: asyncio.sleep(3600),
        event.wait,
        queue.get,
        lock.acquire,
    ]
    tasks = [asyncio.create_task(makers[i % 4](), name=f"t{i}") for i in range(count)]
    await asyncio.sleep(0.1)
    return tasks


def _describe(gaps: _Gaps) -> dict[str, float]:
    ordered = sorted(gaps.all)
    last = len(ordered) - 1

    def at(share: float) -> float:
        return round(ordered[int(share * last)] * 1000, 4)

    return {
        "ticks": len(ordered),
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "p9999_ms": at(0.9999),
        "max_ms": round(ordered[-1] * 1000, 3),
        "over_1ms": sum(g > 0.001 for g in ordered),
        "gil_waits_over_1ms": sum(w > 0.001 for w in gaps.gil_waits),
        "longest_gil_wait_ms": round(max(gaps.gil_waits, default=0.0) * 1000, 3),
        "over_1ms_mostly_runnable_off_cpu": sum(
            o > g / 2 for o, g in zip(gaps.os_waits, gaps.long, strict=True)
        ),
    }


async def _polled_phase(
    args: argparse.Namespace, gaps: _Gaps, collections: _Collections
) -> dict[str, Any]:
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        str(os.getpid()),
        str(args.seconds + 1.0),
        str(args.poll_ms / 1000),
        args.op,
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # the client's interpreter starts: not measured
    collections.recording = True
    await _ticker(args.seconds, gaps)
    collections.recording = False
    out, _ = await client.communicate()
    view: dict[str, Any] = json.loads(out)
    return view


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    tasks = await _population(args.tasks)
    collections = _Collections()
    gc.callbacks.append(collections)
    capacity = int(args.rounds * args.seconds * 600_000)  # ticks come every 2-5 us
    quiet, polled = _Gaps(capacity), _Gaps(capacity)
    views: list[dict[str, Any]] = []
    try:
        for _ in range(args.rounds):
            await _ticker(args.seconds, quiet)
            views.append(await _polled_phase(args, polled, collections))
    finally:
        gc.callbacks.remove(collections)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    took = [t for view in views for t in view["took"]]
    cpu = [s for view in views for s in view["cpu"]]
    wall = [s for view in views for s in view["wall"] if s is not None]
    return {
        "tasks": args.tasks,
        "op": args.op,
        "quiet": _describe(quiet),
        "polled": _describe(polled),
        "snapshots": len(took),
        "snapshot_ms_median": statistics.median(took) if took else None,
        "longest_step_cpu_ms": max(cpu, default=None),
        "longest_step_wall_ms": max(wall, default=None),
        "steps_over_1ms_wall": sum(n for view in views for n in view["slow"]),
        "steps_over_1ms_cpu": sum(n for view in views for n in view["slow_cpu"]),
        "tasks_in_snapshot": max((n for view in views for n in view["tasks"]), default=0),
        "collections_while_polled": collections.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--poll-ms", type=float, default=100.0)
    parser.add_argument("--op", choices=("ps", "top"), default="ps")
    args = parser.parse_args()
    from loopwise import doctor

    with doctor.watch(monitor=True):
        result = asyncio.run(_main(args))
    print(json.dumps(result, indent=2))
    quiet, polled = result["quiet"], result["polled"]
    print(
        f"\n{args.tasks} tasks, {result['snapshots']} {args.op} snapshots (one every "
        f"{args.poll_ms:g} ms asked; median {result['snapshot_ms_median']} ms): loop gaps "
        f"p99.9 {quiet['p999_ms']} -> {polled['p999_ms']} ms, max {quiet['max_ms']} -> "
        f"{polled['max_ms']} ms, over 1 ms {quiet['over_1ms']} -> {polled['over_1ms']}; "
        f"monitor's longest step {result['longest_step_cpu_ms']} ms CPU, "
        f"{result['longest_step_wall_ms']} ms wall; gaps with a GIL wait over 1 ms: "
        f"{quiet['gil_waits_over_1ms']} -> {polled['gil_waits_over_1ms']}, "
        f"longest GIL wait {quiet['longest_gil_wait_ms']} -> {polled['longest_gil_wait_ms']} ms"
    )


if __name__ == "__main__":
    main()
