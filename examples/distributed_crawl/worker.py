"""One crawler process: takes URLs from the frontier stream, fetches each page with
loopwise.http.Client, adds the links it has not seen to the frontier and a record of the page
to the results stream, then acknowledges the URL. Any number of them share the work.

    python worker.py REDIS_URL NAME [--claim-idle SECONDS]

It exits when the frontier is empty and no URL is pending anywhere (every crawler finished).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import redis.asyncio

from loopwise.http import Client
from loopwise.patterns import Pipeline
from loopwise.redis import TEXT, WorkQueue

FRONTIER = "crawl:frontier"  # URLs to fetch (TEXT)
SEEN = "crawl:seen"  # every URL ever added to the frontier
RESULTS = "crawl:pages"  # one record per page fetched and processed (JSON)

HREF = re.compile(r'href="([^"]+)"')


async def crawl(redis_url: str, name: str, claim_idle: float) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    frontier: WorkQueue[str] = WorkQueue(client, FRONTIER, codec=TEXT)
    results: WorkQueue[dict[str, Any]] = WorkQueue(client, RESULTS)

    async def fetch(url: str) -> tuple[str, str]:
        return url, await http.get_text(url)

    async def follow(page: tuple[str, str]) -> dict[str, Any]:
        url, body = page
        host = urlsplit(url).netloc
        links = [urljoin(url, href) for href in HREF.findall(body)]
        on_site = [link for link in links if urlsplit(link).netloc == host]
        # Checked and added in one atomic step: a crawler killed here loses no URL.
        added = await frontier.add_new(on_site, seen=SEEN)
        return {
            "url": url,
            "crawler": name,
            "links": len(on_site),
            "new": sum(1 for a in added if a),
        }

    try:
        async with (
            Client(timeout=10, headers={"X-Crawler": name}) as http,
            frontier.consume(prefetch=16, claim_idle=claim_idle, stop_when_empty=True) as worker,
        ):
            pipe = Pipeline(worker).stage(worker.step(fetch), workers=8)
            pipe = pipe.stage(worker.step(follow), workers=2).stage(worker.step(results.add))
            await pipe.stage(worker.ack).run()
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("redis_url")
    parser.add_argument("name")
    parser.add_argument("--claim-idle", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(crawl(args.redis_url, args.name, args.claim_idle))


if __name__ == "__main__":
    main()
