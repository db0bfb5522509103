"""``standard_middlewares()`` is one middleware that must behave exactly like the four
single-purpose ones stacked in its documented order: same answers, same headers, same bodies,
same log records, for every kind of request and error."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.typedefs import Handler, Middleware

from loopwise.http.server import (
    HTTPProblem,
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

DEADLINE = 0.05


# -- handlers covering every path through the stack ---------------------------------------------


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"request_id": current_request_id()})


async def waits_then_ok(request: web.Request) -> web.Response:
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(0.001)
    return web.json_response({"request_id": current_request_id(), "waited": True})


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("internal detail that must not leak")


async def waits_then_crash(request: web.Request) -> web.Response:
    await asyncio.sleep(0)
    raise KeyError("internal detail that must not leak")


async def items(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise HTTPProblem(
            422,
            detail="the body does not match the schema",
            headers={"X-Hint": "see the docs"},
            errors=[{"pointer": "#/name", "detail": "must be a string"}],
        )
    return web.json_response({"hello": body["name"]})


async def forbidden(request: web.Request) -> web.Response:
    raise web.HTTPForbidden(text="you may not brew here", headers={"X-Why": "teapot"})


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def returns_error_response(request: web.Request) -> web.Response:
    return web.Response(status=409, text="a plain error response, returned not raised")


async def hang(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def busy_then_hang(request: web.Request) -> web.Response:
    # CPU work longer than the deadline before the first wait: the deadline counts from the
    # start of the request, not from the handler's first wait.
    busy_until = time.perf_counter() + DEADLINE * 1.5
    while time.perf_counter() < busy_until:
        pass
    await asyncio.sleep(1)
    return web.Response(text="too late")


async def stubborn(request: web.Request) -> web.Response:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.sleep(0)
    return web.Response(text="late but fine")


async def own_timeout(request: web.Request) -> web.Response:
    await asyncio.sleep(0)
    raise TimeoutError("an upstream call timed out")


async def stream_at_once(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await prepare_stream(request, response)
    for part in (b"a", b"b", b"c"):
        await asyncio.sleep(DEADLINE)
        await response.write(part)
    return response


async def stream_after_wait(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(DEADLINE / 5)  # the deadline is armed by now
    response = web.StreamResponse()
    await prepare_stream(request, response)
    for part in (b"x", b"y", b"z"):
        await asyncio.sleep(DEADLINE)
        await response.write(part)
    return response


async def raw_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)  # not prepare_stream: no id header can be added later
    await response.write(b"raw")
    return response


async def crash_mid_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"partial")
    raise RuntimeError("broken after the headers went out")


async def returns_a_dict(request: web.Request) -> Any:
    return {"not": "a response"}


async def bad_header(request: web.Request) -> web.Response:
    return web.Response(text="hi", headers={"X-Echo": "a\r\nSet-Cookie: admin=1"})


async def missing_file(request: web.Request) -> web.FileResponse:
    return web.FileResponse(Path(__file__).with_name("no-such-file.txt"))


class FastView(web.View):
    async def get(self) -> web.Response:
        return web.json_response({"view": True, "request_id": current_request_id()})


class SlowView(web.View):
    async def get(self) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


ROUTES: list[tuple[str, str, Callable[..., Any]]] = [
    ("GET", "/ok", ok),
    ("GET", "/waits", waits_then_ok),
    ("GET", "/crash", crash),
    ("GET", "/waits-crash", waits_then_crash),
    ("POST", "/items", items),
    ("GET", "/forbidden", forbidden),
    ("GET", "/moved", moved),
    ("GET", "/conflict", returns_error_response),
    ("GET", "/hang", hang),
    ("GET", "/busy-hang", busy_then_hang),
    ("GET", "/stubborn", stubborn),
    ("GET", "/own-timeout", own_timeout),
    ("GET", "/stream", stream_at_once),
    ("GET", "/stream-after-wait", stream_after_wait),
    ("GET", "/raw-stream", raw_stream),
    ("GET", "/crash-mid-stream", crash_mid_stream),
    ("GET", "/dict", returns_a_dict),
    ("GET", "/bad-header", bad_header),
    ("GET", "/missing-file", missing_file),
]

JSON = {"Content-Type": "application/json"}

# (method, path, request options)
SCENARIOS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/ok", {}),
    ("GET", "/ok", {"headers": {"X-Request-ID": "client-id-1"}}),
    ("GET", "/ok", {"headers": {"X-Request-ID": "bad id é"}}),
    ("GET", "/ok", {"headers": {"X-Request-ID": "x" * 129}}),
    ("GET", "/ok", {"headers": {"X-Trace": "trace-7"}}),
    ("GET", "/waits", {"headers": {"X-Request-ID": "waiting-1"}}),
    ("GET", "/nowhere", {}),
    ("DELETE", "/ok", {}),
    ("POST", "/items", {"data": b"[" + b"1," * 2000 + b"1]", "headers": JSON}),
    ("POST", "/items", {"data": b'{"name": ', "headers": JSON}),
    ("POST", "/items", {"data": "name=ann"}),
    ("POST", "/items", {"json": {"name": 5}}),
    ("POST", "/items", {"json": {"name": "ann"}}),
    ("GET", "/crash", {"headers": {"X-Request-ID": "trace-me"}}),
    ("GET", "/waits-crash", {}),
    ("GET", "/forbidden", {}),
    ("GET", "/moved", {}),
    ("GET", "/conflict", {}),
    ("GET", "/hang", {}),
    ("GET", "/busy-hang", {}),
    ("GET", "/stubborn", {}),
    ("GET", "/ok", {}),  # the keep-alive connection after a swallowed deadline
    ("GET", "/own-timeout", {}),
    ("GET", "/stream", {"headers": {"X-Request-ID": "stream-1"}}),
    ("GET", "/stream-after-wait", {}),
    ("GET", "/raw-stream", {}),
    ("GET", "/crash-mid-stream", {}),
    ("GET", "/view", {}),
    ("GET", "/slow-view", {}),
    ("HEAD", "/ok", {}),
    ("GET", "/dict", {}),
    ("GET", "/bad-header", {}),
    ("GET", "/ok", {}),  # the connection after an answer that could not be sent
    ("GET", "/missing-file", {}),
    ("GET", "/nowhere%0A2099-01-01%20CRITICAL%20forged", {}),
    ("GET", "/nowhere%00nul%E2%80%A8sep", {}),
]


NEEDS_DEADLINE = {"/hang", "/busy-hang", "/stubborn", "/slow-view"}


# -- two apps: the combined middleware and the four separate ones -------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def logger(name: str, level: int) -> tuple[logging.Logger, Records]:
    log = logging.getLogger(name)
    log.handlers.clear()
    log.setLevel(level)
    log.propagate = False
    records = Records()
    log.addHandler(records)
    return log, records


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"gen-{next(numbers)}"


OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "custom-header-untrusted": {"header": "X-Trace", "trust_incoming": False},
    "skip-paths": {"skip_paths": {"/ok", "/nowhere"}},
    "access-log-disabled": {"access_level": logging.DEBUG},
    "no-timeout": {"timeout": None},
}


def make_apps(
    options: dict[str, Any], name: str
) -> tuple[web.Application, web.Application, dict[str, Records]]:
    records: dict[str, Records] = {}
    stacks: list[list[Middleware]] = []
    timeout = options.get("timeout", DEADLINE)
    for kind in ("combined", "separate"):
        access, records[f"{kind}.access"] = logger(f"lwtest.{name}.{kind}.access", logging.INFO)
        error, records[f"{kind}.error"] = logger(f"lwtest.{name}.{kind}.error", logging.INFO)
        id_options = {
            "header": options.get("header", "X-Request-ID"),
            "trust_incoming": options.get("trust_incoming", True),
            "generate": counter_ids(),
        }
        level = options.get("access_level", logging.INFO)
        skip = options.get("skip_paths", ())
        if kind == "combined":
            stacks.append(
                standard_middlewares(
                    timeout=timeout,
                    access_logger=access,
                    access_level=level,
                    skip_paths=skip,
                    error_logger=error,
                    **id_options,
                )
            )
        else:
            stack = [
                request_id_middleware(**id_options),
                access_log_middleware(logger=access, level=level, skip_paths=skip),
                problem_middleware(logger=error),
            ]
            if timeout is not None:
                stack.append(timeout_middleware(timeout))
            stacks.append(stack)
    apps = []
    for stack in stacks:
        app = create_app(middlewares=stack, client_max_size=1024)
        for method, path, handler in ROUTES:
            app.router.add_route(method, path, handler)
        app.router.add_view("/view", FastView)
        app.router.add_view("/slow-view", SlowView)
        apps.append(app)
    return apps[0], apps[1], records


async def observe(
    session: aiohttp.ClientSession, url: str, method: str, path: str, options: dict[str, Any]
) -> tuple[object, ...]:
    """What a client sees: status, headers (but the date) and body; or that the answer broke."""
    try:
        async with session.request(method, url + path, allow_redirects=False, **options) as r:
            body = await r.read()
            headers = sorted((k, v) for k, v in r.headers.items() if k != "Date")
            return r.status, tuple(headers), body
    except aiohttp.ClientPayloadError:
        return ("the answer broke off",)


def normalised(records: list[logging.LogRecord]) -> list[tuple[object, ...]]:
    """The records without what legitimately differs between two runs: durations."""
    out = []
    for rec in records:
        fields = {
            key: getattr(rec, key, None)
            for key in ("method", "path", "status", "request_id", "remote")
        }
        message = re.sub(r" [\d.]+ms$", " <duration>ms", rec.getMessage())
        exc = rec.exc_info[0].__name__ if rec.exc_info and rec.exc_info[0] else None
        duration = getattr(rec, "duration_ms", None)
        out.append((rec.levelno, message, tuple(sorted(fields.items())), exc, duration is None))
    return out


# busy_then_hang holds the loop for 1.5x the deadline on purpose (the deadline counts from the
# start of the request, not from the handler's first wait): a block pytest --loopwise must allow.
@pytest.mark.loopwise(allow=["blocked"])
@pytest.mark.parametrize("name", list(OPTIONS))
async def test_combined_middleware_matches_the_four(name: str) -> None:
    combined, separate, records = make_apps(OPTIONS[name], name)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
        running(combined) as url_combined,
        running(separate) as url_separate,
    ):
        for method, path, options in SCENARIOS:
            if "timeout" in OPTIONS[name] and path in NEEDS_DEADLINE:
                continue  # without a deadline these would wait for the client's timeout
            seen = await asyncio.gather(
                observe(session, url_combined, method, path, options),
                observe(session, url_separate, method, path, options),
            )
            assert seen[0] == seen[1], f"{method} {path} {options}"
    for stream in ("access", "error"):
        got = normalised(records[f"combined.{stream}"].records)
        expected = normalised(records[f"separate.{stream}"].records)
        assert got == expected, stream
    access = records["combined.access"].records
    if name == "access-log-disabled":
        assert access == []
    else:  # the comparison above compared something
        assert any(rec.status == 503 for rec in access) == (name != "no-timeout")  # type: ignore[attr-defined]
        assert any(rec.status == 422 for rec in access)  # type: ignore[attr-defined]
    assert len(records["combined.error"].records) >= 3  # /crash, /waits-crash, /own-timeout, ...
    assert current_request_id() is None


async def test_the_scenarios_cover_what_they_claim(session: aiohttp.ClientSession) -> None:
    """A sanity check of the harness: the interesting answers really happen."""
    combined, _, _ = make_apps({}, "sanity")
    async with running(combined) as url:
        seen = {}
        for method, path, options in SCENARIOS:
            result = await observe(session, url, method, path, options)
            seen.setdefault(path, result)
    assert seen["/hang"][0] == 503
    assert seen["/busy-hang"][0] == 503
    assert seen["/slow-view"][0] == 503
    assert seen["/stubborn"][0] == 200
    assert seen["/stream"][0] == 200 and seen["/stream"][2] == b"abc"
    assert seen["/stream-after-wait"][0] == 200 and seen["/stream-after-wait"][2] == b"xyz"
    assert ("X-Request-ID", "stream-1") in seen["/stream"][1]
    assert not any(k == "X-Request-ID" for k, _ in seen["/raw-stream"][1])
    assert seen["/crash-mid-stream"] == ("the answer broke off",)
    assert seen["/moved"][0] == 302 and ("Location", "/ok") in seen["/moved"][1]
    assert seen["/view"][0] == 200
    assert seen["/nowhere"][0] == 404
    assert seen["/ok"][0] == 200


# -- direct calls: outcomes a real server cannot show (cancellation, connection errors) ---------


def chain(middlewares: list[Middleware], handler: Handler) -> Handler:
    """The handler as aiohttp builds it: the first middleware outermost."""
    for middleware in reversed(middlewares):
        handler = functools.partial(middleware, handler=handler)
    return handler


def stacks(access: logging.Logger, error: logging.Logger) -> Iterator[list[Middleware]]:
    yield standard_middlewares(
        timeout=DEADLINE, generate=lambda: "fixed-id", access_logger=access, error_logger=error
    )
    yield [
        request_id_middleware(generate=lambda: "fixed-id"),
        access_log_middleware(logger=access),
        problem_middleware(logger=error),
        timeout_middleware(DEADLINE),
    ]


@pytest.mark.parametrize("waits", [False, True])
@pytest.mark.parametrize(
    ("exception", "status"),
    [(asyncio.CancelledError, 499), (ConnectionResetError, 500), (KeyboardInterrupt, 500)],
)
async def test_propagating_errors_match(
    exception: type[BaseException], status: int, waits: bool
) -> None:
    name = f"lwtest.direct.{exception.__name__}.{waits}"
    access, access_records = logger(f"{name}.access", logging.INFO)
    error, error_records = logger(f"{name}.error", logging.INFO)
    seen_ids = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen_ids.append(current_request_id())
        if waits:
            await asyncio.sleep(0)
        raise exception()

    for stack in stacks(access, error):
        with pytest.raises(exception):
            await chain(stack, handler)(make_mocked_request("GET", "/gone"))
        assert current_request_id() is None
    assert seen_ids == ["fixed-id", "fixed-id"]
    got, expected = normalised(access_records.records)
    assert got == expected
    assert access_records.records[0].status == status  # type: ignore[attr-defined]
    if issubclass(exception, Exception | asyncio.CancelledError):
        assert error_records.records == []
    else:  # logged by each stack alike, then propagated (not swallowed into a 500 problem)
        fused, separate = (r.getMessage() for r in error_records.records)
        assert fused == separate and "raised KeyboardInterrupt" in fused


async def test_answer_without_waiting_matches() -> None:
    access, access_records = logger("lwtest.direct.sync.access", logging.INFO)
    error, _ = logger("lwtest.direct.sync.error", logging.INFO)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=str(current_request_id()))

    answers = []
    for stack in stacks(access, error):
        response = await chain(stack, handler)(make_mocked_request("GET", "/quick"))
        assert isinstance(response, web.Response)
        answers.append((response.status, response.text, response.headers["X-Request-ID"]))
    assert answers == [(200, "fixed-id", "fixed-id")] * 2
    got, expected = normalised(access_records.records)
    assert got == expected


def test_standard_middlewares_is_a_single_middleware() -> None:
    assert len(standard_middlewares()) == 1
    assert len(standard_middlewares(timeout=None)) == 1


def test_standard_middlewares_rejects_bad_timeout() -> None:
    with pytest.raises(ValueError, match="seconds > 0"):
        standard_middlewares(timeout=0)
