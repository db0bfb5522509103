"""Every rule, one module each; ``ALL_RULES`` is the registry, sorted by code."""

from __future__ import annotations

from loopwise.lint._rule import Rule
from loopwise.lint.rules.lw001_unawaited import CoroutineNeverAwaited
from loopwise.lint.rules.lw002_legacy_loop import LegacyLoopEntryPoint
from loopwise.lint.rules.lw003_nested_loop import NestedEventLoop

__all__ = ["ALL_RULES", "rule_by_code"]

ALL_RULES: tuple[type[Rule], ...] = (
    CoroutineNeverAwaited,
    LegacyLoopEntryPoint,
    NestedEventLoop,
)


def rule_by_code(code: str) -> type[Rule] | None:
    for rule in ALL_RULES:
        if rule.code == code.upper():
            return rule
    return None
