"""Problem details (RFC 9457) responses and a JSON body reader that fails with them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from loopwise._exceptions import HTTPProblem

__all__ = ["PROBLEM_CONTENT_TYPE", "problem_response", "read_json"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_RESERVED = frozenset({"type", "title", "status", "detail", "instance"})


def status_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (``"Error"`` for an unregistered code)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type: str = "about:blank",
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: object,
) -> web.Response:
    """An ``application/problem+json`` response with the RFC 9457 members given.

    ``title`` defaults to the status phrase. Extension members never replace the standard ones;
    values that are not JSON serialisable are written as their ``str()``.
    """
    return build_problem(status, title, detail, type, instance, headers, extensions)


def build_problem(
    status: int,
    title: str | None,
    detail: str | None,
    type: str,
    instance: str | None,
    headers: Mapping[str, str] | None,
    extensions: Mapping[str, object],
) -> web.Response:
    """:func:`problem_response` with the extension members as a mapping."""
    body: dict[str, object] = {
        "type": type,
        "title": title or status_phrase(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    for key, value in extensions.items():
        if key not in _RESERVED:
            body[key] = value
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    response = web.Response(
        status=status, body=payload.encode("utf-8"), content_type=PROBLEM_CONTENT_TYPE
    )
    if headers:
        response.headers.update(headers)
    return response


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json(request: web.Request) -> Any:
    """The request body parsed as JSON.

    Raises :class:`~loopwise.HTTPProblem` 415 when the ``Content-Type`` is not JSON and 400 when
    the body is not valid UTF-8 JSON or is nested too deeply for the parser; a body over the
    app's ``client_max_size`` raises aiohttp's 413. With ``problem_middleware`` each becomes a
    problem+json answer.
    """
    if not _is_json_type(request.content_type):
        raise HTTPProblem(
            415,
            detail=f"expected a JSON body, got Content-Type {request.content_type!r}: "
            "send it as application/json",
        )
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPProblem(400, detail="the request body is not valid UTF-8") from None
    except RecursionError:
        raise HTTPProblem(
            400, detail="the request body is JSON nested too deeply: flatten it"
        ) from None
    except json.JSONDecodeError as exc:
        raise HTTPProblem(
            400,
            detail=f"the request body is not valid JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}",
        ) from None
