"""An aiohttp server kit: production middlewares, graceful shutdown, a WebSocket hub that a slow
client cannot stall, and Server-Sent Events that resume without loss.

::

    from loopwise.http.server import EventChannel, create_app, run

    feed = EventChannel()
    app = create_app()
    app.router.add_get("/events", feed.handler)
    run(app, "127.0.0.1", 8080)          # elsewhere: await feed.publish("hello")

See the docs page ``server.md`` for every option and guarantee.
"""

from loopwise._exceptions import HTTPProblem as HTTPProblem
from loopwise.http.server._access_log import access_log_middleware as access_log_middleware
from loopwise.http.server._app import create_app as create_app
from loopwise.http.server._app import run as run
from loopwise.http.server._app import serve as serve
from loopwise.http.server._deadlines import prepare_stream as prepare_stream
from loopwise.http.server._deadlines import timeout_middleware as timeout_middleware
from loopwise.http.server._hub import HubConnection as HubConnection
from loopwise.http.server._hub import HubStatistics as HubStatistics
from loopwise.http.server._hub import WebSocketHub as WebSocketHub
from loopwise.http.server._middlewares import standard_middlewares as standard_middlewares
from loopwise.http.server._origins import origin_middleware as origin_middleware
from loopwise.http.server._problem import PROBLEM_CONTENT_TYPE as PROBLEM_CONTENT_TYPE
from loopwise.http.server._problem import problem_response as problem_response
from loopwise.http.server._problem import read_json as read_json
from loopwise.http.server._problem_middleware import problem_middleware as problem_middleware
from loopwise.http.server._request_id import RequestIdFilter as RequestIdFilter
from loopwise.http.server._request_id import current_request_id as current_request_id
from loopwise.http.server._request_id import request_id_middleware as request_id_middleware
from loopwise.http.server._sse import ChannelStatistics as ChannelStatistics
from loopwise.http.server._sse import EventChannel as EventChannel

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "ChannelStatistics",
    "EventChannel",
    "HTTPProblem",
    "HubConnection",
    "HubStatistics",
    "RequestIdFilter",
    "WebSocketHub",
    "access_log_middleware",
    "create_app",
    "current_request_id",
    "origin_middleware",
    "prepare_stream",
    "problem_middleware",
    "problem_response",
    "read_json",
    "request_id_middleware",
    "run",
    "serve",
    "standard_middlewares",
    "timeout_middleware",
]
