"""``loopwise top --web`` in a real browser (Debian's chromium driven by playwright, headless):
the page shows the tasks of a real watched program and keeps updating, on a phone-width screen."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loopwise.doctor._top_web import make_top_app

from .monitor_helpers import runtime_env, start, stop

__all__ = ["runtime_env"]  # the fixture, used by name

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

TICKING = """\
import asyncio


async def tick(n):
    await asyncio.sleep(3600)  # <- tick


async def main():
    for n in range(100_000):
        asyncio.create_task(tick(n), name=f"tick-{n}")
        if n == 0:
            print("ready", flush=True)
        await asyncio.sleep(0.3)


asyncio.run(main())
"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the playwright package is missing: install it in .ci/run")
        pytest.skip("the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: install it in .ci/run")
        pytest.skip("chromium is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_top_page_shows_tasks_of_a_watched_program_and_updates(
    browser: Any, runtime_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_env["XDG_RUNTIME_DIR"])
    watched = start(TICKING, runtime_env, tmp_path)
    runner = web.AppRunner(make_top_app(watched.pid, "t0ken", interval=0.2))
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/t0ken/")
        await page.locator("#status", has_text="live").wait_for(timeout=15_000)
        await page.locator("#tasks td", has_text="tick-0 tick()").wait_for(timeout=15_000)
        await page.locator("#coroutines td", has_text="tick").first.wait_for(timeout=15_000)
        assert f"prog.py:{watched.line('tick')}" in await page.locator("#tasks").inner_text()
        seen = int(await page.locator("#updates").inner_text())
        await page.wait_for_function(
            f"Number(document.getElementById('updates').textContent) >= {seen + 3}",
            timeout=15_000,
        )
        # The program made more tasks meanwhile: the page shows the count growing.
        first = await page.locator("#head").inner_text()
        await page.wait_for_function(
            f"document.getElementById('head').textContent !== {first!r}", timeout=15_000
        )
        wide = await page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390, "the page must fit a phone-width screen"
        screenshot = tmp_path / "top.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 5_000

        watched.process.kill()  # the program ends: the page says so
        watched.process.wait(timeout=30)
        await page.locator("#status.gone").wait_for(timeout=15_000)
        assert "no process" in await page.locator("#status").inner_text()
    finally:
        stop(watched)
        await runner.cleanup()


async def test_top_page_is_only_served_under_its_token(
    runtime_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_env["XDG_RUNTIME_DIR"])
    watched = start(TICKING, runtime_env, tmp_path)
    runner = web.AppRunner(make_top_app(watched.pid, "s3cret", interval=0.2))
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/events", "/x/", "/s3cret"):
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 404, path
            async with session.get(f"http://127.0.0.1:{port}/s3cret/") as response:
                assert response.status == 200
                assert f"loopwise top {watched.pid}" in await response.text()
    finally:
        stop(watched)
        await runner.cleanup()
