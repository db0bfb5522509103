"""``loopwise demo serve``: run the live demo app (cheap to import; aiohttp loads on use)."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from typing import Any

from loopwise._argtypes import port_number

__all__ = ["main", "register"]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8080, help="port, 0 for any free one (8080)"
    )
    parser.add_argument(
        "--tick", type=_positive, default=1.0, help="seconds between feed events (1.0)"
    )


def register(subparsers: Any) -> None:
    """Add ``demo serve`` to the ``loopwise`` command."""
    demo = subparsers.add_parser(
        "demo",
        help="run the live demo: an SSE feed and a WebSocket chat",
        description="Run the loopwise server demo: a page with a live feed over Server-Sent "
        "Events (resumes without loss) and a chat over WebSocket.",
    )
    commands = demo.add_subparsers(dest="demo_command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the demo page until Ctrl+C",
        description="Serve the demo on HOST:PORT until Ctrl+C or SIGTERM.",
    )
    _add_options(serve)
    serve.set_defaults(handler=serve_demo)


def serve_demo(args: argparse.Namespace) -> int:
    """Run the demo until a signal; 0 after a clean shutdown, 1 if it cannot listen."""
    from loopwise.http.server._app import run
    from loopwise.http.server._demo import make_demo_app

    try:
        port = args.port or _free_port(args.host)
        app = make_demo_app(tick_interval=args.tick, allowed_origins=_origins(args.host, port))
        run(app, args.host, port)
    except OSError as exc:
        print(
            f"loopwise: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(pick another --port)",
            file=sys.stderr,
        )
        return 1
    return 0


def _free_port(host: str) -> int:
    """A port free on ``host`` now: the demo must know it to name its own origin."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _origins(host: str, port: int) -> list[str]:
    """The origins a browser shows for the demo page served on ``host:port``."""
    names = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    return sorted(f"http://{name}:{port}" for name in names)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loopwise.demo [--host H] [--port P] [--tick S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m loopwise.demo", description="Run the loopwise server demo."
    )
    _add_options(parser)
    return serve_demo(parser.parse_args(argv))
