"""What the runtime doctor costs: throughput under each watcher, relative to a plain run.

Workloads (each in one process, on the default asyncio loop):

- ``http``: an aiohttp server and client in one process, N requests with 64 in flight;
- ``pingpong``: 256 task pairs passing a token through two queues.

Modes: ``plain``; ``doctor`` (``loopwise.doctor`` with its defaults); ``doctor-coros``
(``track_coroutines=True``); ``doctor-monitor`` (``monitor=True``, with a client process asking
for a ``top`` frame every second, as ``loopwise top`` does); ``debug``
(``PYTHONASYNCIODEBUG=1``); ``aiomonitor`` (started before the timing, with its task-factory
hook, no client attached); ``blockbuster`` and ``pyleak`` (peers pinned, installed on first use
into a throwaway environment, never the active one). Every (round, mode, workload) runs in a
fresh interpreter; rounds interleave the modes, the order rotating each round, so machine noise
hits them alike. Prints the median time of each and
its throughput ratio to plain (1.00 = free, 0.50 = half the throughput).

Run by hand, e.g.:  python benchmarks/doctor_overhead.py --rounds 5 --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _harness

MODES = (
    "plain",
    "doctor",
    "doctor-coros",
    "doctor-monitor",
    "aiomonitor",
    "debug",
    "blockbuster",
    "pyleak",
)
WORKLOADS = ("http", "pingpong")
PEERS = {
    "blockbuster": "blockbuster==1.5.29",
    "pyleak": "pyleak==0.2.0",
    "aiomonitor": "aiomonitor==0.7.1",
}
Sample = tuple[float, float]  # (wall seconds, CPU seconds of the whole process)


# -- workloads ---------------------------------------------------------------------------------


async def http_workload(requests: int, concurrency: int = 64) -> None:
    from aiohttp import ClientSession, TCPConnector, web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "ok": True})

    app = web.Application()
    app.router.add_get("/{name}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    remaining = iter(range(requests))
    try:
        async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:

            async def client() -> None:
                for i in remaining:
                    async with session.get(f"http://127.0.0.1:{port}/item{i}") as response:
                        await response.json()

            await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        await runner.cleanup()


async def pingpong_workload(pairs: int = 256, messages: int = 400) -> None:
    async def ping(inbox: asyncio.Queue[int], outbox: asyncio.Queue[int]) -> None:
        for i in range(messages):
            await outbox.put(i)
            await inbox.get()

    async def pong(inbox: asyncio.Queue[int], outbox: asyncio.Queue[int]) -> None:
        for _ in range(messages):
            await outbox.put(await inbox.get())

    tasks = []
    for _ in range(pairs):
        a: asyncio.Queue[int] = asyncio.Queue()
        b: asyncio.Queue[int] = asyncio.Queue()
        tasks.append(asyncio.create_task(ping(a, b)))
        tasks.append(asyncio.create_task(pong(b, a)))
    await asyncio.gather(*tasks)


# -- one measurement (in a fresh interpreter) ------------------------------------------------------

TOP_CLIENT = """\
import sys, time
from loopwise.doctor._monitor_client import request
request(int(sys.argv[1]), "top")
print("attached", flush=True)
while True:
    time.sleep(1.0)
    request(int(sys.argv[1]), "top")
"""


def _with_aiomonitor(make: Callable[[], Awaitable[None]]) -> Sample:
    import socket

    import aiomonitor

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port

    async def main() -> Sample:
        monitor = aiomonitor.start_monitor(
            asyncio.get_running_loop(),
            port=free_port(),
            console_port=free_port(),
            webui_port=free_port(),
            hook_task_factory=True,
        )
        try:
            start, start_cpu = time.perf_counter(), time.process_time()
            await make()
            return time.perf_counter() - start, time.process_time() - start_cpu
        finally:
            monitor.close()

    return asyncio.run(main())


def _attach_top() -> subprocess.Popen[str]:
    """A client asking this process's monitor for a ``top`` frame every second, started."""
    top = subprocess.Popen(
        [sys.executable, "-c", TOP_CLIENT, str(os.getpid())], stdout=subprocess.PIPE, text=True
    )
    assert top.stdout is not None
    top.stdout.readline()  # its first frame is answered: it is attached
    return top


def _timed(make: Callable[[], Awaitable[None]], wrap: Callable[[Any], Any]) -> Sample:
    async def main() -> Sample:
        start, start_cpu = time.perf_counter(), time.process_time()
        await wrap(make())
        return time.perf_counter() - start, time.process_time() - start_cpu

    return asyncio.run(main())


def measure(mode: str, workload: str, requests: int, messages: int) -> Sample:
    def make() -> Awaitable[None]:
        if workload == "http":
            return http_workload(requests)
        return pingpong_workload(messages=messages)

    async def same(coro: Awaitable[None]) -> None:
        await coro

    if mode in ("plain", "debug"):  # debug: the parent set PYTHONASYNCIODEBUG=1
        return _timed(make, same)
    if mode.startswith("doctor"):
        from loopwise import doctor

        monitor = mode == "doctor-monitor"
        with doctor.watch(track_coroutines=mode == "doctor-coros", monitor=monitor) as doc:
            top = _attach_top() if monitor else None
            try:
                elapsed = _timed(make, same)
            finally:
                if top is not None:
                    top.kill()
                    top.wait()
        if doc.events:
            print(f"note: doctor found {len(doc.events)} events", file=sys.stderr)
        return elapsed
    if mode == "aiomonitor":
        return _with_aiomonitor(make)
    if mode == "blockbuster":
        from blockbuster import blockbuster_ctx

        with blockbuster_ctx():
            return _timed(make, same)
    if mode == "pyleak":
        from pyleak import no_event_loop_blocking, no_task_leaks

        async def watched(coro: Awaitable[None]) -> None:
            async with no_task_leaks(action="log"), no_event_loop_blocking(action="log"):
                await coro

        return _timed(make, watched)
    raise SystemExit(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")


# -- driver -------------------------------------------------------------------------------------


def peers_for(modes: list[str]) -> _harness.PeerEnv:
    """The pinned peers the chosen modes need, in a throwaway environment (never the active one)."""
    return _harness.peer_env([PEERS[mode] for mode in modes if mode in PEERS])


def run_one(
    peers: _harness.PeerEnv, mode: str, workload: str, requests: int, messages: int
) -> Sample:
    env = peers.child_env()
    env.pop("PYTHONASYNCIODEBUG", None)
    if mode == "debug":
        env["PYTHONASYNCIODEBUG"] = "1"
    command = [sys.executable, __file__, "--worker", mode, workload]
    command += ["--requests", str(requests), "--messages", str(messages)]
    result = _harness.run_child(command, env=env)
    return float(result["seconds"]), float(result["cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    _harness.add_json_options(parser)
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _harness.use_peers()
        seconds, cpu = measure(args.worker[0], args.worker[1], args.requests, args.messages)
        print(json.dumps({"seconds": seconds, "cpu": cpu}))
        return
    modes = ["plain", *(m for m in args.modes.split(",") if m and m != "plain")]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode {', '.join(unknown)}; use {', '.join(MODES)}")
    workloads = [w for w in args.workloads.split(",") if w]
    peers = peers_for(modes)
    options = {k: vars(args)[k] for k in ("rounds", "requests", "messages")}
    options |= {"modes": modes, "workloads": workloads}
    results = _harness.Results("doctor_overhead", options, note=args.note, peers=peers)
    configurations = [(w, m) for w in workloads for m in modes]
    plan = _harness.interleave(configurations, args.rounds)
    for done, (round_no, (workload, mode)) in enumerate(plan, 1):
        wall, cpu = run_one(peers, mode, workload, args.requests, args.messages)
        results.add(round_no, {"mode": mode, "workload": workload}, wall=wall, cpu=cpu)
        if done % len(configurations) == 0:
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    rows = []
    for mode in modes:
        row: dict[str, object] = {"mode": mode}
        for workload in workloads:
            for kind in ("wall", "cpu"):
                measured = results.values(kind, mode=mode, workload=workload)
                spread = _harness.summarize(measured)
                base = results.values(kind, mode="plain", workload=workload)
                row[f"{workload}_{kind}"] = spread.median
                row[f"{workload}_{kind}_low"] = spread.low
                row[f"{workload}_{kind}_high"] = spread.high
                row[f"{workload}_{kind}_vs_plain"] = _harness.paired_ratio(base, measured)
        rows.append(row)
    results.summary["modes"] = rows
    print(
        f"\n{args.rounds} rounds, http = {args.requests} requests / 64 in flight, "
        f"pingpong = 256 pairs x {args.messages} messages; median seconds and throughput "
        "vs plain\n"
    )
    print("wall: median seconds, and throughput vs plain as the median of each round's ratio;")
    print("cpu: the same from the process's CPU time")
    print("(all threads), which machine load disturbs far less than wall time\n")
    columns = [
        f"{w} {what}"
        for w in workloads
        for what in ("wall s", "wall vs plain", "cpu s", "cpu vs plain")
    ]
    print("| mode | " + " | ".join(columns) + " |")
    print("|" + "---|" * (1 + len(columns)))
    for row in rows:
        cells = []
        for workload in workloads:
            for kind in ("wall", "cpu"):
                cells.append(f"{row[f'{workload}_{kind}']:.3f}")
                cells.append(f"{row[f'{workload}_{kind}_vs_plain']:.2f}x")
        print(f"| {row['mode']} | " + " | ".join(cells) + " |")
    results.write(args.json)


if __name__ == "__main__":
    main()
