"""``loopwise check`` and ``loopwise rule``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopwise.lint._report import FORMATS

__all__ = ["register"]

_PROGRESS_MIN_FILES = 200


def _codes(value: str) -> list[str]:
    codes = [code.strip() for code in value.split(",") if code.strip()]
    if not codes:
        raise argparse.ArgumentTypeError("expected at least one code or prefix, like LW001,LW00")
    return codes


_FORMAT_HELP = "full (default on a terminal), concise (default otherwise), " + ", ".join(
    ("json", "json-lines", "sarif", "github", "gitlab", "junit")
)


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="find asyncio/aiohttp pitfalls in Python files",
        description="Find asyncio/aiohttp pitfalls. Exit 0: clean, 1: findings, 2: usage error.",
    )
    check.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="- reads stdin")
    select = check.add_argument_group("rule selection")
    select.add_argument(
        "--select",
        type=_codes,
        action="extend",
        help="codes or prefixes to report, replacing the config's (LW001,LW00; repeatable)",
    )
    select.add_argument(
        "--extend-select", type=_codes, action="extend", default=[], help="codes to add"
    )
    select.add_argument(
        "--ignore", type=_codes, action="extend", default=[], help="codes or prefixes to skip"
    )
    select.add_argument(
        "--extend-ignore", type=_codes, action="extend", default=[], help="same as --ignore"
    )
    files = check.add_argument_group("files and settings")
    files.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="gitignore-style pattern of paths to skip (repeatable)",
    )
    files.add_argument(
        "--config", metavar="FILE", help="the pyproject.toml or loopwise.toml to use for every file"
    )
    files.add_argument("--isolated", action="store_true", help="ignore every config file")
    files.add_argument(
        "--force-exclude", action="store_true", help="apply excludes to files named explicitly"
    )
    files.add_argument(
        "--no-respect-gitignore", action="store_true", help="check files .gitignore excludes"
    )
    files.add_argument(
        "--stdin-filename", metavar="PATH", help="the file name for source read from stdin (-)"
    )
    files.add_argument("--show-files", action="store_true", help="list the files to check")
    files.add_argument(
        "--show-settings", action="store_true", help="print the settings for the first path"
    )
    fixes = check.add_argument_group("fixes")
    fixes.add_argument("--fix", action="store_true", help="apply safe fixes")
    fixes.add_argument(
        "--unsafe-fixes", action="store_true", help="also apply fixes that need review"
    )
    fixes.add_argument(
        "--diff", action="store_true", help="print the fixes as a diff, change nothing"
    )
    fixes.add_argument(
        "--fix-only", action="store_true", help="apply fixes, do not report what is left"
    )
    fixes.add_argument("--show-fixes", action="store_true", help="list what was fixed")
    fixes.add_argument(
        "--add-noqa", action="store_true", help="add `# noqa: CODE` to every finding's line"
    )
    baseline = check.add_argument_group("baseline")
    baseline.add_argument(
        "--baseline", metavar="FILE", help="report only findings not recorded in FILE"
    )
    baseline.add_argument(
        "--write-baseline", metavar="FILE", help="record today's findings in FILE"
    )
    baseline.add_argument(
        "--show-stale", action="store_true", help="list baseline entries that match nothing"
    )
    output = check.add_argument_group("output")
    output.add_argument(
        "--output-format",
        "--format",
        dest="format",
        choices=FORMATS,
        default=None,
        metavar="FORMAT",
        help=_FORMAT_HELP,
    )
    output.add_argument("-o", "--output-file", metavar="FILE", help="write the findings to FILE")
    output.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the full format (auto: on a terminal, unless NO_COLOR is set)",
    )
    output.add_argument("--statistics", action="store_true", help="count findings per code")
    output.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings")
    output.add_argument("--quiet", "-q", action="store_true", help="no summary line")
    check.add_argument("--jobs", "-j", type=_positive, default=None, help="worker processes")
    check.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    check.set_defaults(handler=_run_check)

    rule = subparsers.add_parser(
        "rule", help="explain a rule", description="Print a rule's documentation, or list them."
    )
    rule.add_argument("code", nargs="?", help="a rule code or name, such as LW005")
    rule.add_argument("--write-docs", metavar="DIR", help="regenerate the rule pages in DIR")
    rule.set_defaults(handler=_run_rule)

    server = subparsers.add_parser(
        "server",
        help="run the editor server (Language Server Protocol over stdio)",
        description="Findings as you type: a language server over stdio, started by an editor."
        " Needs the 'lsp' extra: pip install 'loopwise[lsp]'.",
    )
    server.set_defaults(handler=_run_server)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _run_check(args: argparse.Namespace) -> int:
    from loopwise.lint._check_command import run_check

    return run_check(args)


class _progress_bar:
    """A rich progress bar on stderr, shown only for long runs on a terminal."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None

    def __enter__(self) -> Callable[[int], Callable[[int], None] | None] | None:
        return self._start if self.enabled else None

    def _start(self, total: int) -> Callable[[int], None] | None:
        if total < 2 * _PROGRESS_MIN_FILES:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn(f"checking {total // 2} files"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task("check", total=total)

        def advance(count: int) -> None:
            self._progress.advance(task, count)

        return advance

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _run_server(args: argparse.Namespace) -> int:
    try:
        import pygls  # noqa: F401
    except ImportError:
        print(
            "loopwise server needs pygls: install it with pip install 'loopwise[lsp]'",
            file=sys.stderr,
        )
        return 2
    from loopwise.lint._server import serve

    serve()
    return 0


def _run_rule(args: argparse.Namespace) -> int:
    from loopwise._exceptions import ConfigError
    from loopwise.lint._docs import rule_page, write_rule_pages
    from loopwise.lint.rules import ALL_RULES, rule_by_code

    if args.write_docs:
        for path in write_rule_pages(ALL_RULES, Path(args.write_docs)):
            print(path)
        return 0
    if args.code is None:
        for rule in ALL_RULES:
            opt_in = "" if rule.default else " (opt-in: --select " + rule.code + ")"
            print(f"{rule.code}  {rule.name:<32} {rule.summary}{opt_in}")
        return 0
    found = rule_by_code(args.code)
    if found is None:
        known = ", ".join(rule.code for rule in ALL_RULES)
        raise ConfigError(f"unknown rule '{args.code}' (known: {known}, or their names)")
    page = rule_page(found)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(page.split("\n<!--", 1)[0]))
    else:
        sys.stdout.write(page)
    return 0
