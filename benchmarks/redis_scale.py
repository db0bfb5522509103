"""Benchmark loopwise.redis against a local redis-server (Debian's package), never in tests::

    python benchmarks/redis_scale.py --rounds 3 --json      # a few minutes on 2 busy cores
    python benchmarks/redis_scale.py --skip-kill --skip-backplane --items 50000

Four parts, each can be skipped (``--skip-throughput``, ``--skip-kill``, ``--skip-limiter``,
``--skip-backplane``):

* **Throughput.** ``--items`` items through a work queue with a trivial stage (a Pipeline
  reading a StreamWorker, prefetch 64: 16 workers running the step, then an acknowledging
  stage) in 1, 2 and 4 worker processes; in one process also the single-step shape (one stage
  of 16 workers running ``worker.handler``: the step and the acknowledgement) and the batch
  shape (``worker.batches()``, ``step_batch``, ``ack_many``); and through a
  hand-written redis-py loop in one process (XREADGROUP of 64 entries, then one XACK of the
  batch): items per second from the first worker ready (after its imports) to the last item
  settled, medians of ``--rounds`` interleaved rounds (the order rotates); the ratio to the
  hand-written loop is the median of each round's own ratio.
* **A worker SIGKILLed.** ``--kill-items`` items (100,000 by default), 4 worker processes whose
  stage records each item in a Redis hash (HINCRBY: the side effect), one of them SIGKILLed
  when a random fraction (10 % to 90 %) of the items is recorded; the others take over its
  items after ``claim_idle`` (2 s). Reports items lost (never recorded, not dead-lettered:
  must be 0) and duplicates (recorded more than once), per round.
* **Shared limiter.** ``--limiter-procs`` processes sharing a SharedRateLimiter at ``--rate``
  per second (burst ``--burst``) for ``--seconds``, 4 tasks each: grants per second against the
  target and the most grants in any 1 s window of Redis' clock (the bound is rate + burst).
* **Backplane.** 2 server processes (a WebSocketHub with a Backplane each); ``--clients``
  WebSocket clients, half on each; one publisher (this process, its own Backplane) broadcasts
  ``--messages`` messages; messages per second from the first broadcast until every client
  received every message, and deliveries per second (messages x clients).

``--json`` writes every round to benchmarks/results/redis_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import _harness
import aiohttp
import redis.asyncio
from aiohttp import web

from loopwise.http.server import WebSocketHub
from loopwise.patterns import Pipeline
from loopwise.redis import Backplane, SharedRateLimiter, WorkQueue

BATCH = 64
STREAM = "bench:jobs"
SEEN = "bench:seen"


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
    command += ["--appendonly", "no", "--dir", directory, "--maxclients", "4000"]
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


# -- workers (child processes) ---------------------------------------------------------------


def report_span(started: float, last: float) -> None:
    """Print when the worker was ready and when it settled its last item (wall clock): neither
    the interpreter's start-up nor the final wait that finds the stream empty is measured."""
    print(f"{started:.6f} {last:.6f}", flush=True)


async def loopwise_worker(url: str, stream: str, shape: str) -> None:
    """The shapes the docs show, unwrapped: the time of the last item is noted by the step
    (its acknowledgement goes out with the next round trip, a fraction of a millisecond
    later), not by a wrapper around ``worker.ack`` that would add a coroutine per item."""
    started = time.time()
    client = redis.asyncio.Redis.from_url(url)
    queue: WorkQueue[int] = WorkQueue(client, stream)
    last = started

    async def trivial(x: int) -> int:
        nonlocal last
        last = time.time()
        return x

    async def recorded(x: int) -> int:
        nonlocal last
        await client.hincrby(SEEN, str(x), 1)
        last = time.time()
        return x

    async def trivial_batch(values: list[int]) -> list[int]:
        nonlocal last
        last = time.time()
        return values

    record = shape == "recording"
    claim_idle = 2.0 if record else 30.0
    async with queue.consume(prefetch=BATCH, claim_idle=claim_idle, stop_when_empty=True) as w:
        if shape == "handler":
            await Pipeline(w).stage(w.handler(trivial), workers=16).run()
        elif shape == "batches":
            pipe = Pipeline(w.batches()).stage(w.step_batch(trivial_batch))
            await pipe.stage(w.ack_many).run()
        else:
            pipe = Pipeline(w).stage(w.step(recorded if record else trivial), workers=16)
            await pipe.stage(w.ack).run()
    report_span(started, last)
    await client.aclose()


async def hand_written_worker(url: str, stream: str) -> None:
    started = last = time.time()
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
        last = time.time()
    report_span(started, last)
    await client.aclose()


async def fill(url: str, items: int) -> None:
    client = redis.asyncio.Redis.from_url(url)
    await client.flushall()
    queue: WorkQueue[int] = WorkQueue(client, STREAM)
    async with queue.consume():  # the group exists before any worker reads
        pass
    for start in range(0, items, 1000):
        await queue.add_many(range(start, min(items, start + 1000)))
    await client.aclose()


WORKER_PYTHON = [sys.executable]  # --worker-python: another interpreter (a venv with hiredis)


def spawn_workers(url: str, mode: str, processes: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [WORKER_PYTHON[0], __file__, "--worker", mode, url, STREAM],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]


# -- throughput ------------------------------------------------------------------------------


def throughput(url: str, results: _harness.Results, items: int, rounds: int) -> None:
    configs = [
        ("hand", 1),
        ("loopwise", 1),
        ("handler", 1),
        ("batches", 1),
        ("loopwise", 2),
        ("loopwise", 4),
    ]
    for round_no, (mode, processes) in _harness.interleave(configs, rounds):
        asyncio.run(fill(url, items))
        spans = []
        for child in spawn_workers(url, mode, processes):
            out, _ = child.communicate(timeout=900)
            if child.returncode != 0:
                sys.exit(f"a {mode} worker failed")
            spans.append([float(x) for x in out.split()])
        # from the first worker ready to read to the last acknowledgement
        rate = items / (max(end for _, end in spans) - min(start for start, _ in spans))
        config = {"part": "throughput", "worker": mode, "processes": processes}
        results.add(round_no, config, items_per_s=rate)
    hand = results.values("items_per_s", part="throughput", worker="hand")
    rows = []
    print(
        f"\n| trivial stage, {items:,} items | processes | items/s (median) | range "
        "| vs hand (median of the rounds' ratios) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode, processes in configs:
        where = {"part": "throughput", "worker": mode, "processes": processes}
        measured = results.values("items_per_s", **where)
        s = _harness.summarize(measured)
        ratio = _harness.paired_ratio(measured, hand)
        label = {
            "hand": "hand-written XREADGROUP/XACK",
            "loopwise": "Pipeline: step stage + ack stage",
            "handler": "Pipeline: one handler() stage",
            "batches": "Pipeline over batches(): step_batch + ack_many",
        }[mode]
        print(
            f"| {label} | {processes} | {s.median:,.0f} | {s.low:,.0f}-{s.high:,.0f} "
            f"| {ratio:.2f}x |"
        )
        rows.append({**where, "median": s.median, "low": s.low, "high": s.high, "vs_hand": ratio})
    results.summary["throughput"] = rows


# -- a worker SIGKILLed ----------------------------------------------------------------------


async def kill_round(url: str, items: int, rng: random.Random) -> dict[str, Any]:
    await fill(url, items)
    client = redis.asyncio.Redis.from_url(url)
    children = spawn_workers(url, "recording", 4)
    fraction = rng.uniform(0.1, 0.9)
    victim = rng.randrange(4)
    started = time.perf_counter()
    try:
        while await client.hlen(SEEN) < fraction * items:
            if any(c.poll() is not None for c in children):
                break
            await asyncio.sleep(0.02)
        children[victim].send_signal(signal.SIGKILL)
        recorded_at_kill = await client.hlen(SEEN)
        for n, child in enumerate(children):
            await asyncio.to_thread(child.wait, 900)
            if n != victim and child.returncode != 0:
                sys.exit("a surviving worker failed")
        elapsed = time.perf_counter() - started
        counts = [int(v) for v in (await client.hgetall(SEEN)).values()]
        dead = await client.xlen(f"{STREAM}:dead")
        pending = (await client.xpending(STREAM, "workers"))["pending"]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        await client.aclose()
    return {
        "killed_at": recorded_at_kill / items,
        "lost": items - len(counts) - dead,
        "duplicates": sum(c - 1 for c in counts),
        "dead_letters": dead,
        "still_pending": pending,
        "seconds": elapsed,
    }


def kill_test(url: str, results: _harness.Results, items: int, rounds: int) -> None:
    rng = random.Random()
    rows = []
    print(f"\n| {items:,} items, 4 workers, one SIGKILLed | killed at | lost | duplicates | s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for round_no in range(rounds):
        r = asyncio.run(kill_round(url, items, rng))
        results.add(round_no, {"part": "kill"}, **r)
        rows.append({"round": round_no, **r})
        print(
            f"| round {round_no + 1} | {r['killed_at']:.0%} | {r['lost']} | {r['duplicates']} "
            f"| {r['seconds']:.1f} |"
        )
    results.summary["kill"] = rows


# -- shared limiter --------------------------------------------------------------------------


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


def limiter_test(url: str, results: _harness.Results, args: argparse.Namespace) -> None:
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
    most = most_in_window(grants, 1.0)
    row = {"grants": len(grants), "span": span, "per_s": achieved, "most_in_1s": most}
    results.add(0, {"part": "limiter"}, **row)
    results.summary["limiter"] = [{**row, "rate": args.rate, "burst": args.burst}]
    print(
        f"\nlimiter: {args.limiter_procs} processes x 4 tasks, rate {args.rate:g}/s burst "
        f"{args.burst}: {len(grants)} grants in {span:.2f} s = {achieved:.1f}/s "
        f"({achieved / args.rate:.1%} of the target); most in any 1 s window: "
        f"{most} (bound {args.rate + args.burst:g})"
    )


# -- backplane -------------------------------------------------------------------------------


async def backplane_server(url: str) -> None:
    """A server process: a hub on /ws connected to the backplane; prints its port, serves
    until its standard input closes."""
    client = redis.asyncio.Redis.from_url(url)
    hub = WebSocketHub(queue_size=4096, heartbeat=None)
    app = web.Application()
    app.router.add_get("/ws", hub.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with Backplane(client, "bench", hub=hub):
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await hub.close()
    await runner.cleanup()
    await client.aclose()


async def backplane_rounds(
    url: str, ports: list[int], clients: int, messages: int, rounds: int
) -> list[dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [
            await backplane_round(session, url, ports, clients, messages) for _ in range(rounds)
        ]


async def backplane_round(
    session: aiohttp.ClientSession, url: str, ports: list[int], clients: int, messages: int
) -> dict[str, Any]:
    received = [0] * clients
    all_in = asyncio.Event()
    complete = [0]
    connected = asyncio.Event()
    opened = [0]

    async def listen(n: int, session: aiohttp.ClientSession, port: int) -> None:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws", heartbeat=None) as ws:
            opened[0] += 1
            if opened[0] == clients:
                connected.set()
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                received[n] += 1
                if received[n] == messages:
                    complete[0] += 1
                    if complete[0] == clients:
                        all_in.set()
                    break

    client = redis.asyncio.Redis.from_url(url)
    listeners = [
        asyncio.create_task(listen(n, session, ports[n % len(ports)])) for n in range(clients)
    ]
    try:
        async with asyncio.timeout(120):
            await connected.wait()
        await asyncio.sleep(0.5)  # every server registered its clients
        async with Backplane(client, "bench", hub=WebSocketHub()) as publisher:
            started = time.perf_counter()
            for i in range(messages):
                await publisher.broadcast(f"message {i}")
            sent = time.perf_counter() - started
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(120):
                    await all_in.wait()
            elapsed = time.perf_counter() - started
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    await client.aclose()
    short = sum(1 for r in received if r < messages)
    return {
        "messages_per_s": messages / elapsed,
        "deliveries_per_s": sum(received) / elapsed,
        "publish_per_s": messages / sent,
        "clients_short": short,
        "seconds": elapsed,
    }


def backplane_test(url: str, results: _harness.Results, args: argparse.Namespace) -> None:
    servers = [
        subprocess.Popen(
            [sys.executable, __file__, "--bp-server", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        ports = [int(s.stdout.readline()) for s in servers if s.stdout is not None]
        rows = asyncio.run(backplane_rounds(url, ports, args.clients, args.messages, args.rounds))
        for round_no, r in enumerate(rows):
            results.add(round_no, {"part": "backplane", "clients": args.clients}, **r)
        s = _harness.summarize([r["messages_per_s"] for r in rows])
        d = _harness.summarize([r["deliveries_per_s"] for r in rows])
        results.summary["backplane"] = [
            {
                "clients": args.clients,
                "servers": 2,
                "messages": args.messages,
                "messages_per_s": s.median,
                "deliveries_per_s": d.median,
                "clients_short": max(r["clients_short"] for r in rows),
            }
        ]
        print(
            f"\nbackplane: 1 publisher, {args.clients} WebSocket clients over 2 server processes, "
            f"{args.messages} messages: {s.median:,.0f} messages/s ({s.low:,.0f}-{s.high:,.0f}), "
            f"{d.median:,.0f} deliveries/s, medians of {len(rows)}; clients short of a message "
            f"at the end: {max(r['clients_short'] for r in rows)}"
        )
    finally:
        for server in servers:
            if server.stdin is not None:
                server.stdin.close()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--kill-items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--limiter-procs", type=int, default=4)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument(
        "--worker-python",
        help="the interpreter the throughput and kill workers run on (default: this one), "
        "e.g. a venv's with hiredis installed, to measure redis-py parsing in C",
    )
    for part in ("throughput", "kill", "limiter", "backplane"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    _harness.add_json_options(parser)
    args = parser.parse_args()
    if args.worker_python:
        WORKER_PYTHON[0] = args.worker_python
        # The results say which interpreter ran the workers by what it parsed with (below),
        # not by where it lives on this machine.
        sys.argv = ["WORKER_PYTHON" if a == args.worker_python else a for a in sys.argv]
        args.worker_python = "WORKER_PYTHON"
    hiredis = subprocess.run(
        [WORKER_PYTHON[0], "-c", "import redis.utils; print(redis.utils.HIREDIS_AVAILABLE)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    options = {k: v for k, v in vars(args).items() if k not in ("json", "note") and v is not None}
    results = _harness.Results("redis_scale", options, note=args.note)
    directory = tempfile.mkdtemp(prefix="loopwise-redis-bench-")
    server, url = start_redis(directory)
    try:
        print(f"{_harness.cores()} CPUs, load average {results.machine['load_average']}")
        print(f"workers parse replies with hiredis: {hiredis}")
        results.options["workers_use_hiredis"] = hiredis == "True"
        if not args.skip_throughput:
            throughput(url, results, args.items, args.rounds)
        if not args.skip_kill:
            kill_test(url, results, args.kill_items, args.rounds)
        if not args.skip_limiter:
            limiter_test(url, results, args)
        if not args.skip_backplane:
            backplane_test(url, results, args)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
    results.write(args.json)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        mode, url, stream = sys.argv[2:5]
        if mode == "hand":
            asyncio.run(hand_written_worker(url, stream))
        else:
            asyncio.run(loopwise_worker(url, stream, mode))
    elif len(sys.argv) > 1 and sys.argv[1] == "--limiter":
        url, rate, burst, seconds = sys.argv[2:6]
        asyncio.run(limiter_process(url, float(rate), int(burst), float(seconds)))
    elif len(sys.argv) > 1 and sys.argv[1] == "--bp-server":
        asyncio.run(backplane_server(sys.argv[2]))
    else:
        main()
