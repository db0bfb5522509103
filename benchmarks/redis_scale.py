"""Benchmark loopwise.redis against a local redis-server (Debian's package), never in tests::

    python benchmarks/redis_scale.py                  # about a minute on 2 cores
    python benchmarks/redis_scale.py --items 50000 --rounds 5

Part 1 pushes ``--items`` items through a work queue with a trivial stage (a Pipeline reading a
StreamWorker, prefetch 64, acknowledging each item after the stage) in 1 and 2 worker
processes, and through a hand-written redis-py loop in one process (XREADGROUP of 64 entries,
then one XACK of the batch): items per second from the first read to the last acknowledgement,
medians of ``--rounds`` interleaved rounds.

Part 2 runs ``--limiter-procs`` processes sharing a SharedRateLimiter at ``--rate`` per second
(burst ``--burst``) for ``--seconds``, each with 4 tasks acquiring in a loop, and reports the
grants per second against the target and the most grants in any 1 s window of Redis' clock
(the bound is rate + burst).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis.asyncio

from loopwise.patterns import Pipeline
from loopwise.redis import SharedRateLimiter, WorkQueue

BATCH = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", directory]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("redis-server did not start")


async def loopwise_worker(url: str, stream: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    queue: WorkQueue[int] = WorkQueue(client, stream)

    async def trivial(x: int) -> int:
        return x

    async with queue.consume(prefetch=BATCH, stop_when_empty=True) as worker:
        pipe = Pipeline(worker).stage(worker.step(trivial), workers=16)
        await pipe.stage(worker.ack).run()
    await client.aclose()


async def hand_written_worker(url: str, stream: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    with contextlib.suppress(redis.exceptions.ResponseError):
        await client.xgroup_create(stream, "workers", id="0", mkstream=True)
    while True:
        reply = await client.xreadgroup("workers", "hand", {stream: ">"}, count=BATCH, block=100)
        if not reply:
            break
        entries = reply[0][1]
        ids = [entry_id for entry_id, fields in entries if int(fields[b"d"]) >= 0]
        await client.xack(stream, "workers", *ids)
    await client.aclose()


async def fill(url: str, stream: str, items: int) -> None:
    client = redis.asyncio.Redis.from_url(url)
    await client.delete(stream)
    queue: WorkQueue[int] = WorkQueue(client, stream)
    for start in range(0, items, 1000):
        await queue.add_many(range(start, min(items, start + 1000)))
    await client.aclose()


def run_workers(url: str, stream: str, mode: str, processes: int) -> float:
    started = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, __file__, "--worker", mode, url, stream])
        for _ in range(processes)
    ]
    for child in children:
        if child.wait(timeout=600) != 0:
            sys.exit(f"a {mode} worker failed")
    return time.perf_counter() - started


async def limiter_process(url: str, rate: float, burst: int, seconds: float) -> None:
    client = redis.asyncio.Redis.from_url(url)
    limiter = SharedRateLimiter(client, "bench:quota", rate, burst=burst)
    deadline = time.monotonic() + seconds
    grants: list[float] = []

    async def take() -> None:
        while time.monotonic() < deadline:
            await limiter.acquire()
            granted = limiter.statistics().last_grant
            assert granted is not None
            grants.append(granted)

    async with asyncio.TaskGroup() as group:
        for _ in range(4):
            group.create_task(take())
    await client.aclose()
    print(" ".join(f"{g:.6f}" for g in grants))


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--limiter-procs", type=int, default=4)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="loopwise-redis-bench-")
    server, url = start_redis(directory)
    try:
        print(f"{os.cpu_count()} CPUs; {args.items} items, {args.rounds} rounds")
        configs = [("hand", 1), ("loopwise", 1), ("loopwise", 2)]
        results: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
        for _ in range(args.rounds):
            for mode, processes in configs:
                asyncio.run(fill(url, "bench:jobs", args.items))
                elapsed = run_workers(url, "bench:jobs", mode, processes)
                results[(mode, processes)].append(args.items / elapsed)
        base = statistics.median(results[("hand", 1)])
        print("| worker | processes | items/s (median) | vs hand-written |")
        print("| --- | ---: | ---: | ---: |")
        for (mode, processes), rates in results.items():
            median = statistics.median(rates)
            label = "hand-written XREADGROUP/XACK" if mode == "hand" else "Pipeline + StreamWorker"
            print(f"| {label} | {processes} | {median:,.0f} | {median / base:.2f}x |")

        limiter_args = [str(args.rate), str(args.burst), str(args.seconds)]
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--limiter", url, *limiter_args],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.limiter_procs)
        ]
        grants: list[float] = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            grants += [float(x) for x in out.split()]
        span = max(grants) - min(grants)
        achieved = (len(grants) - args.burst) / span if span > 0 else 0.0
        print(
            f"limiter: {args.limiter_procs} processes x 4 tasks, rate {args.rate:g}/s burst "
            f"{args.burst}: {len(grants)} grants in {span:.2f} s = {achieved:.1f}/s "
            f"({achieved / args.rate:.1%} of the target); most in any 1 s window: "
            f"{most_in_window(grants, 1.0)} (bound {args.rate + args.burst:g})"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        mode, url, stream = sys.argv[2:5]
        worker = loopwise_worker if mode == "loopwise" else hand_written_worker
        asyncio.run(worker(url, stream))
    elif len(sys.argv) > 1 and sys.argv[1] == "--limiter":
        url, rate, burst, seconds = sys.argv[2:6]
        asyncio.run(limiter_process(url, float(rate), int(burst), float(seconds)))
    else:
        main()
