"""How long the doctor's monitor stops the event loop while a client reads snapshots.

One process runs the default asyncio loop under ``loopwise.doctor.watch(monitor=True)`` with
``--tasks`` tasks alive (a quarter each waiting on a sleep, an Event, a Queue and a Lock) and a
ticker coroutine that only does ``await asyncio.sleep(0)``: every gap between two ticks longer
than usual is time the loop could not run. The ticker runs ``--seconds`` with nobody reading,
then ``--seconds`` while a client process asks for a full ``ps`` snapshot (every task) every
``--poll-ms`` ms. Prints, for each phase, the longest gap, the 99.9th percentile and how many
gaps exceeded 1 ms, and the client's view (snapshots answered, time each took, the monitor's
longest step).

Run by hand, e.g.:  python benchmarks/monitor_stall.py --tasks 10000 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

CLIENT = """\
import json, sys, time
from loopwise.doctor._monitor_client import request
pid, seconds, poll = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
took, steps, sizes = [], [], []
end = time.monotonic() + seconds
while time.monotonic() < end:
    start = time.monotonic()
    answer = request(pid, "ps", limit=10000, timeout=60)
    took.append(answer["snapshot"]["took_ms"])
    steps.append(answer["snapshot"]["longest_step_ms"])
    sizes.append(len(answer["tasks"]))
    time.sleep(max(0.0, poll - (time.monotonic() - start)))
print(json.dumps({"took": took, "steps": steps, "tasks": sizes}))
"""


async def _ticker(seconds: float) -> list[float]:
    gaps = []
    perf = time.perf_counter
    end = perf() + seconds
    last = perf()
    while last < end:
        await asyncio.sleep(0)
        now = perf()
        gaps.append(now - last)
        last = now
    return gaps


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


def _describe(gaps: list[float]) -> dict[str, float]:
    ordered = sorted(gaps)
    return {
        "ticks": len(gaps),
        "median_us": statistics.median(ordered) * 1e6,
        "p999_ms": ordered[int(0.999 * (len(ordered) - 1))] * 1000,
        "max_ms": ordered[-1] * 1000,
        "over_1ms": sum(g > 0.001 for g in ordered),
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    tasks = await _population(args.tasks)
    quiet = await _ticker(args.seconds)
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        str(os.getpid()),
        str(args.seconds + 1.0),
        str(args.poll_ms / 1000),
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # the client's interpreter starts: not measured
    polled = await _ticker(args.seconds)
    out, _ = await client.communicate()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    view = json.loads(out)
    return {
        "quiet": _describe(quiet),
        "polled": _describe(polled),
        "snapshots": len(view["took"]),
        "snapshot_ms_median": statistics.median(view["took"]) if view["took"] else None,
        "longest_step_ms": max(view["steps"], default=None),
        "tasks_in_snapshot": max(view["tasks"], default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--poll-ms", type=float, default=100.0)
    args = parser.parse_args()
    from loopwise import doctor

    with doctor.watch(monitor=True):
        result = asyncio.run(_main(args))
    print(json.dumps(result, indent=2))
    print(
        f"\n{args.tasks} tasks; longest loop stall: {result['quiet']['max_ms']:.2f} ms unread, "
        f"{result['polled']['max_ms']:.2f} ms while a client read {result['snapshots']} "
        f"snapshots (one every {args.poll_ms:g} ms asked; median snapshot "
        f"{result['snapshot_ms_median']} ms, monitor's longest step {result['longest_step_ms']} ms)"
    )


if __name__ == "__main__":
    main()
