"""Benchmark loopwise.http.Client against raw aiohttp and peers (run by hand, never in tests).

    python benchmarks/http_client.py [--rounds 5] [--requests 20000] [--slow-requests 2000]
                                     [--concurrency 64] [--quick] [--json [PATH]]

GETs of a small JSON document at a fixed concurrency (64 tasks, each sending its next request as
soon as the previous body is parsed), body read and parsed as JSON by every client:

* ``loopwise``: ``loopwise.http.Client`` with its default retry policy on, ``get_json()``, and
  aiohttp's default pool (``limit=100``, no per-host limit) so only the wrapper differs;
* ``aiohttp``: raw aiohttp, one shared ``ClientSession``, ``raise_for_status()`` + ``json()``;
* ``aiohttp-per-request``: a new ``ClientSession`` for every request (the anti-pattern);
* ``httpx``: ``httpx.AsyncClient`` with a pool of ``concurrency`` connections (installed, pinned,
  in a throwaway environment of the benchmarks' own, never the active one).

The server is a minimal keep-alive HTTP/1.1 responder on uvloop in its own process, so the client
process (one core) is the bottleneck. Every client runs in a fresh process, with the stdlib loop
and with uvloop; all configurations are interleaved round by round. The slow peers (session per
request, httpx) send ``--slow-requests`` requests instead of ``--requests`` so a round stays
short: throughput is reported in requests/s either way. The table shows, per client and loop, the
median requests/s and client CPU time per request (``time.process_time`` of the client process,
which a noisy machine disturbs far less than wall-clock time), each with the median of the
per-round ratios to raw aiohttp on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _harness

HERE = os.path.abspath(__file__)
BODY = json.dumps({"id": 42, "name": "loopwise", "tags": ["async", "http"], "ok": True}).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + BODY
)
CLIENTS = ("loopwise", "aiohttp", "aiohttp-per-request", "httpx")
SLOW = {"aiohttp-per-request", "httpx"}
LOOPS = ("asyncio", "uvloop")
_CPU: list[float] = []  # client CPU seconds of each _drive() call


# -- the server (a child process) -----------------------------------------------------------------


class _Responder(asyncio.Protocol):
    """Answers every complete GET request head with the canned JSON response (pipelining too)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


def serve() -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Responder, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
        server.close()

    uvloop.run(main())


# -- the clients (one child process per measurement) ----------------------------------------------


async def _drive(fetch: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await fetch()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    _CPU.append(time.process_time() - cpu)
    return time.perf_counter() - start


async def _measure(name: str, url: str, n: int, concurrency: int) -> float:
    warmup = 4 * concurrency
    if name == "loopwise":
        from loopwise.http import Client

        async with Client(limit=100, limit_per_host=0) as client:  # aiohttp's default pool

            async def fetch_loopwise() -> object:
                return await client.get_json(url)

            await _drive(fetch_loopwise, warmup, concurrency)
            return await _drive(fetch_loopwise, n, concurrency)

    if name == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

            async def fetch_aiohttp() -> object:
                async with session.get(url) as response:
                    response.raise_for_status()
                    return await response.json()

            await _drive(fetch_aiohttp, warmup, concurrency)
            return await _drive(fetch_aiohttp, n, concurrency)

    if name == "aiohttp-per-request":
        import aiohttp

        async def fetch_per_request() -> object:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                response.raise_for_status()
                return await response.json()

        await _drive(fetch_per_request, concurrency, concurrency)
        return await _drive(fetch_per_request, n, concurrency)

    if name == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits) as hx:

            async def fetch_httpx() -> object:
                response = await hx.get(url)
                response.raise_for_status()
                return response.json()

            await _drive(fetch_httpx, warmup, concurrency)
            return await _drive(fetch_httpx, n, concurrency)

    raise SystemExit(f"unknown client {name!r}")


def client_main(name: str, loop: str, url: str, n: int, concurrency: int) -> None:
    if loop == "uvloop":
        import uvloop

        elapsed = uvloop.run(_measure(name, url, n, concurrency))
    else:
        elapsed = asyncio.run(_measure(name, url, n, concurrency))
    print(json.dumps({"elapsed": elapsed, "cpu": _CPU[-1], "requests": n}))


# -- the orchestrator -----------------------------------------------------------------------------

PEERS = ("httpx==0.28.1",)


def _peers() -> _harness.PeerEnv:
    """httpx (and uvloop when the active environment lacks it) in a throwaway environment."""
    wanted = list(PEERS)
    if importlib.util.find_spec("uvloop") is None:
        wanted.append("uvloop==0.23.0")
    return _harness.peer_env(wanted)


def _run_client(
    peers: _harness.PeerEnv, name: str, loop: str, url: str, n: int, concurrency: int
) -> tuple[float, float]:
    """(requests per second of wall-clock time, client CPU microseconds per request)."""
    command = [sys.executable, HERE, "--client", name, "--loop", loop, "--url", url]
    command += ["--requests", str(n), "--concurrency", str(concurrency)]
    result = _harness.run_child(command, env=peers.child_env(), timeout=600)
    return result["requests"] / result["elapsed"], 1e6 * result["cpu"] / result["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--slow-requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="1 round, 2000/300 requests")
    _harness.add_json_options(parser)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        _harness.use_peers()
        serve()
        return
    if args.client:
        _harness.use_peers()
        client_main(args.client, args.loop, args.url, args.requests, args.concurrency)
        return
    if args.quick:
        args.rounds, args.requests, args.slow_requests = 1, 2_000, 300

    peers = _peers()
    options = {k: vars(args)[k] for k in ("rounds", "requests", "slow_requests", "concurrency")}
    results = _harness.Results("http_client", options, note=args.note, peers=peers)
    server = subprocess.Popen(
        [sys.executable, HERE, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=peers.child_env(),
    )
    configurations = [(name, loop) for loop in LOOPS for name in CLIENTS]
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/item"
        for r, (name, loop) in _harness.interleave(configurations, args.rounds):
            n = args.slow_requests if name in SLOW else args.requests
            rate, cpu = _run_client(peers, name, loop, url, n, args.concurrency)
            results.add(r, {"client": name, "loop": loop}, requests=n, rate=rate, cpu_us=cpu)
            print(
                f"round {r + 1}: {name:20} {loop:8} {rate:7.0f} req/s {cpu:6.0f} us CPU/req",
                file=sys.stderr,
            )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)

    def ratios(name: str, loop: str, measure: str, invert: bool) -> list[float]:
        mine = results.values(measure, client=name, loop=loop)
        base = results.values(measure, client="aiohttp", loop=loop)
        return [b / m if invert else m / b for m, b in zip(mine, base, strict=True)]

    rows = []
    for loop in LOOPS:
        for name in CLIENTS:
            rates = _harness.summarize(results.values("rate", client=name, loop=loop))
            costs = _harness.summarize(results.values("cpu_us", client=name, loop=loop))
            rows.append(
                {
                    "client": name,
                    "loop": loop,
                    "rate": rates.median,
                    "rate_low": rates.low,
                    "rate_high": rates.high,
                    "rate_ratio": _harness.summarize(ratios(name, loop, "rate", False)).median,
                    "cpu_us": costs.median,
                    "cpu_ratio": _harness.summarize(ratios(name, loop, "cpu_us", True)).median,
                }
            )
    results.summary["clients"] = rows

    print(
        f"\n{args.requests} GETs of a {len(BODY)}-byte JSON at concurrency {args.concurrency} "
        f"({args.slow_requests} for the slow peers), {args.rounds} interleaved rounds, "
        "server and client in separate processes. Ratios: medians of the per-round ratios to raw "
        "aiohttp on the same loop (higher is better).\n"
    )
    print("| client | loop | req/s | vs aiohttp | client CPU us/req | vs aiohttp (req per CPU s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['client']} | {row['loop']} | {row['rate']:,.0f} "
            f"| {row['rate_ratio']:.2f}x | {row['cpu_us']:,.0f} | {row['cpu_ratio']:.2f}x |"
        )
    speedup = statistics.median(results.values("rate", client="loopwise", loop="uvloop"))
    speedup /= statistics.median(results.values("rate", client="loopwise", loop="asyncio"))
    print(f"\nuvloop vs asyncio for loopwise (req/s): {speedup:.2f}x")
    results.write(args.json)


if __name__ == "__main__":
    main()
