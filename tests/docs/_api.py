"""The local HTTP API that the docs' client blocks run against (``<!-- client: ORIGIN -->``).

It answers what the examples ask of ``https://api.example.com/v1/``: users to read and create,
a CSV export to stream and a file to download. It runs on 127.0.0.1, port 0, in its
own thread and event loop, for the whole test session.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

FILE_BYTES = b"loopwise docs\n" * 4096


async def _get_user(request: web.Request) -> web.Response:
    user = int(request.match_info["user"])
    return web.json_response({"id": user, "name": "Ada"})


async def _create_user(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({**body, "id": 43}, status=201)


async def _export(request: web.Request) -> web.Response:
    return web.Response(text="id,name\n42,Ada\n", content_type="text/csv")


async def _file(request: web.Request) -> web.Response:
    return web.Response(body=FILE_BYTES, content_type="application/octet-stream")


def api_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/v1/users/{user:\\d+}", _get_user)
    app.router.add_post("/v1/users", _create_user)
    app.router.add_get("/v1/exports/{name}", _export)
    app.router.add_get("/v1/files/{name}", _file)
    return app


@contextmanager
def serving_api() -> Iterator[str]:
    """Serve :func:`api_app` in a background thread; yields its origin (``http://127.0.0.1:N``)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(api_app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    host, port = runner.addresses[0][:2]
    thread = threading.Thread(target=loop.run_forever, name="docs-api", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
