"""LW015 fixed: `async with` releases the connection when the block ends, body read or not."""

import asyncio

import aiohttp
from aiohttp import web

BODY = b"x" * 1_000_000


async def is_up(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url) as resp:
        return resp.status == 200


async def start_server() -> tuple[web.AppRunner, str]:
    async def report(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_get("/report", report)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/report"


async def main() -> None:
    runner, url = await start_server()
    connector = aiohttp.TCPConnector(limit_per_host=1)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            print("first check:", await is_up(session, url))
            print("second check:", await asyncio.wait_for(is_up(session, url), 5))
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
