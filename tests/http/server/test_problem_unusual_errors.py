"""Problem+json for every error, and an access log that records the status actually sent: a
handler that returns something that is not a response, a missing static file, a header value
that cannot be sent, a JSON body nested too deeply. Checked on the create_app() stack and on
the single-purpose middlewares."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopwise.http.server import (
    PROBLEM_CONTENT_TYPE,
    HTTPProblem,
    access_log_middleware,
    create_app,
    problem_middleware,
    read_json,
    request_id_middleware,
)
from tests.http._serving import running


async def returns_a_dict(request: web.Request) -> Any:
    return {"oops": "not a response"}


async def bad_header(request: web.Request) -> web.Response:
    return web.Response(text="hi", headers={"X-Echo": "a\r\nSet-Cookie: admin=1"})


async def echo_json(request: web.Request) -> web.Response:
    return web.json_response({"got": type(await read_json(request)).__name__})


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


STACKS = ["create_app", "separate"]


def make_app(stack: str, static_dir: Path) -> web.Application:
    middlewares: list[Middleware] | None = None
    if stack == "separate":
        middlewares = [request_id_middleware(), access_log_middleware(), problem_middleware()]
    app = create_app(middlewares=middlewares)
    app.router.add_get("/dict", returns_a_dict)
    app.router.add_get("/bad-header", bad_header)
    app.router.add_post("/json", echo_json)
    app.router.add_get("/hello", hello)
    app.router.add_static("/static", static_dir)
    return app


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "here.txt").write_text("static hello")
    return tmp_path


def logged_status(caplog: pytest.LogCaptureFixture, path: str) -> list[int]:
    return [
        getattr(r, "status", None)
        for r in caplog.records
        if r.name == "loopwise.http.access" and getattr(r, "path", None) == path
    ]


async def problem_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    text = await response.text()
    assert "Traceback" not in text and "oops" not in text
    body: dict[str, Any] = json.loads(text)
    assert body["status"] == response.status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


@pytest.mark.parametrize("stack", STACKS)
async def test_a_handler_returning_a_non_response_is_a_500_problem_even_in_debug(
    stack: str, static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)  # what PYTHONASYNCIODEBUG=1 does: aiohttp then adds tracebacks
    try:
        async with (
            running(make_app(stack, static_dir)) as url,
            aiohttp.ClientSession() as session,
            session.get(f"{url}/dict") as response,
        ):
            assert response.status == 500
            await problem_of(response)
    finally:
        loop.set_debug(False)
    assert logged_status(caplog, "/dict") == [500]
    errors = [r for r in caplog.records if r.name == "loopwise.http.server"]
    assert any("returned dict" in r.getMessage() for r in errors)


@pytest.mark.parametrize("stack", STACKS)
async def test_a_missing_static_file_is_a_404_problem_and_logged_404(
    stack: str, static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loopwise.http.access")
    async with running(make_app(stack, static_dir)) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/static/missing.txt") as response:
            assert response.status == 404
            await problem_of(response)
        async with session.get(f"{url}/static/here.txt") as response:
            assert (response.status, await response.text()) == (200, "static hello")
    assert logged_status(caplog, "/static/missing.txt") == [404]
    assert logged_status(caplog, "/static/here.txt") == [200]


@pytest.mark.parametrize("stack", STACKS)
async def test_a_header_that_cannot_be_sent_is_a_500_problem_and_logged_500(
    stack: str, static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(make_app(stack, static_dir)) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/bad-header") as response:
            assert response.status == 500
            assert "Set-Cookie" not in response.headers
            await problem_of(response)
        async with session.get(f"{url}/hello") as response:  # the connection still serves
            assert (response.status, await response.text()) == (200, "hello")
    assert logged_status(caplog, "/bad-header") == [500]


@pytest.mark.parametrize("stack", STACKS)
async def test_deeply_nested_json_is_a_400_problem(stack: str, static_dir: Path) -> None:
    depth = 100_000
    body = b"[" * depth + b"]" * depth
    async with (
        running(make_app(stack, static_dir)) as url,
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/json", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        assert response.status == 400
        assert "nested too deeply" in (await problem_of(response))["detail"]


async def problem_with_bad_header(request: web.Request) -> web.Response:
    raise HTTPProblem(409, detail="taken", headers={"X-Echo": "a\r\nSet-Cookie: admin=1"})


async def aiohttp_error_with_bad_header(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(headers={"X-Echo": "a\r\nSet-Cookie: admin=1"})


async def not_modified_with_bad_header(request: web.Request) -> web.Response:
    raise web.HTTPNotModified(headers={"ETag": "a\nSet-Cookie: admin=1"})


async def not_allowed_with_bad_method(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed("GET", ["POST\r\nSet-Cookie: admin=1"])


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    "raises",
    [
        problem_with_bad_header,
        aiohttp_error_with_bad_header,
        not_modified_with_bad_header,
        not_allowed_with_bad_method,
    ],
)
async def test_a_raised_error_whose_header_cannot_be_sent_is_a_500_problem_and_logged_500(
    stack: str, raises: Handler, static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The header check covers what handlers raise (HTTPProblem, aiohttp's HTTP exceptions, a
    304 passed through), not only what they return: else aiohttp drops the connection while the
    access log records the exception's status."""
    caplog.set_level(logging.INFO)
    app = make_app(stack, static_dir)
    app.router.add_get("/raises", raises)
    async with running(app) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/raises") as response:
            assert response.status == 500
            assert "Set-Cookie" not in response.headers
            await problem_of(response)
        async with session.get(f"{url}/hello") as response:
            assert (response.status, await response.text()) == (200, "hello")
    assert logged_status(caplog, "/raises") == [500]
    errors = [r.getMessage() for r in caplog.records if r.name == "loopwise.http.server"]
    assert any("control character" in message for message in errors), errors


class ControlFlow(BaseException):
    """A BaseException that is not an error: a framework's control flow, say."""


async def raises_control_flow(request: web.Request) -> web.Response:
    raise ControlFlow("stop here")


@pytest.mark.parametrize("stack", STACKS)
async def test_a_base_exception_is_not_a_problem_but_is_logged_and_propagates(
    stack: str, static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A BaseException that is not an Exception (KeyboardInterrupt, SystemExit, a framework's
    control flow) is never answered as a 500 problem, which would swallow it: it propagates to
    aiohttp, which closes the connection without an answer. It is logged with the request."""
    caplog.set_level(logging.INFO)
    app = make_app(stack, static_dir)
    app.router.add_get("/control-flow", raises_control_flow)
    async with running(app) as url, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with session.get(f"{url}/control-flow") as response:
                await response.read()
        async with session.get(f"{url}/hello") as response:
            assert (response.status, await response.text()) == (200, "hello")
    errors = [r for r in caplog.records if r.name == "loopwise.http.server"]
    assert errors  # one per attempt: the client retries a GET once on a dropped connection
    for error in errors:
        assert "GET /control-flow" in error.getMessage()
        assert "raised ControlFlow" in error.getMessage()
        assert error.exc_info is not None and error.exc_info[0] is ControlFlow
        assert getattr(error, "request_id", None)
