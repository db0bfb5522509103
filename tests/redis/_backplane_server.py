"""A server process for the backplane tests: a WebSocketHub on /ws and an EventChannel (history
of 5 events) on /events, connected through Redis; POST /broadcast and POST /publish send through
the backplane; GET /stats answers the backplane's statistics as JSON. Arguments: redis URL,
backplane name. Prints its URL when it serves."""

from __future__ import annotations

import dataclasses
import sys

import redis.asyncio
from aiohttp import web

from loopwise.http.server import EventChannel, WebSocketHub, create_app, run
from loopwise.redis import Backplane


def main(url: str, name: str) -> None:
    app = create_app()
    hub, channel = WebSocketHub(), EventChannel(history=5)
    client = redis.asyncio.Redis.from_url(url)
    backplane = Backplane(client, name, hub=hub, channel=channel)

    async def broadcast(request: web.Request) -> web.Response:
        await backplane.broadcast(await request.text(), room=request.query.get("room"))
        return web.Response(text="ok")

    async def publish(request: web.Request) -> web.Response:
        event_id = await backplane.publish(await request.text())
        return web.Response(text=str(event_id))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(backplane.statistics()))

    async def close_client(app: web.Application) -> None:
        await client.aclose()

    app.router.add_get("/ws", hub.handler)
    app.router.add_get("/events", channel.handler)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_post("/publish", publish)
    app.router.add_get("/stats", stats)
    app.cleanup_ctx.append(backplane.cleanup_ctx)
    app.on_cleanup.append(close_client)
    run(app, port=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
