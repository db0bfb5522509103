"""``loopwise check`` and ``loopwise rule``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]

_PROGRESS_MIN_FILES = 200


def _codes(value: str) -> list[str]:
    return [code.strip() for code in value.split(",") if code.strip()]


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="find asyncio/aiohttp pitfalls in Python files",
        description="Find asyncio/aiohttp pitfalls. Exit 0: clean, 1: findings, 2: usage error.",
    )
    check.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    check.add_argument("--select", type=_codes, help="codes or prefixes to report (LW001,LW00)")
    check.add_argument("--ignore", type=_codes, default=[], help="codes or prefixes to skip")
    check.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="gitignore-style pattern of paths to skip (repeatable)",
    )
    check.add_argument(
        "--format",
        choices=("text", "json", "sarif", "github"),
        default="text",
        help="output format (default: text)",
    )
    check.add_argument(
        "--config", metavar="FILE", help="pyproject.toml to read [tool.loopwise] from"
    )
    check.add_argument("--jobs", "-j", type=_positive, default=None, help="worker processes")
    check.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    check.add_argument(
        "--force-exclude", action="store_true", help="apply excludes to files named explicitly"
    )
    check.add_argument(
        "--no-respect-gitignore", action="store_true", help="check files .gitignore excludes"
    )
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings")
    check.add_argument("--quiet", "-q", action="store_true", help="no summary line")
    check.set_defaults(handler=_run_check)

    rule = subparsers.add_parser(
        "rule", help="explain a rule", description="Print a rule's documentation, or list them."
    )
    rule.add_argument("code", nargs="?", help="a rule code such as LW005")
    rule.add_argument("--write-docs", metavar="DIR", help="regenerate the rule pages in DIR")
    rule.set_defaults(handler=_run_rule)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _run_check(args: argparse.Namespace) -> int:
    from loopwise.lint._api import check
    from loopwise.lint._engine import default_jobs
    from loopwise.lint._report import render
    from loopwise.lint.rules import ALL_RULES

    with _progress_bar(enabled=args.format == "text" and sys.stderr.isatty()) as progress:
        result = check(
            args.paths,
            select=args.select,
            ignore=args.ignore,
            exclude=args.exclude,
            config=args.config,
            jobs=args.jobs or default_jobs(),
            cache=not args.no_cache,
            force_exclude=args.force_exclude,
            respect_gitignore=not args.no_respect_gitignore,
            progress=progress,
        )
    output = render(result.findings, ALL_RULES, args.format)
    sys.stdout.write(output)
    sys.stdout.flush()
    if args.format == "text" and not args.quiet:
        print(_summary(result.findings, len(result.files)), file=sys.stderr)
    if result.findings and not args.exit_zero:
        return 1
    return 0


def _summary(findings: list[Any], files: int) -> str:
    checked = f"{files} file{'s' if files != 1 else ''} checked"
    if not findings:
        return f"All clear: {checked}."
    errors = sum(1 for f in findings if f.is_error)
    found = len(findings) - errors
    parts = []
    if found:
        parts.append(f"{found} finding{'s' if found != 1 else ''}")
    if errors:
        parts.append(f"{errors} file{'s' if errors != 1 else ''} that could not be checked")
    return f"Found {' and '.join(parts)} ({checked}). `loopwise rule CODE` explains a code."


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
        raise ConfigError(f"unknown rule '{args.code}' (known: {known})")
    sys.stdout.write(rule_page(found))
    return 0
