"""Benchmark loopwise.patterns against hand-written asyncio and the peers.

Run by hand, never in tests::

    python benchmarks/patterns.py            # the defaults: about 4 minutes on 2 cores
    python benchmarks/patterns.py --sizes 200000,1000000 --rounds 3 --slow-rounds 1 \
        --slow-max 200000 --workload trivial,sleep0 --limiter-n 300

Part 1 maps a trivial coroutine over N items at concurrency 100 with: loopwise.amap (ordered
and unordered), a hand-written asyncio.Queue worker pool, asyncio.gather + Semaphore,
aiometer.amap and aiostream's map(task_limit=100). Every configuration runs in its own
subprocess (so peak RSS is its own), in interleaved rounds, the order rotating each round
(gather, aiometer and aiostream, which take 4-40 µs per item, get fewer rounds, and
aiometer/aiostream run only up to ``--slow-max`` items); the table shows medians of CPU
microseconds per item, the ratio to the Queue pool, and peak RSS above the process's baseline
(measured after imports, before the run). ``--workload sleep0`` adds a coroutine that yields
once (``await asyncio.sleep(0)``), closer to real I/O-bound work.

Part 2 drives 300 acquisitions through rate limiters at rate=100/s, burst=1 (and loopwise with
burst=2), on an idle loop and on a loop kept busy by a task that blocks it for 3 ms at a time,
and reports the most acquisitions seen in any 1 s window and the achieved rate.

Peers (aiometer, aiostream, aiolimiter), pinned, are installed on first use into a throwaway
environment, never the active one; ``--json`` keeps every round's results.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _harness

PEERS = ("aiometer==1.0.0", "aiostream==0.8.1", "aiolimiter==1.3.0")
CONCURRENCY = 100


# -- the workloads ------------------------------------------------------------------------------


async def trivial(x: int) -> int:
    return x


async def sleep0(x: int) -> int:
    await asyncio.sleep(0)
    return x


WORKLOADS: dict[str, Callable[[int], Awaitable[int]]] = {"trivial": trivial, "sleep0": sleep0}


# -- the contenders (each returns the sum of the results, to check them) ---------------------------


async def run_queue_pool(fn: Callable[[int], Awaitable[int]], n: int, c: int) -> int:
    """The hand-written pattern: bounded in/out queues, a producer, c workers, sentinels."""
    inbox: asyncio.Queue[int | None] = asyncio.Queue(c)
    outbox: asyncio.Queue[int | None] = asyncio.Queue(c)

    async def produce() -> None:
        for i in range(n):
            await inbox.put(i)
        for _ in range(c):
            await inbox.put(None)

    async def work() -> None:
        while (item := await inbox.get()) is not None:
            await outbox.put(await fn(item))
        await outbox.put(None)

    tasks = [asyncio.create_task(produce())] + [asyncio.create_task(work()) for _ in range(c)]
    total = finished = 0
    while finished < c:
        result = await outbox.get()
        if result is None:
            finished += 1
        else:
            total += result
    await asyncio.gather(*tasks)
    return total


async def run_gather(fn: Callable[[int], Awaitable[int]], n: int, c: int) -> int:
    semaphore = asyncio.Semaphore(c)

    async def guarded(x: int) -> int:
        async with semaphore:
            return await fn(x)

    return sum(await asyncio.gather(*(guarded(x) for x in range(n))))


def amap_runner(ordered: bool) -> Callable[..., Awaitable[int]]:
    async def run(fn: Callable[[int], Awaitable[int]], n: int, c: int) -> int:
        import loopwise

        total = 0
        async for r in loopwise.amap(fn, range(n), concurrency=c, ordered=ordered):
            total += r
        return total

    return run


async def run_aiometer(fn: Callable[[int], Awaitable[int]], n: int, c: int) -> int:
    import aiometer

    total = 0
    async with aiometer.amap(fn, range(n), max_at_once=c) as results:
        async for r in results:
            total += r
    return total


async def run_aiostream(fn: Callable[[int], Awaitable[int]], n: int, c: int) -> int:
    from aiostream import pipe, stream

    total = 0
    xs = stream.iterate(range(n)) | pipe.map(fn, task_limit=c)
    async with xs.stream() as streamer:
        async for r in streamer:
            total += r
    return total


CONTENDERS: dict[str, tuple[Callable[..., Awaitable[int]], str | None]] = {
    # name: (runner, module to import before measuring the baseline)
    "queue pool": (run_queue_pool, None),
    "loopwise.amap unordered": (amap_runner(False), "loopwise"),
    "loopwise.amap ordered": (amap_runner(True), "loopwise"),
    "gather+Semaphore": (run_gather, None),
    "aiometer.amap": (run_aiometer, "aiometer"),
    "aiostream map": (run_aiostream, "aiostream"),
}
SLOW = {"aiometer.amap", "aiostream map"}


def max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(name: str, n: int, workload: str) -> None:
    runner, module = CONTENDERS[name]
    if module:
        importlib.import_module(module)
    fn = WORKLOADS[workload]

    async def main() -> dict[str, Any]:
        await runner(fn, 1000, CONCURRENCY)  # warm up (imports inside runners, caches)
        baseline = max_rss_kb()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        total = await runner(fn, n, CONCURRENCY)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        assert total == n * (n - 1) // 2, f"{name}: wrong results"
        return {"cpu": cpu, "wall": wall, "peak_kb": max_rss_kb(), "baseline_kb": baseline}

    print(json.dumps(asyncio.run(main())))


def run_child(peers: _harness.PeerEnv, *args: str) -> dict[str, Any]:
    command = [sys.executable, __file__, *args]
    return _harness.run_child(command, env=peers.child_env())


def map_benchmark(
    peers: _harness.PeerEnv,
    results: _harness.Results,
    sizes: list[int],
    rounds: int,
    slow_rounds: int,
    slow_max: int,
    workloads: list[str],
) -> None:
    """Fast contenders run `rounds` times, the slow ones (gather, aiometer, aiostream: 4-40 µs
    per item) `slow_rounds` times, aiometer and aiostream only up to N = slow_max, and the
    non-trivial workloads only for the fast contenders."""
    plan: dict[tuple[str, int, str], int] = {}
    for workload in workloads:
        for n in sizes:
            for name in CONTENDERS:
                slow = name in SLOW or name == "gather+Semaphore"
                if (name in SLOW and n > slow_max) or (slow and workload != "trivial"):
                    continue
                plan[(workload, n, name)] = slow_rounds if slow else rounds
    started = time.perf_counter()
    total_rounds = max(rounds, slow_rounds)
    for r, key in _harness.interleave(list(plan), total_rounds):
        if r >= plan[key]:
            continue
        workload, n, name = key
        sample = run_child(peers, "--child", name, str(n), workload)
        configuration = {"workload": workload, "n": n, "contender": name}
        results.add(
            r,
            configuration,
            cpu=sample["cpu"],
            wall=sample["wall"],
            peak_kb=sample["peak_kb"],
            baseline_kb=sample["baseline_kb"],
        )
        if key == list(plan)[r % len(plan) - 1]:
            print(f"  round {r + 1} done ({time.perf_counter() - started:.0f} s)", flush=True)

    rows = []
    for workload in workloads:
        for n in sizes:
            base = None
            for name in CONTENDERS:
                if (workload, n, name) not in plan:
                    continue
                where = {"workload": workload, "n": n, "contender": name}
                cpu = _harness.summarize([c / n * 1e6 for c in results.values("cpu", **where)])
                peaks = results.values("peak_kb", **where)
                bases = results.values("baseline_kb", **where)
                rss = _harness.summarize(
                    [(p - b) / 1024 for p, b in zip(peaks, bases, strict=True)]
                )
                if name == "queue pool":
                    base = cpu.median
                rows.append(
                    {
                        **where,
                        "cpu_us": cpu.median,
                        "cpu_us_low": cpu.low,
                        "cpu_us_high": cpu.high,
                        "vs_queue_pool": cpu.median / base if base else None,
                        "rss_mb": rss.median,
                        "rounds": cpu.count,
                    }
                )
    results.summary["map"] = rows
    print()
    print("| workload | N | contender | CPU µs/item | x Queue pool | peak RSS above baseline |")
    print("|---|---:|---|---:|---:|---:|")
    for row in rows:
        ratio = f"{row['vs_queue_pool']:.2f}x" if row["vs_queue_pool"] else "-"
        print(
            f"| {row['workload']} | {row['n']:,} | {row['contender']} | {row['cpu_us']:.2f} "
            f"| {ratio} | {row['rss_mb']:.1f} MB |"
        )
    baseline_mb = statistics.median(results.values("baseline_kb")) / 1024
    print(
        f"\n(baseline RSS after imports: ~{baseline_mb:.0f} MB; medians of {rounds} rounds, "
        f"{slow_rounds} for gather/aiometer/aiostream)"
    )


# -- rate limiters ------------------------------------------------------------------------------


async def busy_loop(stop: asyncio.Event) -> None:
    """Keep the loop busy: block it 3 ms at a time, like CPU-heavy callbacks do."""
    while not stop.is_set():
        end = time.perf_counter() + 0.003
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


async def limiter_run(kind: str, n: int, loaded: bool) -> list[float]:
    stamps: list[float] = []
    stop = asyncio.Event()
    hog = asyncio.create_task(busy_loop(stop)) if loaded else None
    loop = asyncio.get_running_loop()

    if kind.startswith("loopwise.RateLimiter"):
        import loopwise

        burst = 2 if "burst=2" in kind else 1
        limiter = loopwise.RateLimiter(100, burst=burst)

        async def one() -> None:
            async with limiter:
                stamps.append(loop.time())

        await asyncio.gather(*(one() for _ in range(n)))
    elif kind == "aiolimiter":
        from aiolimiter import AsyncLimiter

        limiter2 = AsyncLimiter(100, 1)

        async def one2() -> None:
            async with limiter2:
                stamps.append(loop.time())

        await asyncio.gather(*(one2() for _ in range(n)))
    elif kind == "loopwise.amap(rate=100)":
        import loopwise

        async def mark(x: int) -> int:
            stamps.append(loop.time())
            return x

        async for _ in loopwise.amap(mark, range(n), concurrency=100, rate=100):
            pass
    elif kind == "aiometer(max_per_second=100)":
        import aiometer

        async def mark2(x: int) -> int:
            stamps.append(loop.time())
            return x

        async with aiometer.amap(mark2, range(n), max_at_once=100, max_per_second=100) as rs:
            async for _ in rs:
                pass
    stop.set()
    if hog is not None:
        await hog
    return stamps


def window_max(stamps: list[float], window: float = 1.0) -> int:
    stamps = sorted(stamps)
    best = 0
    j = 0
    for i, start in enumerate(stamps):
        while j < len(stamps) and stamps[j] <= start + window + 1e-9:
            j += 1
        best = max(best, j - i)
    return best


LIMITERS = (
    "loopwise.RateLimiter(burst=1)",
    "loopwise.RateLimiter(burst=2)",
    "aiolimiter",
    "loopwise.amap(rate=100)",
    "aiometer(max_per_second=100)",
)


def limiter_child(kind: str, n: int, loaded: bool) -> None:
    stamps = asyncio.run(limiter_run(kind, n, loaded))
    print(json.dumps({"stamps": stamps}))


def limiter_benchmark(peers: _harness.PeerEnv, results: _harness.Results, n: int) -> None:
    """Each limiter once, in its own process, on an idle and on a busy loop."""
    rows = []
    print()
    print(f"| limiter (rate=100/s, {n} acquisitions) | loop | most in any 1 s | achieved rate |")
    print("|---|---|---:|---:|")
    for loaded in (False, True):
        for kind in LIMITERS:
            sample = run_child(peers, "--limiter", kind, str(n), "busy" if loaded else "idle")
            stamps = [float(x) for x in sample["stamps"]]
            span = max(stamps) - min(stamps)
            rate = (len(stamps) - 1) / span if span else float("inf")
            loop_kind = "busy (3 ms blocks)" if loaded else "idle"
            most = window_max(stamps)
            configuration = {"limiter": kind, "loop": "busy" if loaded else "idle"}
            results.add(0, configuration, most_in_1s=most, rate=rate)
            rows.append({**configuration, "most_in_1s": most, "rate": rate})
            print(
                f"| {kind} | {loop_kind} | {most} | {rate:.1f}/s ({rate / 100:.0%} of target) |",
                flush=True,
            )
    results.summary["limiters"] = rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slow-rounds", type=int, default=1, help="rounds for gather, aiometer and aiostream"
    )
    parser.add_argument(
        "--slow-max",
        type=int,
        default=200_000,
        help="largest N for aiometer and aiostream (they take 25-40 µs per item)",
    )
    parser.add_argument("--workload", default="trivial,sleep0")
    parser.add_argument("--limiter-n", type=int, default=300)
    parser.add_argument("--skip-map", action="store_true")
    parser.add_argument("--skip-limiter", action="store_true")
    _harness.add_json_options(parser)
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", nargs=3, metavar=("NAME", "N", "WORKLOAD"), help=hidden)
    parser.add_argument("--limiter", nargs=3, metavar=("KIND", "N", "LOOP"), help=hidden)
    args = parser.parse_args()
    if args.child:
        _harness.use_peers()
        name, n, workload = args.child
        child(name, int(n), workload)
        return
    if args.limiter:
        _harness.use_peers()
        kind, n, loop = args.limiter
        limiter_child(kind, int(n), loop == "busy")
        return
    peers = _harness.peer_env(PEERS)
    options = {
        "sizes": [int(s) for s in args.sizes.split(",")],
        "rounds": args.rounds,
        "slow_rounds": args.slow_rounds,
        "slow_max": args.slow_max,
        "workloads": args.workload.split(","),
        "limiter_n": args.limiter_n,
        "concurrency": CONCURRENCY,
    }
    results = _harness.Results("patterns", options, note=args.note, peers=peers)
    print(f"python {sys.version.split()[0]}, {_harness.cores()} CPUs, concurrency {CONCURRENCY}")
    if not args.skip_map:
        map_benchmark(
            peers,
            results,
            options["sizes"],
            args.rounds,
            args.slow_rounds,
            args.slow_max,
            options["workloads"],
        )
    if not args.skip_limiter:
        limiter_benchmark(peers, results, args.limiter_n)
    results.write(args.json)


if __name__ == "__main__":
    main()
