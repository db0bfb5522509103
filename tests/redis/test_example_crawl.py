"""examples/distributed_crawl end to end, at a small scale: a real redis-server, the example's
aiohttp site on port 0 and crawler processes; the test checks the site's own fetch counts
against what the crawlers recorded."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RUN = Path(__file__).resolve().parents[2] / "examples" / "distributed_crawl" / "run.py"


async def run_example(*options: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(RUN), *options, "--timeout", "90",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert out, err.decode(errors="replace")[-2000:]
    report: dict[str, Any] = json.loads(out)
    report["returncode"] = process.returncode
    return report


def counts(rows: list[list[Any]]) -> Counter[tuple[int, str]]:
    return Counter({(page, crawler): n for page, crawler, n in rows})


async def test_every_page_is_fetched_and_recorded_exactly_once(redis_server: object) -> None:
    report = await run_example("--workers", "3", "--pages", "60")
    hits, records = counts(report["hits"]), counts(report["records"])
    assert {page for page, _ in hits} == set(range(60))  # none lost, nothing off the site
    assert hits == records  # each fetch recorded by the crawler that made it
    assert sorted(Counter(page for page, _ in hits.elements()).values()) == [1] * 60
    assert report["dead_letters"] == 0 and report["exit_codes"] == [0, 0, 0]
    assert report["ok"] and report["returncode"] == 0


async def test_a_sigkilled_crawler_loses_no_page(redis_server: object) -> None:
    options = ["--workers", "3", "--pages", "80", "--kill-one-after", "10", "--claim-idle", "1"]
    report = await run_example(*options)
    assert report["killed"] == "crawler-0" and report["exit_codes"][0] == -9
    hits, records = counts(report["hits"]), counts(report["records"])
    assert {page for page, _ in records} == set(range(80))  # every page recorded: none lost
    for (page, crawler), fetched in hits.items():
        if crawler == "crawler-0":  # killed: it may have fetched pages it never recorded
            assert records[page, crawler] <= fetched
        else:  # exactly one fetch per URL it processed
            assert records[page, crawler] == fetched, (page, crawler)
    assert report["dead_letters"] == 0 and report["exit_codes"][1:] == [0, 0]
    assert report["ok"] and report["returncode"] == 0
