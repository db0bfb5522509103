"""LW015: a response whose body is never read keeps its connection out of the pool.

`is_up()` awaits the response and looks only at its status. The 1 MB body is still on the
connection, so the connection is never handed back; with `limit_per_host=1` the next request
to the same host waits for a connection that never comes. (A local server stands in for the
remote one; the stall is cut short after 0.5 s to show it.)
"""

import asyncio

import aiohttp
from aiohttp import web

BODY = b"x" * 1_000_000


async def is_up(session: aiohttp.ClientSession, url: str) -> bool:
    resp = await session.get(url)
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
            try:
                print("second check:", await asyncio.wait_for(is_up(session, url), 0.5))
            except TimeoutError:
                print("second check: stalled, the only connection was never released")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
