"""Benchmark loopwise.http.server against bare aiohttp (run by hand, never in tests).

    python benchmarks/server.py [--rounds 3] [--http-rounds 6] [--duration 3] [--quick]
                                [--http-only] [--instructions] [--json [PATH]]

1. Requests/s of a small JSON endpoint: the ``create_app()`` stack (request id, access log,
   problem+json, timeout, in one middleware) vs a bare ``web.Application``, vs the same app with
   one no-op middleware (what aiohttp itself costs once there is any middleware) and vs the four
   middlewares stacked separately. The load comes from another process: ``wrk`` when installed
   (Debian package ``wrk``), else an aiohttp client process. Each round runs every server back to
   back (in rotating order); the ratios are the medians of the per-round ratios, which cancels
   most of the drift of a shared machine. ``--instructions`` also counts the server's CPU
   instructions per request under valgrind's callgrind: slow, but deterministic, where requests/s
   on a busy machine move by several per cent between runs.
2. WebSocket fan-out: deliveries/s (messages x clients) to 100 and 1000 clients, ``WebSocketHub``
   vs the naive ``for ws in clients: await ws.send_str(msg)`` loop, and the same with one extra
   client that never reads (the naive loop stalls: it is given 5 s and we report how far it got).
Each server runs in its own process, with and without uvloop; configurations are interleaved
round by round (the order rotating each round) and the table shows medians and ratios; ``--json``
keeps every round's results. Every load loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import _harness
from aiohttp import WSMsgType, web

HERE = os.path.abspath(__file__)
PAYLOAD = {"hello": "world", "items": list(range(10))}
STALL_LIMIT = 5.0  # seconds a stalled naive broadcast is given


# -- servers (child processes) ------------------------------------------------------------------


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def _serve_forever(app: web.Application, loop: str) -> None:
    async def main() -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        runner.run(main())


async def _json(request: web.Request) -> web.Response:
    return web.json_response(PAYLOAD)


async def _cpu(request: web.Request) -> web.Response:
    return web.Response(text=repr(time.process_time()))


def _get(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        body: bytes = r.read()
    return body.decode()


@web.middleware
async def _noop_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """What aiohttp itself costs once an app has any middleware at all."""
    response: web.StreamResponse = await handler(request)
    return response


def http_server(stack: str, loop: str) -> None:
    if stack == "loopwise":
        from loopwise.http.server import create_app

        app = create_app()
    elif stack == "separate":
        from loopwise.http.server import (
            access_log_middleware,
            problem_middleware,
            request_id_middleware,
            timeout_middleware,
        )

        separate = [
            request_id_middleware(),
            access_log_middleware(),
            problem_middleware(),
            timeout_middleware(30.0),
        ]
        app = web.Application(middlewares=separate)
    elif stack == "request_id":
        from loopwise.http.server import request_id_middleware

        app = web.Application(middlewares=[request_id_middleware()])
    elif stack == "noop":
        app = web.Application(middlewares=[_noop_middleware])
    else:
        app = web.Application()
    app.router.add_get("/json", _json)
    app.router.add_get("/cpu", _cpu)
    _serve_forever(app, loop)


def fanout_server(mode: str, loop: str) -> None:
    """``/ws`` for the clients; ``/run?n=..&clients=..`` broadcasts ``n`` messages and answers
    when every one of ``clients`` fast clients has said it got them all (or after a bound)."""
    done = {"count": 0}
    all_done = asyncio.Event()
    expected = {"clients": 0}
    message = {"text": ""}

    def client_done() -> None:
        done["count"] += 1
        if done["count"] >= expected["clients"]:
            all_done.set()

    if mode == "hub":
        from loopwise.http.server import HubConnection, WebSocketHub

        async def on_message(conn: HubConnection, data: str | bytes) -> None:
            client_done()

        hub = WebSocketHub(on_message=on_message, heartbeat=None, queue_size=256)
        clients_handler = hub.handler

        async def broadcast(n: int) -> int:
            for _ in range(n):
                await hub.broadcast(message["text"])
            return n

    else:
        sockets: list[web.WebSocketResponse] = []

        async def clients_handler(request: web.Request) -> web.StreamResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            sockets.append(ws)
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    client_done()
            return ws

        async def broadcast(n: int) -> int:
            published = 0
            try:
                async with asyncio.timeout(STALL_LIMIT):
                    for _ in range(n):
                        for ws in list(sockets):
                            await ws.send_str(message["text"])
                        published += 1
            except TimeoutError:
                pass
            return published

    async def run(request: web.Request) -> web.Response:
        n, clients = int(request.query["n"]), int(request.query["clients"])
        message["text"] = json.dumps({"kind": "tick", "text": "x" * int(request.query["size"])})
        done["count"], expected["clients"] = 0, clients
        all_done.clear()
        start, cpu = time.perf_counter(), time.process_time()
        published = await broadcast(n)
        try:
            async with asyncio.timeout(STALL_LIMIT + 30):
                if published == n:
                    await all_done.wait()
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        return web.json_response({"published": published, "elapsed": elapsed, "cpu": cpu})

    app = web.Application()
    app.router.add_get("/ws", clients_handler)
    app.router.add_get("/run", run)
    _serve_forever(app, loop)


# -- load generators (child processes) ----------------------------------------------------------


def http_load(port: int, concurrency: int, duration: float) -> None:
    """An aiohttp client process: ``concurrency`` workers for ``duration`` seconds."""
    import aiohttp

    async def main() -> None:
        url = f"http://127.0.0.1:{port}/json"
        count = 0
        deadline = time.perf_counter() + duration
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def worker() -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    async with session.get(url) as r:
                        await r.read()
                    count += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            print(count, count / (time.perf_counter() - start), flush=True)

    with asyncio.Runner(loop_factory=_loop_factory("uvloop")) as runner:
        runner.run(main())


def fanout_clients(port: int, clients: int, messages: int, stalled: int, size: int) -> None:
    """``clients`` WebSocket clients that each say "done" after ``messages`` messages, plus
    ``stalled`` raw sockets that complete the handshake and never read again."""
    import aiohttp

    async def main() -> None:
        url = f"http://127.0.0.1:{port}"
        stuck = [_stalled_socket(port) for _ in range(stalled)]
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            sockets = await asyncio.gather(
                *(session.ws_connect(f"{url}/ws", autoping=True) for _ in range(clients))
            )

            async def consume(ws: aiohttp.ClientWebSocketResponse) -> None:
                got = 0
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        got += 1
                        if got == messages:
                            await ws.send_str("done")

            readers = [asyncio.create_task(consume(ws)) for ws in sockets]
            await asyncio.sleep(0.2)
            query = f"n={messages}&clients={clients}&size={size}"
            async with session.get(f"{url}/run?{query}") as r:
                print(json.dumps(await r.json()), flush=True)
            for ws in sockets:
                await ws.close()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        for sock in stuck:
            sock.close()

    with asyncio.Runner(loop_factory=_loop_factory("uvloop")) as runner:
        runner.run(main())


def _stalled_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock


# -- the orchestrator ---------------------------------------------------------------------------


class Server:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, HERE, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_REQUEST = b"GET /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def counted_load(port: int, connections: int, requests: int) -> None:
    """Exactly ``requests`` keep-alive GET /json, spread over ``connections`` (a client process).

    A bare protocol rather than aiohttp's client, so that it costs the server's machine little.
    """

    class Client(asyncio.Protocol):
        def __init__(self, left: int, done: asyncio.Future[None]) -> None:
            self.left, self.done, self.buffer = left, done, b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            transport.write(_REQUEST)

        def data_received(self, data: bytes) -> None:
            assert self.transport is not None
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                length = re.search(rb"Content-Length: (\d+)", self.buffer[:end])
                assert length, self.buffer[:end]
                size = end + 4 + int(length.group(1))
                if len(self.buffer) < size:
                    return
                self.buffer = self.buffer[size:]
                self.left -= 1
                if self.left == 0:
                    self.transport.close()
                    self.done.set_result(None)
                    return
                self.transport.write(_REQUEST)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for i in range(connections):
            share = requests // connections + (i < requests % connections)
            if share:
                done = loop.create_future()
                client = functools.partial(Client, share, done)
                await loop.create_connection(client, "127.0.0.1", port)
                waits.append(done)
        async with asyncio.timeout(600):
            await asyncio.gather(*waits)

    asyncio.run(main())


def measure_instructions(stack: str, loop: str, requests: int) -> float:
    """Server CPU instructions per request, counted by valgrind's callgrind (deterministic).

    The server runs under callgrind; its counters are zeroed after a warm-up and dumped after
    ``requests`` requests from a client process, so start-up is not counted.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        callgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        process = subprocess.Popen(
            [*callgrind, sys.executable, HERE, "_http-server", stack, loop],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            load = [sys.executable, HERE, "_counted-load", str(port), "16"]
            subprocess.run([*load, "400"], check=True)  # warm-up
            subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, **_QUIET)
            subprocess.run([*load, str(requests)], check=True)
            subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, **_QUIET)
            with open(f"{out}.1") as dump:
                summary = re.search(r"^summary: (\d+)$", dump.read(), re.MULTILINE)
            assert summary, "no summary line in the callgrind dump"
            return int(summary.group(1)) / requests
        finally:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=60)


_QUIET: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def measure_http(stack: str, loop: str, duration: float) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request)."""
    server = Server("_http-server", stack, loop)
    try:
        url = f"http://127.0.0.1:{server.port}/json"
        wrk = shutil.which("wrk")
        subprocess.run(  # warm-up
            [sys.executable, HERE, "_http-load", str(server.port), "8", "0.3"],
            check=True,
            capture_output=True,
        )
        cpu = float(_get(server.port, "/cpu"))
        if wrk:
            out = subprocess.run(
                [wrk, "-t1", "-c64", f"-d{max(1, round(duration))}s", url],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
            count = re.search(r"(\d+) requests in", out)
            assert rate and count, out
            requests, per_second = int(count.group(1)), float(rate.group(1))
        else:
            out = subprocess.run(
                [sys.executable, HERE, "_http-load", str(server.port), "64", str(duration)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            requests_text, rate_text = out.split()
            requests, per_second = int(requests_text), float(rate_text)
        cpu = float(_get(server.port, "/cpu")) - cpu
        return per_second, cpu / requests * 1e6
    finally:
        server.stop()


def measure_fanout(
    mode: str, loop: str, clients: int, messages: int, stalled: int = 0, size: int = 64
) -> Any:
    server = Server("_fanout-server", mode, loop)
    try:
        args = [str(server.port), str(clients), str(messages), str(stalled), str(size)]
        result = _harness.run_child([sys.executable, HERE, "_fanout-clients", *args], timeout=120)
        deliveries = result["published"] * clients
        result["rate"] = deliveries / result["elapsed"]
        result["cpu_us"] = result["cpu"] / deliveries * 1e6
        return result
    finally:
        server.stop()


def instruction_rows(
    results: _harness.Results, stacks: list[str], loops: list[str], requests: int
) -> list[dict[str, Any]]:
    """Server instructions per request of every stack, and its ratio to bare aiohttp."""
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("\n--instructions needs valgrind (Debian package valgrind): skipped")
        return []
    rows = []
    for loop in loops:
        counts = {}
        for stack in stacks:
            counts[stack] = measure_instructions(stack, loop, requests)
            results.add(
                0,
                {"part": "instructions", "stack": stack, "loop": loop},
                instructions=counts[stack],
                requests=requests,
            )
        for stack in stacks:
            rows.append(
                {
                    "loop": loop,
                    "stack": stack,
                    "instructions": counts[stack],
                    "ratio": counts[stack] / counts["aiohttp"],
                    "vs_noop": counts["noop"] / counts[stack] if "noop" in counts else None,
                }
            )
    return rows


def print_instructions(rows: list[dict[str, Any]], names: dict[str, str], requests: int) -> None:
    if not rows:
        return
    print(f"\nJSON endpoint: server instructions per request (callgrind, {requests} requests)")
    print("| loop | server | instructions/request | ratio | bare/this (req/s if CPU-bound) |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['loop']} | {names[row['stack']]} | {row['instructions']:,.0f} "
            f"| {row['ratio']:.3f}x | {1 / row['ratio']:.3f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fan-out rounds")
    parser.add_argument("--http-rounds", type=int, default=6, help="JSON endpoint rounds")
    parser.add_argument("--http-only", action="store_true", help="skip the fan-out part")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per HTTP run")
    parser.add_argument("--quick", action="store_true", help="1 round, short runs")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count server instructions per request under valgrind (deterministic)",
    )
    parser.add_argument(
        "--instruction-requests",
        type=int,
        default=4000,
        help="requests counted under valgrind after the warm-up (default 4000; --quick: 500)",
    )
    _harness.add_json_options(parser)
    args = parser.parse_args()
    rounds, duration = (1, 1.0) if args.quick else (args.rounds, args.duration)
    http_rounds = 1 if args.quick else args.http_rounds
    instruction_requests = 500 if args.quick else args.instruction_requests
    loops = ["asyncio", "uvloop"]
    load = "wrk -t1 -c64" if shutil.which("wrk") else "aiohttp client, 64 workers"
    print(
        f"python {sys.version.split()[0]}, {_harness.cores()} cores, {rounds} rounds, load: {load}"
    )
    options = {
        "rounds": rounds,
        "http_rounds": http_rounds,
        "duration": duration,
        "http_only": args.http_only,
        "instructions": args.instructions,
        "instruction_requests": instruction_requests if args.instructions else 0,
        "quick": args.quick,
        "load": load,
    }
    results = _harness.Results("server", options, note=args.note)

    stacks = ["aiohttp", "noop", "loopwise", "separate"]
    configurations = [(stack, loop) for loop in loops for stack in stacks]
    for r, (stack, loop) in _harness.interleave(configurations, http_rounds):
        rate, cpu = measure_http(stack, loop, duration)
        results.add(r, {"part": "http", "stack": stack, "loop": loop}, rate=rate, cpu_us=cpu)
        if (stack, loop) == configurations[r % len(configurations) - 1]:
            print(f"  http round {r + 1}/{http_rounds} done", flush=True)

    names = {
        "aiohttp": "bare aiohttp",
        "noop": "aiohttp + one no-op middleware",
        "loopwise": "create_app() stack",
        "separate": "the four middlewares, separately",
        "request_id": "request_id_middleware() alone",
    }
    if http_rounds:
        rows: list[dict[str, Any]] = []
        for loop in loops:
            bare_rates = results.values("rate", part="http", stack="aiohttp", loop=loop)
            bare_cpus = results.values("cpu_us", part="http", stack="aiohttp", loop=loop)
            for stack in stacks:
                rates = results.values("rate", part="http", stack=stack, loop=loop)
                cpus = results.values("cpu_us", part="http", stack=stack, loop=loop)
                rate_ratios = [f / b for f, b in zip(rates, bare_rates, strict=True)]
                cpu_ratios = [f / b for f, b in zip(cpus, bare_cpus, strict=True)]
                rows.append(
                    {
                        "loop": loop,
                        "stack": stack,
                        "rate": _harness.summarize(rates).median,
                        "cpu_us": _harness.summarize(cpus).median,
                        "rate_ratio": _harness.summarize(rate_ratios).median,
                        "rate_ratio_low": _harness.summarize(rate_ratios).low,
                        "rate_ratio_high": _harness.summarize(rate_ratios).high,
                        "cpu_ratio": _harness.summarize(cpu_ratios).median,
                    }
                )
        results.summary["http"] = rows
        print("\nJSON endpoint: requests/s and server CPU per request (medians; a ratio is the")
        print("median of the per-round ratios to bare aiohttp)")
        print("| loop | server | req/s | CPU/request | req/s ratio | CPU ratio |")
        print("|---|---|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row['loop']} | {names[row['stack']]} | {row['rate']:,.0f}/s "
                f"| {row['cpu_us']:.1f} µs | {row['rate_ratio']:.2f}x | {row['cpu_ratio']:.2f}x |"
            )
    if args.instructions:
        # request_id alone: the least a middleware doing this job can cost
        rows = instruction_rows(results, [*stacks, "request_id"], loops, instruction_requests)
        results.summary["instructions"] = rows
        print_instructions(rows, names, instruction_requests)
    if not args.http_only:
        fanout(results, loops, rounds, args.quick)
    results.write(args.json)


def fanout(results: _harness.Results, loops: list[str], rounds: int, quick: bool) -> None:
    cases = [(100, 1000 if not quick else 200), (1000, 100 if not quick else 30)]
    configurations: list[tuple[str, str, int, int, int]] = [
        (mode, loop, clients, messages, 0)
        for loop in loops
        for clients, messages in cases
        for mode in ("naive", "hub")
    ]
    # 100 fast clients + 1 stalled, 300 x 32 KiB, uvloop
    configurations += [(mode, "uvloop", 100, 300, 1) for mode in ("naive", "hub")]
    for r, case in _harness.interleave(configurations, rounds):
        mode, loop, clients, messages, stuck = case
        size = 32 * 1024 if stuck else 64
        result = measure_fanout(mode, loop, clients, messages, stalled=stuck, size=size)
        configuration = {"part": "fanout", "mode": mode, "loop": loop, "clients": clients}
        configuration |= {"messages": messages, "stalled": stuck}
        results.add(
            r,
            configuration,
            rate=result["rate"],
            cpu_us=result["cpu_us"],
            published=result["published"],
            elapsed=result["elapsed"],
        )
        if case == configurations[r % len(configurations) - 1]:
            print(f"  fan-out round {r + 1}/{rounds} done", flush=True)

    def median(measure: str, **where: Any) -> float:
        return _harness.summarize(results.values(measure, part="fanout", **where)).median

    rows = []
    for loop in loops:
        for clients, messages in cases:
            where = {"loop": loop, "clients": clients, "stalled": 0}
            naive, hub = median("rate", mode="naive", **where), median("rate", mode="hub", **where)
            naive_cpu = median("cpu_us", mode="naive", **where)
            hub_cpu = median("cpu_us", mode="hub", **where)
            rows.append(
                {
                    "loop": loop,
                    "clients": clients,
                    "messages": messages,
                    "naive_rate": naive,
                    "naive_cpu_us": naive_cpu,
                    "hub_rate": hub,
                    "hub_cpu_us": hub_cpu,
                    "rate_ratio": hub / naive,
                    "cpu_ratio": hub_cpu / naive_cpu,
                }
            )
    where = {"loop": "uvloop", "clients": 100, "stalled": 1}
    stalled = {
        "messages": 300,
        "naive_published": median("published", mode="naive", **where),
        "hub_published": median("published", mode="hub", **where),
        "hub_rate": median("rate", mode="hub", **where),
        "stall_limit": STALL_LIMIT,
    }
    results.summary["fanout"] = rows
    results.summary["stalled"] = [stalled]
    print("\nWebSocket fan-out: deliveries/s (messages x clients) and server CPU per delivery")
    print("| loop | clients x msgs | naive loop | WebSocketHub | rate ratio | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['loop']} | {row['clients']} x {row['messages']} "
            f"| {row['naive_rate']:,.0f}/s, {row['naive_cpu_us']:.1f} µs "
            f"| {row['hub_rate']:,.0f}/s, {row['hub_cpu_us']:.1f} µs | {row['rate_ratio']:.2f}x "
            f"| {row['cpu_ratio']:.2f}x |"
        )
    print("\nOne extra client that never reads (100 fast clients, 300 x 32 KiB messages, uvloop)")
    print(
        f"| naive loop | published {stalled['naive_published']:.0f} of 300 in "
        f"{STALL_LIMIT:g} s, then stuck |"
    )
    print(
        f"| WebSocketHub | published {stalled['hub_published']:.0f} of 300, "
        f"{stalled['hub_rate']:,.0f} deliveries/s |"
    )


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "_http-server":
        http_server(sys.argv[2], sys.argv[3])
    elif command == "_fanout-server":
        fanout_server(sys.argv[2], sys.argv[3])
    elif command == "_counted-load":
        counted_load(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif command == "_http-load":
        http_load(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif command == "_fanout-clients":
        fanout_clients(*(int(a) for a in sys.argv[2:7]))
    else:
        main()
