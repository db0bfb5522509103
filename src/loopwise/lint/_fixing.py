"""``--fix``: apply the findings' fixes to a file, re-check it, and repeat until nothing is left.

Each round applies the fixes that do not overlap, then re-checks the new text with the same
project knowledge: a fix left out for overlapping is offered again on the new text, and a
fixed finding is gone. The loop stops when a round applies nothing (at most ``MAX_ROUNDS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loopwise.lint._api import Selector
from loopwise.lint._files import module_for
from loopwise.lint._finding import Finding
from loopwise.lint._fix import apply_fixes
from loopwise.lint._project import Project
from loopwise.lint._rule import Rule
from loopwise.lint._runner import check_module, parse_module

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

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _allowed(finding: Finding, unsafe: bool) -> bool:
    return finding.fix is not None and (finding.fix.safe or unsafe)


def fix_source(
    display: str,
    path: str,
    source: bytes,
    findings: Sequence[Finding],
    *,
    project: Project,
    rules: Sequence[Rule],
    selector: Selector,
    unsafe: bool,
) -> FileFix:
    """Apply the fixes of ``findings`` (those of one file) to ``source``, round after round.

    Only findings the settings report get fixed, and unsafe fixes only with ``unsafe``. The
    text returned always parses (a fix that would break it is dropped) and a second call on
    it fixes nothing more.
    """
    outcome = FileFix(display, path, source, source)
    cwd = Path.cwd()
    module, is_package = module_for(path)
    current = [f for f in findings if _allowed(f, unsafe)]
    for _ in range(MAX_ROUNDS):
        if not current:
            break
        text, applied = apply_fixes(outcome.after, [f.fix for f in current if f.fix])
        if not applied:
            break
        outcome.fixed += [f for f in current if any(f.fix is fix for fix in applied)]
        outcome.after = text
        parsed = parse_module(display, text, module, is_package)
        fresh = check_module(parsed, project, rules, fixes=True)
        current = [f for f in fresh if selector.wanted(f, cwd) and _allowed(f, unsafe)]
    return outcome
