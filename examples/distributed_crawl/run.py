"""Start Redis, the test site and N crawler processes, crawl the site, and check the run.

    python run.py                       # 4 crawlers, 200 pages
    python run.py --workers 2 --pages 50 --kill-one-after 10 --claim-idle 1

Needs ``redis-server`` on the PATH (Debian's packages: ``apt-get install redis-server``); it is
started on a free port of 127.0.0.1 with a temporary directory and stopped at the end.
``--kill-one-after N`` SIGKILLs the first crawler once the site has served N pages: the others
take over its URLs after ``--claim-idle`` seconds.

Prints one JSON report and exits 0 when every page was fetched and recorded (none lost) and
every surviving crawler fetched each page exactly once per URL it processed; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio
from aiohttp import web

from loopwise.redis import TEXT, WorkQueue

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from testsite import Site  # noqa: E402  (this directory's testsite.py)
from worker import FRONTIER, RESULTS, SEEN  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def start_redis(directory: str) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", directory, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.asyncio.Redis.from_url(url)
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    await client.ping()
                    return process, url
                except redis.exceptions.ConnectionError:
                    await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def crawl(args: argparse.Namespace) -> dict[str, Any]:
    site = Site(args.pages)
    runner = web.AppRunner(site.app())
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as directory:
        redis_process, url = await start_redis(directory)
        client = redis.asyncio.Redis.from_url(url)
        crawlers: list[asyncio.subprocess.Process] = []
        try:
            frontier: WorkQueue[str] = WorkQueue(client, FRONTIER, codec=TEXT)
            await frontier.add_new([f"http://127.0.0.1:{port}/page/0"], seen=SEEN)
            for n in range(args.workers):
                crawlers.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        str(HERE / "worker.py"),
                        url,
                        f"crawler-{n}",
                        "--claim-idle",
                        str(args.claim_idle),
                    )
                )
            killed = None
            async with asyncio.timeout(args.timeout):
                if args.kill_one_after is not None:
                    while sum(site.hits.values()) < args.kill_one_after:
                        if crawlers[0].returncode is not None:
                            break
                        await asyncio.sleep(0.01)
                    else:
                        crawlers[0].send_signal(signal.SIGKILL)
                        killed = "crawler-0"
                codes = [await c.wait() for c in crawlers]
            records = await client.xrange(RESULTS) or []
            return report(site, records, codes, killed, await frontier.dead_letters())
        finally:
            for c in crawlers:
                if c.returncode is None:
                    c.kill()
                    await c.wait()
            await client.aclose()
            redis_process.terminate()
            await redis_process.wait()
            await runner.cleanup()


def report(
    site: Site, records: list[Any], codes: list[int], killed: str | None, dead: list[Any]
) -> dict[str, Any]:
    recorded: Counter[tuple[int, str]] = Counter()
    for _, fields in records:
        record = json.loads(fields[b"d"])
        recorded[int(record["url"].rsplit("/", 1)[1]), record["crawler"]] += 1
    pages = range(site.pages)
    lost = [p for p in pages if not any(recorded[p, c] for _, c in recorded)]
    mismatched = [
        f"page {p} by {c}: fetched {site.hits[p, c]}, recorded {recorded[p, c]}"
        for (p, c) in set(site.hits) | set(recorded)
        if c != killed and site.hits[p, c] != recorded[p, c]
    ]
    fetches = Counter(p for (p, _), n in site.hits.items() for _ in range(n))
    return {
        "ok": not lost
        and not mismatched
        and not dead
        and all(code == 0 for n, code in enumerate(codes) if f"crawler-{n}" != killed),
        "pages": site.pages,
        "pages_recorded": sum(1 for p in pages if p not in lost),
        "lost": lost,
        "mismatched": mismatched,
        "dead_letters": len(dead),
        "fetches": sum(fetches.values()),
        "pages_fetched_twice_or_more": sum(1 for n in fetches.values() if n > 1),
        "killed": killed,
        "exit_codes": codes,
        "hits": [[p, c, n] for (p, c), n in sorted(site.hits.items())],
        "records": [[p, c, n] for (p, c), n in sorted(recorded.items())],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--claim-idle", type=float, default=5.0)
    parser.add_argument("--kill-one-after", type=int, default=None, metavar="PAGES")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole crawl")
    args = parser.parse_args()
    if args.workers < 1 or args.pages < 1:
        parser.error("--workers and --pages must be at least 1")
    result = asyncio.run(crawl(args))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
