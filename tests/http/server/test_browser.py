"""The demo in a real browser (Debian's chromium driven by playwright, headless, offline):
chat between two pages, and an SSE feed that loses nothing across a dropped connection."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from loopwise.http.server._cli import _free_port
from loopwise.http.server._demo import FEED_KEY, make_demo_app
from tests.http._serving import running

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


ENABLE = (
    "to run it, install the browser extra (pip install -e '.[browser]') and Debian's chromium "
    "(apt-get install chromium); .ci/run installs both"
)


def _missing(what: str) -> None:
    if os.environ.get("CI"):  # CI installs the browser: a missing one is a failure there
        pytest.fail(f"{what} is missing: install it in .ci/run")
    pytest.skip(f"{what} is not installed: {ENABLE}")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("the playwright package")
    executable = _chromium()
    if executable is None:
        _missing("chromium")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def text_of(page: Any, selector: str) -> str:
    value: str = await page.locator(selector).inner_text()
    return value


async def test_demo_in_a_browser(browser: Any, tmp_path: Path) -> None:
    port = _free_port("127.0.0.1")
    origins = [f"http://127.0.0.1:{port}"]
    app = make_demo_app(tick_interval=0.05, retry_ms=200, allowed_origins=origins)
    async with running(app, port=port) as url:
        context = await browser.new_context(viewport={"width": 1200, "height": 720})
        alice, bob = await context.new_page(), await context.new_page()
        for page in (alice, bob):
            await page.goto(url)
            await page.locator("#ws-status", has_text="connected").wait_for(timeout=10_000)
            await page.locator("#sse-status", has_text="live").wait_for(timeout=10_000)

        # Chat: a message sent from one page shows on the other.
        await alice.fill("#chat-name", "alice")
        await alice.fill("#chat-text", "hello from alice")
        await alice.press("#chat-text", "Enter")
        await bob.locator("#chat-log li", has_text="hello from alice").wait_for(timeout=10_000)
        await bob.fill("#chat-name", "bob")
        await bob.fill("#chat-text", "hi alice, bob here")
        await bob.click("#chat-form button")
        await alice.locator("#chat-log li", has_text="bob here").wait_for(timeout=10_000)

        # Feed: drop every SSE connection; the browser reconnects with Last-Event-ID and the
        # server replays what it missed (the drop note is published while nobody is connected).
        await alice.wait_for_function(
            "Number(document.getElementById('feed-count').textContent) >= 5"
        )
        feed = app[FEED_KEY]
        resumed_before = feed.statistics().resumed
        await alice.click("#drop-btn")
        await alice.locator("#feed li.note", has_text="dropped").wait_for(timeout=10_000)
        await alice.wait_for_function(
            "Number(document.getElementById('feed-reconnects').textContent) >= 1"
        )
        count_after_drop = int(await text_of(alice, "#feed-count"))
        await alice.wait_for_function(
            f"Number(document.getElementById('feed-count').textContent) >= {count_after_drop + 5}"
        )
        for page in (alice, bob):
            assert await text_of(page, "#feed-missing") == "0"
            assert await text_of(page, "#feed-duplicates") == "0"
            assert await text_of(page, "#feed-gaps") == "0"
            await page.locator("#feed li.note", has_text="dropped").wait_for(timeout=10_000)
        stats = feed.statistics()
        assert stats.resumed >= resumed_before + 2  # both pages came back with Last-Event-ID
        assert stats.replayed >= 2  # at least the drop note, for each page

        await alice.wait_for_function(  # the footer polls /api/stats: wait for the replay
            "/ [1-9][0-9]* replayed/.test(document.getElementById('stats').textContent)"
        )
        screenshot = tmp_path / "demo.png"
        await alice.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        await context.close()


async def test_demo_fits_a_phone_and_has_a_favicon(browser: Any, tmp_path: Path) -> None:
    screenshot = tmp_path / "phone.png"
    port = _free_port("127.0.0.1")
    app = make_demo_app(tick_interval=0.2, allowed_origins=[f"http://127.0.0.1:{port}"])
    async with running(app, port=port) as url:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        page = await context.new_page()
        icons: list[int] = []
        page.on("response", lambda r: icons.append(r.status) if "favicon" in r.url else None)
        await page.goto(url)
        await page.locator("#ws-status", has_text="connected").wait_for(timeout=10_000)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow} px wider than a 420 px screen"
        for selector in ("#chat-form button", "#chat-text", "#drop-btn"):
            box = await page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420, selector
        await page.fill("#chat-text", "from a phone")
        await page.click("#chat-form button")
        await page.locator("#chat-log li", has_text="from a phone").wait_for(timeout=10_000)
        icon = await page.evaluate("document.querySelector('link[rel=icon]').href")
        assert icon == f"{url}/favicon.ico"
        await page.screenshot(path=str(screenshot), full_page=True)
        await context.close()
        async with aiohttp.ClientSession() as session, session.get(f"{url}/favicon.ico") as r:
            assert r.status == 200 and r.content_type == "image/svg+xml"
            assert b"<svg" in await r.read()
