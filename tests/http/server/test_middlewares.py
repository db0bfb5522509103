"""The middlewares against a real server: problem+json for every error class, request ids,
the access log and the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from loopwise.http.server import (
    PROBLEM_CONTENT_TYPE,
    EventChannel,
    HTTPProblem,
    RequestIdFilter,
    access_log_middleware,
    create_app,
    current_request_id,
    prepare_stream,
    problem_middleware,
    read_json,
    request_id_middleware,
    standard_middlewares,
    timeout_middleware,
)
from tests.http._serving import running

from .conftest import SSEReader

SECRET = "s3cr3t-database-password"


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"request_id": current_request_id()})


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError(f"connection to db failed with password {SECRET}")


async def validate(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise HTTPProblem(
            422,
            detail="the body does not match the schema",
            errors=[{"pointer": "#/name", "detail": "must be a string"}],
        )
    return web.json_response({"hello": body["name"]})


async def teapot(request: web.Request) -> web.Response:
    raise web.HTTPForbidden(text="you may not brew here")


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def hang(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def stubborn(request: web.Request) -> web.Response:
    # A handler that swallows the deadline's cancellation still answers.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.sleep(0)
    return web.Response(text="late but fine")


async def own_timeout(request: web.Request) -> web.Response:
    raise TimeoutError("an upstream call timed out")


def make_app(**kwargs: Any) -> web.Application:
    app = create_app(**kwargs)
    app.router.add_get("/ok", ok)
    app.router.add_get("/crash", crash)
    app.router.add_post("/items", validate)
    app.router.add_get("/forbidden", teapot)
    app.router.add_get("/moved", moved)
    app.router.add_get("/hang", hang)
    app.router.add_get("/own-timeout", own_timeout)
    app.router.add_get("/stubborn", stubborn)
    return app


async def problem(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    text = await response.text()
    assert "Traceback" not in text
    assert SECRET not in text
    body: dict[str, Any] = json.loads(text)
    assert body["status"] == response.status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str) and body["title"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


async def test_404_is_a_problem(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.get(f"{url}/nowhere") as r:
        assert r.status == 404
        body = await problem(r)
        assert body["title"] == "Not Found"
        assert body["instance"] == "/nowhere"


async def test_405_keeps_allow(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.delete(f"{url}/ok") as r:
        assert r.status == 405
        assert set(r.headers["Allow"].split(",")) == {"GET", "HEAD"}
        assert (await problem(r))["title"] == "Method Not Allowed"


async def test_413_over_client_max_size(session: aiohttp.ClientSession) -> None:
    app = make_app(client_max_size=1024)
    headers = {"Content-Type": "application/json"}
    async with (
        running(app) as url,
        session.post(f"{url}/items", data=b"[" + b"1," * 2000 + b"1]", headers=headers) as r,
    ):
        assert r.status == 413
        body = await problem(r)
        assert "1024" in body["detail"]


async def test_422_validation_members(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.post(f"{url}/items", json={"name": 5}) as r:
        assert r.status == 422
        body = await problem(r)
        assert body["detail"] == "the body does not match the schema"
        assert body["errors"] == [{"pointer": "#/name", "detail": "must be a string"}]


async def test_valid_body_passes(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.post(f"{url}/items", json={"name": "ann"}) as r:
        assert r.status == 200
        assert await r.json() == {"hello": "ann"}


async def test_malformed_json_is_400(session: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/json"}
    async with (
        running(make_app()) as url,
        session.post(f"{url}/items", data=b'{"name": ', headers=headers) as r,
    ):
        assert r.status == 400
        assert "not valid JSON" in (await problem(r))["detail"]


async def test_wrong_content_type_is_415(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.post(f"{url}/items", data="name=ann") as r:
        assert r.status == 415
        assert "application/json" in (await problem(r))["detail"]


async def test_uncaught_error_is_a_bare_500_and_logged(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="loopwise.http.server")
    headers = {"Accept": "text/html", "X-Request-ID": "trace-me-42"}
    async with running(make_app()) as url, session.get(f"{url}/crash", headers=headers) as r:
        assert r.status == 500
        body = await problem(r)
        assert set(body) == {"type", "title", "status", "instance", "request_id"}
        assert body["request_id"] == "trace-me-42"
    [record] = [rec for rec in caplog.records if rec.name == "loopwise.http.server"]
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])
    assert "trace-me-42" in record.getMessage()
    assert getattr(record, "request_id", None) == "trace-me-42"


async def test_http_exception_text_becomes_detail(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.get(f"{url}/forbidden") as r:
        assert r.status == 403
        assert (await problem(r))["detail"] == "you may not brew here"


async def test_redirects_pass_through(session: aiohttp.ClientSession) -> None:
    async with (
        running(make_app()) as url,
        session.get(f"{url}/moved", allow_redirects=False) as r,
    ):
        assert r.status == 302
        assert r.headers["Location"] == "/ok"


async def test_timeout_answers_503(session: aiohttp.ClientSession) -> None:
    app = make_app(middlewares=standard_middlewares(timeout=0.05))
    async with running(app) as url, session.get(f"{url}/hang") as r:
        assert r.status == 503
        assert r.headers["Retry-After"] == "1"
        assert "0.05 s" in (await problem(r))["detail"]


async def test_swallowed_deadline_leaves_no_stray_cancellation(
    session: aiohttp.ClientSession,
) -> None:
    app = make_app(middlewares=standard_middlewares(timeout=0.05))
    async with running(app) as url:
        for _ in range(2):  # the same keep-alive connection serves the next request normally
            async with session.get(f"{url}/stubborn") as r:
                assert r.status == 200
                assert await r.text() == "late but fine"
            async with session.get(f"{url}/ok") as r:
                assert r.status == 200


async def test_handler_timeout_error_is_not_the_deadline(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url, session.get(f"{url}/own-timeout") as r:
        assert r.status == 500


async def test_timeout_does_not_cut_streams(session: aiohttp.ClientSession) -> None:
    channel = EventChannel()
    app = create_app(middlewares=standard_middlewares(timeout=0.05))
    app.router.add_get("/events", channel.handler)
    async with running(app) as url, session.get(f"{url}/events") as r:
        assert r.status == 200
        await asyncio.sleep(0.15)  # three deadlines long
        await channel.publish("still here")
        event = await SSEReader(r).next()
        assert event is not None and event.data == "still here"


async def test_prepare_stream_exempts_own_streams(session: aiohttp.ClientSession) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await prepare_stream(request, response)
        for part in (b"a", b"b", b"c"):
            await asyncio.sleep(0.05)  # three parts: longer than the 0.05 s deadline in total
            await response.write(part)
        return response

    app = create_app(middlewares=standard_middlewares(timeout=0.05))
    app.router.add_get("/stream", stream)
    async with (
        running(app) as url,
        session.get(f"{url}/stream", headers={"X-Request-ID": "own-1"}) as r,
    ):
        assert r.status == 200
        assert r.headers["X-Request-ID"] == "own-1"
        assert await r.read() == b"abc"


async def _timed_get(session: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with session.get(url) as r:
        await r.read()
        return r.status, loop.time() - start


@pytest.mark.parametrize("fused", [True, False], ids=["standard", "timeout_middleware"])
async def test_each_request_gets_its_whole_deadline(
    session: aiohttp.ClientSession, fused: bool
) -> None:
    # A request that arrives while an earlier one waits for its deadline gets its own full
    # ``seconds``, not what is left of the earlier one's.
    seconds = 0.3
    stack = standard_middlewares(timeout=seconds) if fused else [timeout_middleware(seconds)]
    async with running(make_app(middlewares=[problem_middleware(), *stack])) as url:
        first = asyncio.create_task(_timed_get(session, f"{url}/hang"))
        await asyncio.sleep(seconds / 2)
        second = asyncio.create_task(_timed_get(session, f"{url}/hang"))
        await asyncio.sleep(0)
        for _ in range(5):  # answers in between are not held up
            status, _ = await _timed_get(session, f"{url}/ok")
            assert status == 200
        (status_1, took_1), (status_2, took_2) = await asyncio.gather(first, second)
    assert (status_1, status_2) == (503, 503)
    assert took_1 >= seconds and took_2 >= seconds
    assert took_1 < seconds + 5 and took_2 < seconds + 5  # bounded, not the client's 20 s


async def test_many_hanging_requests_all_get_their_503(session: aiohttp.ClientSession) -> None:
    async with running(make_app(middlewares=standard_middlewares(timeout=0.1))) as url:
        results = await asyncio.gather(*(_timed_get(session, f"{url}/hang") for _ in range(30)))
    assert [status for status, _ in results] == [503] * 30
    assert min(took for _, took in results) >= 0.1


# The first loop ends with a handler and its deadline pending on purpose (the handler hangs
# after its client went away): what is tested is that the next loop's deadlines still fire.
@pytest.mark.loopwise(allow=["task-leak"])
def test_a_middleware_keeps_its_deadline_on_a_new_event_loop() -> None:
    # The same middleware list serving an app under one event loop, then another (as tests and
    # reloaders do): the deadline still fires under the second loop.
    stack = standard_middlewares(timeout=0.5)

    async def serve_once() -> int:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
            running(make_app(middlewares=stack)) as url,
            session.get(f"{url}/hang") as r,
        ):
            return r.status

    async def end_with_a_deadline_pending() -> None:
        entered = asyncio.Event()

        async def enter_and_hang(request: web.Request) -> web.Response:
            entered.set()
            return await hang(request)

        app = make_app(middlewares=stack)
        app.router.add_get("/enter", enter_and_hang)
        async with (
            running(app, shutdown_timeout=0.01) as url,
            aiohttp.ClientSession() as session,
        ):
            request = asyncio.create_task(session.get(f"{url}/enter"))
            async with asyncio.timeout(5):
                await entered.wait()
            request.cancel()

    asyncio.run(end_with_a_deadline_pending())
    assert asyncio.run(serve_once()) == 503
    assert asyncio.run(serve_once()) == 503


async def test_timeout_rejects_bad_seconds() -> None:
    with pytest.raises(ValueError, match="seconds > 0"):
        timeout_middleware(0)


async def test_request_id_round_trip(session: aiohttp.ClientSession) -> None:
    async with running(make_app()) as url:
        async with session.get(f"{url}/ok", headers={"X-Request-ID": "abc-123"}) as r:
            assert r.headers["X-Request-ID"] == "abc-123"
            assert (await r.json())["request_id"] == "abc-123"
        async with session.get(f"{url}/ok") as r:
            made = r.headers["X-Request-ID"]
            assert len(made) == 16
            assert (await r.json())["request_id"] == made
        async with session.get(f"{url}/ok", headers={"X-Request-ID": "bad id\u00e9"}) as r:
            assert r.headers["X-Request-ID"] != "bad id\u00e9"
            assert (await r.json())["request_id"] == r.headers["X-Request-ID"]
        async with session.get(f"{url}/ok", headers={"X-Request-ID": "x" * 129}) as r:
            assert r.headers["X-Request-ID"] != "x" * 129
    assert current_request_id() is None


async def test_request_id_on_streams(session: aiohttp.ClientSession) -> None:
    channel = EventChannel()
    app = create_app()
    app.router.add_get("/events", channel.handler)
    async with (
        running(app) as url,
        session.get(f"{url}/events", headers={"X-Request-ID": "stream-1"}) as r,
    ):
        assert r.headers["X-Request-ID"] == "stream-1"


async def test_untrusted_incoming_id_is_replaced(session: aiohttp.ClientSession) -> None:
    app = web.Application(
        middlewares=[request_id_middleware(header="X-Trace", trust_incoming=False)]
    )
    app.router.add_get("/ok", ok)
    async with running(app) as url, session.get(f"{url}/ok", headers={"X-Trace": "mine"}) as r:
        assert r.headers["X-Trace"] != "mine"
        assert (await r.json())["request_id"] == r.headers["X-Trace"]


async def test_access_log_fields(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loopwise.http.access")
    async with running(make_app()) as url:
        async with session.get(f"{url}/ok", headers={"X-Request-ID": "log-1"}) as r:
            await r.read()
        async with session.get(f"{url}/nowhere", headers={"X-Request-ID": "log-2"}) as r:
            await r.read()
    records = [rec for rec in caplog.records if rec.name == "loopwise.http.access"]
    by_id = {getattr(rec, "request_id", None): rec for rec in records}
    first, second = by_id["log-1"], by_id["log-2"]
    assert (first.method, first.path, first.status) == ("GET", "/ok", 200)  # type: ignore[attr-defined]
    assert second.status == 404  # type: ignore[attr-defined]
    assert first.duration_ms >= 0  # type: ignore[attr-defined]
    assert first.getMessage().startswith("GET /ok 200 ")


async def test_access_log_without_problem_middleware_logs_500(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loopwise.http.access")
    app = web.Application(middlewares=[access_log_middleware(skip_paths={"/ok"})])
    app.router.add_get("/crash", crash)
    app.router.add_get("/ok", ok)
    async with running(app) as url:
        async with session.get(f"{url}/crash") as r:
            assert r.status == 500
        async with session.get(f"{url}/ok") as r:
            assert r.status == 200
    statuses = [
        (rec.path, rec.status)  # type: ignore[attr-defined]
        for rec in caplog.records
        if rec.name == "loopwise.http.access"
    ]
    assert statuses == [("/crash", 500)]


async def test_problem_middleware_alone(session: aiohttp.ClientSession) -> None:
    app = web.Application(middlewares=[problem_middleware()])
    app.router.add_get("/crash", crash)
    async with running(app) as url, session.get(f"{url}/crash") as r:
        assert r.status == 500
        assert r.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
        body = await r.json(content_type=None)
        assert body == {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "instance": "/crash",
        }


def test_request_id_filter() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert RequestIdFilter().filter(record)
    assert record.request_id == "-"  # type: ignore[attr-defined]


def test_http_problem_rejects_non_error_status() -> None:
    with pytest.raises(ValueError, match="400-599"):
        HTTPProblem(302)
