"""Every rule, one module each (``lwNNN_<name>.py``); ``ALL_RULES`` is the registry, by code.

A rule module defines exactly one :class:`~loopwise.lint.Rule` subclass; adding the file is
all it takes to register it (tests keep the registry, the docs pages and the fixtures in step).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

from loopwise.lint._rule import Rule

__all__ = ["ALL_RULES", "rule_by_code"]

_RULE_MODULE = re.compile(r"lw\d{3}_\w+")


def _discover() -> tuple[type[Rule[Any]], ...]:
    found: list[type[Rule[Any]]] = []
    for info in pkgutil.iter_modules(__path__):
        if not _RULE_MODULE.fullmatch(info.name):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Rule)
            and value is not Rule
            and value.__module__ == module.__name__
        ]
    return tuple(sorted(found, key=lambda rule: rule.code))


ALL_RULES: tuple[type[Rule[Any]], ...] = _discover()


def rule_by_code(code: str) -> type[Rule[Any]] | None:
    """The rule with this code or name (case-insensitive), or None."""
    wanted = code.strip()
    for rule in ALL_RULES:
        if rule.code == wanted.upper() or rule.name == wanted.lower():
            return rule
    return None
