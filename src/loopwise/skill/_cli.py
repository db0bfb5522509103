"""``loopwise skill build`` and ``loopwise skill check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add the ``skill`` command (with ``build`` and ``check``) to ``subparsers``."""
    skill = subparsers.add_parser(
        "skill",
        help="build or check the python-async-patterns skill bundle",
        description=(
            "Build the python-async-patterns.skill bundle (the asyncio/aiohttp reference, for "
            "people and AI tools), or check one."
        ),
    )
    actions = skill.add_subparsers(dest="skill_action", metavar="ACTION", parser_class=type(skill))
    build = actions.add_parser(
        "build",
        help="write python-async-patterns.skill",
        description=(
            "Write python-async-patterns.skill into DIR (a reproducible zip: the same sources "
            "give the same bytes). Exit 0: written, 1: the sources have problems (nothing "
            "written), 2: usage error."
        ),
    )
    build.add_argument(
        "-o", "--output", default=".", metavar="DIR", help="where to write it (default: .)"
    )
    build.add_argument(
        "--source",
        metavar="DIR",
        help="the directory holding SKILL.md, asyncio.md, aiohttp.md and pitfalls.md "
        "(default: the copy shipped with loopwise)",
    )
    build.set_defaults(handler=run_build)
    check = actions.add_parser(
        "check",
        help="validate a .skill bundle",
        description=(
            "Validate a .skill bundle: layout, SKILL.md front matter, relative links, rule codes. "
            "Exit 0: sound, 1: problems (one line each), 2: missing or corrupt file."
        ),
    )
    check.add_argument("file", metavar="FILE", help="the .skill file")
    check.set_defaults(handler=run_check)
    skill.set_defaults(handler=_missing_action, skill_parser=skill)


def _missing_action(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.skill_parser
    print(f"{parser.prog}: error: choose an action: build or check", file=sys.stderr)
    return EXIT_USAGE


def run_build(args: argparse.Namespace) -> int:
    """``loopwise skill build``: write the bundle, or list why not."""
    from loopwise._exceptions import ConfigError
    from loopwise.skill._bundle import build_bundle

    source = Path(args.source) if args.source else None
    try:
        target, problems = build_bundle(Path(args.output), source)
    except ConfigError as exc:
        print(f"loopwise: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if problems:
        for problem in problems:
            print(f"{problem}", file=sys.stdout)
        print(f"{len(problems)} problem(s) in the sources: {target} not written", file=sys.stderr)
        return EXIT_PROBLEMS
    print(target)
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    """``loopwise skill check FILE``: one line per problem."""
    from loopwise._exceptions import ConfigError
    from loopwise.skill._bundle import check_bundle

    path = Path(args.file)
    try:
        problems = check_bundle(path)
    except ConfigError as exc:
        print(f"loopwise: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for problem in problems:
        print(f"{path}: {problem}")
    if problems:
        print(f"{len(problems)} problem(s) in {path}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{path}: ok", file=sys.stderr)
    return EXIT_OK
