"""Benchmark loopwise.http.server against bare aiohttp (run by hand, never in tests).

    python benchmarks/server.py [--rounds 3] [--duration 3] [--quick]

1. Requests/s of a small JSON endpoint: the full ``create_app()`` middleware stack (request id,
   access log, problem+json, timeout) vs a bare ``web.Application``. The load comes from another
   process: ``wrk`` when installed (Debian package ``wrk``), else an aiohttp client process.
2. WebSocket fan-out: deliveries/s (messages x clients) to 100 and 1000 clients, ``WebSocketHub``
   vs the naive ``for ws in clients: await ws.send_str(msg)`` loop, and the same with one extra
   client that never reads (the naive loop stalls: it is given 5 s and we report how far it got).
Each server runs in its own process, with and without uvloop; configurations are interleaved
round by round and the table shows medians and ratios. Every load loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

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


def http_server(stack: str, loop: str) -> None:
    if stack == "loopwise":
        from loopwise.http.server import create_app

        app = create_app()
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
        out = subprocess.run(
            [sys.executable, HERE, "_fanout-clients", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        deliveries = result["published"] * clients
        result["rate"] = deliveries / result["elapsed"]
        result["cpu_us"] = result["cpu"] / deliveries * 1e6
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per HTTP run")
    parser.add_argument("--quick", action="store_true", help="1 round, short runs")
    args = parser.parse_args()
    rounds, duration = (1, 1.0) if args.quick else (args.rounds, args.duration)
    loops = ["asyncio", "uvloop"]
    load = "wrk -t1 -c64" if shutil.which("wrk") else "aiohttp client, 64 workers"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {rounds} rounds, load: {load}")

    http: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(rounds):
        for loop in loops:
            for stack in ("aiohttp", "loopwise"):
                http.setdefault((stack, loop), []).append(measure_http(stack, loop, duration))
        print(f"  http round {r + 1}/{rounds} done", flush=True)

    print("\nJSON endpoint: requests/s and server CPU per request (medians)")
    print("| loop | bare aiohttp | create_app (4 middlewares) | req/s ratio | CPU/request |")
    print("|---|---:|---:|---:|---:|")
    for loop in loops:
        bare = statistics.median(x[0] for x in http["aiohttp", loop])
        full = statistics.median(x[0] for x in http["loopwise", loop])
        bare_cpu = statistics.median(x[1] for x in http["aiohttp", loop])
        full_cpu = statistics.median(x[1] for x in http["loopwise", loop])
        print(
            f"| {loop} | {bare:,.0f}/s, {bare_cpu:.0f} µs | {full:,.0f}/s, {full_cpu:.0f} µs "
            f"| {full / bare:.2f}x | {full_cpu / bare_cpu:.2f}x |"
        )

    cases = [(100, 1000 if not args.quick else 200), (1000, 100 if not args.quick else 30)]
    fan: dict[tuple[str, str, int, int], list[Any]] = {}
    for r in range(rounds):
        for loop in loops:
            for clients, messages in cases:
                for mode in ("naive", "hub"):
                    key = (mode, loop, clients, 0)
                    fan.setdefault(key, []).append(measure_fanout(mode, loop, clients, messages, 0))
        for mode in ("naive", "hub"):  # 100 fast clients + 1 stalled, 300 x 32 KiB, uvloop
            key = (mode, "uvloop", 100, 1)
            result = measure_fanout(mode, "uvloop", 100, 300, stalled=1, size=32 * 1024)
            fan.setdefault(key, []).append(result)
        print(f"  fan-out round {r + 1}/{rounds} done", flush=True)

    print("\nWebSocket fan-out: deliveries/s (messages x clients) and server CPU per delivery")
    print("| loop | clients x msgs | naive loop | WebSocketHub | rate ratio | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for loop in loops:
        for clients, messages in cases:
            naive_runs, hub_runs = fan["naive", loop, clients, 0], fan["hub", loop, clients, 0]
            naive = statistics.median(x["rate"] for x in naive_runs)
            hub = statistics.median(x["rate"] for x in hub_runs)
            naive_cpu = statistics.median(x["cpu_us"] for x in naive_runs)
            hub_cpu = statistics.median(x["cpu_us"] for x in hub_runs)
            print(
                f"| {loop} | {clients} x {messages} | {naive:,.0f}/s, {naive_cpu:.1f} µs "
                f"| {hub:,.0f}/s, {hub_cpu:.1f} µs | {hub / naive:.2f}x "
                f"| {hub_cpu / naive_cpu:.2f}x |"
            )
    naive_runs, hub_runs = fan["naive", "uvloop", 100, 1], fan["hub", "uvloop", 100, 1]
    naive_pub = statistics.median(x["published"] for x in naive_runs)
    hub_pub = statistics.median(x["published"] for x in hub_runs)
    hub_rate = statistics.median(x["rate"] for x in hub_runs)
    print("\nOne extra client that never reads (100 fast clients, 300 x 32 KiB messages, uvloop)")
    print(f"| naive loop | published {naive_pub:.0f} of 300 in {STALL_LIMIT:g} s, then stuck |")
    print(f"| WebSocketHub | published {hub_pub:.0f} of 300, {hub_rate:,.0f} deliveries/s |")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "_http-server":
        http_server(sys.argv[2], sys.argv[3])
    elif command == "_fanout-server":
        fanout_server(sys.argv[2], sys.argv[3])
    elif command == "_http-load":
        http_load(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif command == "_fanout-clients":
        fanout_clients(*(int(a) for a in sys.argv[2:7]))
    else:
        main()
