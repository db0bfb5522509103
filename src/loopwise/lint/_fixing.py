"""``--fix``: apply the findings' fixes to a file, re-check it, and repeat until nothing is left.

The text is checked again before the first round, with the same project knowledge: the fixes
are computed on the bytes that get written, even when the file changed after the check. Each
round applies the fixes that do not overlap, then re-checks the new text: a fix left out for
overlapping is offered again on the new text, and a fixed finding is gone. The loop stops when
a round applies nothing (at most ``MAX_ROUNDS``).
"""

from __future__ import annotations

import codecs
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopwise.lint._api import Selector
from loopwise.lint._checker import check_module, parse_module
from loopwise.lint._files import module_for
from loopwise.lint._finding import Finding
from loopwise.lint._fix import apply_fixes
from loopwise.lint._project import Project
from loopwise.lint._rule import Rule

__all__ = ["MAX_ROUNDS", "FileFix", "fix_source"]

MAX_ROUNDS = 20


@dataclass
class FileFix:
    """What fixing one file did: its text before and after, and the findings fixed."""

    display: str
    path: str
    before: bytes
    after: bytes
    fixed: list[Finding] = field(default_factory=list)
    skipped: str | None = None  # why the file was not fixed at all

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _allowed(finding: Finding, unsafe: bool) -> bool:
    return finding.fix is not None and (finding.fix.safe or unsafe)


def fix_source(
    display: str,
    path: str,
    source: bytes,
    *,
    project: Project,
    rules: Sequence[Rule[Any]],
    selector: Selector,
    unsafe: bool,
) -> FileFix:
    """Apply the fixes of the findings in ``source`` (one file's text), round after round.

    Only findings the settings report get fixed, and unsafe fixes only with ``unsafe``. The
    text returned always parses (a fix that would break it is dropped) and a second call on
    it fixes nothing more. A byte order mark is kept; a file in another encoding than UTF-8
    is left as it is, with the reason in ``skipped`` (fix positions are UTF-8 offsets).
    """
    outcome = FileFix(display, path, source, source)
    encoding = _encoding(source)
    if encoding not in ("utf-8", "utf-8-sig", "ascii"):  # ASCII is UTF-8 too
        outcome.skipped = f"encoded in {encoding}: fixes are applied to UTF-8 files only"
        return outcome
    bom = codecs.BOM_UTF8 if source.startswith(codecs.BOM_UTF8) else b""
    text = source[len(bom) :]
    cwd = Path.cwd()
    module, is_package = module_for(path)

    def fixable(text: bytes) -> list[Finding]:
        parsed = parse_module(display, text, module, is_package)
        fresh = check_module(parsed, project, rules, fixes=True)
        return [f for f in fresh if selector.wanted(f, cwd) and _allowed(f, unsafe)]

    current = fixable(text)
    for _ in range(MAX_ROUNDS):
        if not current:
            break
        text, applied = apply_fixes(text, [f.fix for f in current if f.fix])
        if not applied:
            break
        outcome.fixed += [f for f in current if any(f.fix is fix for fix in applied)]
        outcome.after = bom + text
        current = fixable(text)
    return outcome


def _encoding(source: bytes) -> str:
    """The encoding Python reads ``source`` with (its coding cookie, or UTF-8)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    except SyntaxError:
        return "an unknown encoding"
    return encoding
