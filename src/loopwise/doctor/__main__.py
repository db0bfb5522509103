"""``python -m loopwise.doctor [options] (script.py | -m module) [args...]``.

The same as ``loopwise run``, for environments where the ``loopwise`` command is not on PATH.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from loopwise.doctor._cli import register


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` like ``loopwise run`` and run the program; returns the exit code."""
    parser = _Parser(prog="python -m loopwise.doctor")
    subparsers = parser.add_subparsers(dest="command", parser_class=_Parser)
    register(subparsers)
    args = parser.parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
