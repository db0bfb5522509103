"""The ``loopwise`` command: one sub-command per capability.

Each capability contributes a ``register(subparsers)`` function from a private ``_cli`` module
that must stay cheap to import (heavy imports happen inside the command's handler).
Exit codes: 0 success, 1 findings/failure reported by the command, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from loopwise._exceptions import ConfigError
from loopwise._version import __version__

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2, never a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# The module that registers each sub-command; only the one asked for is imported, so that
# `loopwise check` does not pay for importing aiohttp.
_COMMANDS = {
    "check": "loopwise.lint._cli",
    "rule": "loopwise.lint._cli",
    "server": "loopwise.lint._cli",
    "run": "loopwise.doctor._cli",
    "ps": "loopwise.doctor._monitor_cli",
    "pstree": "loopwise.doctor._monitor_cli",
    "top": "loopwise.doctor._monitor_cli",
    "demo": "loopwise.http.server._cli",
    "skill": "loopwise.skill._cli",
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for ``argv``'s sub-command, or for every sub-command when none is named."""
    parser = _Parser(prog="loopwise", description="Make asyncio and aiohttp code correct and fast.")
    parser.add_argument("--version", action="version", version=f"loopwise {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command in _COMMANDS:
        modules = [_COMMANDS[command]]
    else:
        modules = list(dict.fromkeys(_COMMANDS.values()))
    for module in modules:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopwise`` command line; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = handler(args)
    except ConfigError as exc:
        print(f"loopwise: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loopwise: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
