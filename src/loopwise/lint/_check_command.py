"""What ``loopwise check`` does with its options: check, fix, baseline, report, exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loopwise._exceptions import ConfigError
from loopwise.lint._api import CheckResult, check, check_stdin
from loopwise.lint._finding import Finding
from loopwise.lint.rules import ALL_RULES

if TYPE_CHECKING:
    from loopwise.lint._fixing import FileFix

# Fixing, baselines and diffs are imported only when asked for: a plain check pays nothing.

__all__ = ["run_check"]


def _validate(args: argparse.Namespace) -> None:
    stdin = args.paths == ["-"]
    if "-" in args.paths and not stdin:
        raise ConfigError("'-' (stdin) cannot be combined with other paths")
    if args.stdin_filename and not stdin:
        raise ConfigError("--stdin-filename needs '-' as the path")
    if stdin and (args.write_baseline or args.add_noqa):
        raise ConfigError("--write-baseline and --add-noqa need files, not stdin")
    if args.baseline and args.write_baseline:
        raise ConfigError("--baseline and --write-baseline cannot be used together")
    for option in ("diff", "fix", "fix_only"):
        if getattr(args, option) and args.add_noqa:
            flag = "--" + option.replace("_", "-")
            raise ConfigError(f"{flag} and --add-noqa cannot be used together")
    if args.isolated and args.config:
        raise ConfigError("--isolated and --config cannot be used together")


def _fixing(args: argparse.Namespace) -> bool:
    return bool(args.fix or args.diff or args.fix_only)


def run_check(args: argparse.Namespace) -> int:
    from loopwise.lint._cli import _progress_bar
    from loopwise.lint._engine import default_jobs

    _validate(args)
    fixing = _fixing(args)
    options = {
        "select": args.select,
        "extend_select": args.extend_select,
        "ignore": [*args.ignore, *args.extend_ignore],
        "config": args.config,
        "isolated": args.isolated,
    }
    if args.paths == ["-"]:
        return _run_stdin(args, options, fixing)
    if args.show_settings:
        return _show_settings(args, options)

    def check_paths(**extra: Any) -> CheckResult:
        return check(
            args.paths,
            exclude=args.exclude,
            jobs=args.jobs or default_jobs(),
            cache=not args.no_cache,
            force_exclude=args.force_exclude,
            respect_gitignore=not args.no_respect_gitignore,
            **options,
            **extra,
        )

    shown = args.format in (None, "full", "concise", "text")
    with _progress_bar(enabled=shown and sys.stderr.isatty()) as progress:
        result = check_paths(progress=progress, fixes=fixing)
    if args.show_files:
        for file in result.files:
            print(file.display)
        return 0
    if not result.files:
        if args.force_exclude and all(Path(p).is_file() for p in args.paths):
            _note(args, "Nothing to check: every file named is excluded.")
            return 0
        raise ConfigError(f"no Python files found under {', '.join(args.paths)}")
    if args.add_noqa:
        return _add_noqa(args, result)
    if fixing:
        fixed = _fix_files(args, result)
        if args.diff:
            return _print_diff(fixed)
        if args.fix_only:
            _fix_summary(args, fixed)
            return 0
        if any(item.changed for item in fixed):
            result = check_paths()
        _fix_summary(args, fixed)
    return _report(args, result)


def _note(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)


def _read_lines(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return None


def _use_color(args: argparse.Namespace, stream: TextIO) -> bool:
    if args.color == "always":
        return True
    if args.color == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


def _report(
    args: argparse.Namespace,
    result: CheckResult,
    *,
    source: bytes | None = None,
) -> int:
    """Print the findings (less those a baseline knows); ``source`` is the text read from stdin."""
    from loopwise.lint._report import render

    findings = result.findings
    hidden = 0
    baseline_path = None if args.write_baseline else _baseline_path(args, result)
    if args.write_baseline or baseline_path is not None:
        from loopwise.lint._baseline import Baseline
    if args.write_baseline:
        recorded = Baseline.record(Path(args.write_baseline), findings)
        recorded.save()
        count = len(recorded)
        _note(
            args, f"Recorded {count} finding{'s' if count != 1 else ''} in {args.write_baseline}."
        )
        return 0
    if baseline_path is not None:
        baseline = Baseline.load(baseline_path)
        checked = [f.path for f in result.files]
        sources = None
        if source is not None and result.files:  # stdin: its findings name the display path
            sources = {result.files[0].display: source}
        findings, hidden, stale = baseline.filter(findings, checked, sources)
        if args.show_stale:
            for file, code, scope, statement in stale:
                where = f" in {scope}" if scope else ""
                print(f"stale: {file}: {code}{where}: {statement}", file=sys.stderr)
    out: TextIO = sys.stdout
    handle = None
    if args.output_file:
        try:
            handle = open(args.output_file, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"{args.output_file}: cannot write: {exc.strerror}") from None
        out = handle
    try:
        fmt = args.format or ("full" if out.isatty() else "concise")
        text = (
            source.decode("utf-8-sig", errors="replace").splitlines()
            if source is not None
            else None
        )
        lines = (lambda _path: text) if text is not None else _read_lines
        if args.statistics:
            out.write(_statistics(findings, as_json=fmt in ("json", "json-lines")))
        else:
            out.write(
                render(findings, ALL_RULES, fmt, color=_use_color(args, out), source_lines=lines)
            )
        out.flush()
    finally:
        if handle is not None:
            handle.close()
    if fmt in ("full", "concise", "text") and not args.quiet:
        print(_summary(findings, len(result.files), hidden), file=sys.stderr)
    if findings and not args.exit_zero:
        return 1
    return 0


def _baseline_path(args: argparse.Namespace, result: CheckResult) -> Path | None:
    if args.baseline:
        path = Path(args.baseline)
        if not path.is_file():
            raise ConfigError(f"{path}: baseline not found (write one with --write-baseline)")
        return path
    if result.selector is None:
        return None
    configured = result.selector.finder.for_directory(Path.cwd()).baseline
    if configured is not None and not configured.is_file():
        raise ConfigError(f"{configured}: baseline not found (write one with --write-baseline)")
    return configured


def _statistics(findings: Sequence[Finding], *, as_json: bool = False) -> str:
    """One row per code, most frequent first (then by code)."""
    import json

    counts = Counter(f.code for f in findings)
    rules = {rule.code: rule for rule in ALL_RULES}
    out = []
    rows = []
    for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        rule = rules.get(code)
        name = rule.name if rule else ""
        fixable = rule is not None and rule.fix_safety in ("safe", "sometimes")
        rows.append({"code": code, "name": name, "count": count, "fixable": fixable})
        out.append(f"{count:>5}  {code:<14} {'[*]' if fixable else '   '} {name}".rstrip() + "\n")
    return json.dumps(rows, indent=2) + "\n" if as_json else "".join(out)


def _summary(findings: Sequence[Finding], files: int, hidden: int) -> str:
    checked = f"{files} file{'s' if files != 1 else ''} checked"
    if hidden:
        checked += f", {hidden} baseline finding{'s' if hidden != 1 else ''} hidden"
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


# -- fixes -----------------------------------------------------------------------------------


def _fix_files(args: argparse.Namespace, result: CheckResult) -> list[FileFix]:
    from loopwise.lint._fixing import fix_source

    assert result.project is not None and result.selector is not None
    rules = [rule() for rule in ALL_RULES]
    by_file: dict[str, list[Finding]] = {}
    for finding in result.findings:
        if finding.fix is not None:
            by_file.setdefault(finding.path, []).append(finding)
    outcomes = []
    for file in result.files:
        found = by_file.get(file.display)
        if not found:
            continue
        try:
            source = Path(file.path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{file.display}: cannot read: {exc.strerror}") from None
        outcome = fix_source(
            file.display,
            file.path,
            source,
            project=result.project,
            rules=rules,
            selector=result.selector,
            unsafe=args.unsafe_fixes,
        )
        if outcome.changed and not args.diff:
            _write(Path(file.path), outcome.after)
        outcomes.append(outcome)
    return outcomes


def _write(path: Path, content: bytes) -> None:
    """Replace the file's content in place (its mode and links are kept)."""
    try:
        with open(path, "r+b") as handle:
            handle.write(content)
            handle.truncate()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the fix: {exc.strerror}") from None


def _diff_text(outcome: FileFix) -> str:
    import difflib

    before = outcome.before.decode("utf-8", errors="replace").splitlines(keepends=True)
    after = outcome.after.decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(
        before, after, fromfile=f"a/{outcome.display}", tofile=f"b/{outcome.display}"
    )
    # A last line without a line break gets the marker `patch` and `git apply` need.
    marker = "\n\\ No newline at end of file\n"
    return "".join(line if line.endswith("\n") else line + marker for line in lines)


def _report_skipped(outcomes: Sequence[FileFix]) -> None:
    for outcome in outcomes:
        if outcome.skipped:
            print(f"{outcome.display}: not fixed: {outcome.skipped}", file=sys.stderr)


def _print_diff(outcomes: Sequence[FileFix]) -> int:
    _report_skipped(outcomes)
    changed = [outcome for outcome in outcomes if outcome.changed]
    for outcome in changed:
        sys.stdout.write(_diff_text(outcome))
    sys.stdout.flush()
    count = sum(len(outcome.fixed) for outcome in changed)
    print(f"Would fix {count} finding{'s' if count != 1 else ''}.", file=sys.stderr)
    return 1 if changed else 0


def _fix_summary(args: argparse.Namespace, outcomes: Sequence[FileFix]) -> None:
    _report_skipped(outcomes)
    fixed = [f for outcome in outcomes for f in outcome.fixed]
    if args.show_fixes and fixed:
        print("Fixed:", file=sys.stderr)
        for outcome in outcomes:
            counts = Counter(f.code for f in outcome.fixed)
            for code, count in sorted(counts.items()):
                print(f"  {outcome.display}: {count} x {code}", file=sys.stderr)
    if fixed:
        _note(args, f"Fixed {len(fixed)} finding{'s' if len(fixed) != 1 else ''}.")


# -- stdin, settings, noqa -------------------------------------------------------------------


def _run_stdin(args: argparse.Namespace, options: dict[str, object], fixing: bool) -> int:
    from loopwise.lint._fixing import fix_source

    source = sys.stdin.buffer.read()
    filename = args.stdin_filename or "-"
    result = check_stdin(
        source,
        filename,
        fixes=fixing,
        exclude=args.exclude,
        force_exclude=args.force_exclude,
        respect_gitignore=not args.no_respect_gitignore,
        **options,  # type: ignore[arg-type]
    )
    if not result.files:  # --force-exclude and an excluded --stdin-filename
        if fixing and not args.diff:
            sys.stdout.buffer.write(source)  # an editor replaces its buffer with this
            sys.stdout.flush()
        return 0
    if fixing:
        assert result.project is not None and result.selector is not None
        file = result.files[0]
        outcome = fix_source(
            file.display,
            file.path,
            source,
            project=result.project,
            rules=[rule() for rule in ALL_RULES],
            selector=result.selector,
            unsafe=args.unsafe_fixes,
        )
        if args.diff:
            return _print_diff([outcome])
        sys.stdout.buffer.write(outcome.after)
        sys.stdout.flush()
        if args.fix_only:
            return 0
        result = check_stdin(outcome.after, filename, **options)  # type: ignore[arg-type]
        args.quiet = True
        saved, sys.stdout = sys.stdout, sys.stderr
        try:
            return _report(args, result, source=outcome.after)
        finally:
            sys.stdout = saved
    return _report(args, result, source=source)


def _show_settings(args: argparse.Namespace, options: dict[str, object]) -> int:
    import io

    from loopwise.lint._api import Selector, _selector

    first = Path(args.stdin_filename or args.paths[0])
    selector: Selector = _selector(
        options["config"],  # type: ignore[arg-type]
        bool(options["isolated"]),
        options["select"],  # type: ignore[arg-type]
        options["extend_select"],  # type: ignore[arg-type]
        options["ignore"],  # type: ignore[arg-type]
    )
    absolute = first if first.is_absolute() else Path.cwd() / first
    directory = absolute if absolute.is_dir() else absolute.parent
    config = selector.finder.for_directory(directory)
    rules = selector.rules_for(config)
    out = io.StringIO()
    out.write(f"settings for {first}\n")
    out.write(f"config file: {config.source or '(none: defaults)'}\n")
    out.write(f"root: {config.root}\n")
    out.write(f"selected: {', '.join(sorted(rules.selected)) or '(none)'}\n")
    out.write(f"exclude: {', '.join(config.exclude) or '(none)'}\n")
    out.write(f"extra excludes (--exclude): {', '.join(args.exclude) or '(none)'}\n")
    out.write(f"test-paths: {', '.join(config.test_paths) or '(none)'}\n")
    for pattern, codes in config.per_file_ignores.items():
        out.write(f"per-file-ignores: {pattern} = {', '.join(codes)}\n")
    out.write(f"baseline: {args.baseline or config.baseline or '(none)'}\n")
    out.write(f"extend-blocking-calls: {', '.join(config.extend_blocking_calls) or '(none)'}\n")
    sys.stdout.write(out.getvalue())
    return 0


def _add_noqa(args: argparse.Namespace, result: CheckResult) -> int:
    from loopwise.lint._add_noqa import add_noqa

    by_file: dict[str, list[Finding]] = {}
    for finding in result.findings:
        if not finding.is_error:
            by_file.setdefault(finding.path, []).append(finding)
    added = 0
    for file in result.files:
        found = by_file.get(file.display)
        if not found:
            continue
        source = Path(file.path).read_bytes()
        new, count = add_noqa(source, found)
        if count:
            _write(Path(file.path), new)
            added += count
    _note(args, f"Added {added} `# noqa` comment{'s' if added != 1 else ''}.")
    return 0
