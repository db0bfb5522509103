"""LW008: a new `aiohttp.ClientSession` for every URL.

`fetch()` opens its own session, so `gather()` over ten URLs builds ten connection pools and
opens ten TCP connections, throwing keep-alive away. Against a real API this is ten TLS
handshakes and, under load, exhausted sockets. (A local server stands in for the API.)
"""

import asyncio

import aiohttp
from aiohttp import web


async def fetch(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def start_server() -> tuple[web.AppRunner, str, set[object]]:
    connections: set[object] = set()

    async def item(request: web.Request) -> web.Response:
        connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text=request.match_info["id"])

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", connections


async def main() -> None:
    runner, base, connections = await start_server()
    try:
        urls = [f"{base}/items/{n}" for n in range(10)]
        for _ in range(2):
            items = await asyncio.gather(*[fetch(url) for url in urls])
        print(f"{2 * len(items)} requests opened {len(connections)} connections")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
